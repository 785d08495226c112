"""JWKS documents: publishing the portal's keys and fetching them (cached) in other services."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend.core.tokens import ALLOWED_ALGORITHMS, VerificationKey, verification_key_from_jwk

logger = logging.getLogger(__name__)


def jwks_document(public_jwks: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"keys": [dict(jwk) for jwk in public_jwks]}


def parse_jwks(document: Mapping[str, Any]) -> dict[str, VerificationKey]:
    """Keep only signature keys with a kid and an allowed algorithm; skip the rest quietly."""
    keys: dict[str, VerificationKey] = {}
    for jwk in document.get("keys", []):
        if not isinstance(jwk, Mapping) or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            key = verification_key_from_jwk(jwk, kid=kid)
        except (ValueError, TypeError, KeyError):
            logger.warning("ignoring unusable JWK %s", kid)
            continue
        if key.algorithm in ALLOWED_ALGORITHMS:
            keys[kid] = key
    return keys


class JwksKeySource:
    """Keys from a remote JWKS, cached in process and in Redis (shared by all processes).

    An unknown ``kid`` triggers a refetch, at most once per ``min_refetch_interval_s``, so a key
    rotation is picked up at once while a flood of forged kids cannot hammer the portal.
    """

    def __init__(
        self,
        url: str,
        *,
        redis: Redis,
        http: httpx.AsyncClient,
        ttl_s: int,
        min_refetch_interval_s: float = 10.0,
    ) -> None:
        self.url = url
        self.redis = redis
        self.http = http
        self.ttl_s = ttl_s
        self.min_refetch_interval_s = min_refetch_interval_s
        self._keys: dict[str, VerificationKey] = {}
        self._loaded_at = 0.0
        self._fetched_at = 0.0
        self._fetch_lock = asyncio.Lock()

    @property
    def _redis_key(self) -> str:
        return f"jwks:{self.url}"

    async def get(self, kid: str) -> VerificationKey | None:
        fresh = time.monotonic() - self._loaded_at < self.ttl_s
        if kid in self._keys and fresh:
            return self._keys[kid]
        cached = await self._cached_document()
        if cached:
            self._load(json.loads(cached))
            if kid in self._keys:
                return self._keys[kid]
        # One fetch at a time: lookups arriving while it runs wait for its answer rather than
        # finding the throttle closed and refusing a valid token.
        async with self._fetch_lock:
            answered = kid in self._keys and time.monotonic() - self._loaded_at < self.ttl_s
            if not answered and time.monotonic() - self._fetched_at >= self.min_refetch_interval_s:
                await self._fetch()
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            response = await self.http.get(self.url, timeout=5.0)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError):
            logger.warning("JWKS fetch from %s failed; keeping the cached keys", self.url)
            return
        self._load(document)
        try:
            await self.redis.set(self._redis_key, json.dumps(document), ex=self.ttl_s)
        except (RedisError, OSError):
            logger.warning("could not cache the JWKS in Redis; serving it from memory")

    async def _cached_document(self) -> str | bytes | None:
        # Redis only shares the document between processes: when it is down, verification
        # goes on with the in-process copy and direct fetches instead of failing every request.
        try:
            cached: str | bytes | None = await self.redis.get(self._redis_key)
        except (RedisError, OSError):
            logger.warning("could not read the cached JWKS from Redis")
            return None
        return cached

    def _load(self, document: Mapping[str, Any]) -> None:
        self._keys = parse_jwks(document)
        self._loaded_at = time.monotonic()
