"""Throttling of failed client assertions at ``POST /oauth2/token`` (docs/security.md).

An ES256 signature cannot be guessed, so this is not about brute force: it bounds what a client
stuck in a failing loop or someone spraying forged assertions costs (a terminal lookup, a
signature check and an audit row each), per claimed client and per source address.

Only failures count, and they are counted after the fact (check, then record on failure), unlike
login, which counts every attempt before checking the password: a guessed password is worth
racing for, a forged assertion is not, and counting in-flight requests would refuse the healthy
terminals of a store (or a carrier-grade NAT) that refresh their tokens at the same moment.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from backend.core.replay import FixedWindowLimiter, ReplayCache, first_exhausted
from backend.core.settings import Settings


@dataclass(frozen=True)
class ThrottleHit:
    limit: str  # "client" or "address"
    key: str
    retry_after_s: int


class TokenThrottle:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.by_client = FixedWindowLimiter(
            redis,
            "device_token:client",
            limit=settings.device_token_max_failures_per_client,
            window_s=settings.device_token_failure_window_s,
        )
        # A terminal's own failures already stop at the per-client limit: this one is for
        # sprayers, and many terminals may share one address.
        self.by_address = FixedWindowLimiter(
            redis,
            "device_token:address",
            limit=settings.device_token_max_failures_per_ip,
            window_s=settings.device_token_failure_window_s,
        )
        self._announced = ReplayCache(redis, "device_token_throttled")

    def _checks(self, client_id: str | None, address: str) -> list[tuple[FixedWindowLimiter, str]]:
        checks = [(self.by_address, address)]
        if client_id is not None:
            checks.append((self.by_client, client_id))
        return checks

    async def exhausted(self, client_id: str | None, address: str) -> ThrottleHit | None:
        hit = await first_exhausted(self._checks(client_id, address))
        if hit is None:
            return None
        limiter, key, retry_after_s = hit
        return ThrottleHit("client" if limiter is self.by_client else "address", key, retry_after_s)

    async def record_failure(self, client_id: str | None, address: str) -> None:
        for limiter, key in self._checks(client_id, address):
            await limiter.record(key)

    async def first_refusal(self, hit: ThrottleHit) -> bool:
        """True once per tripped window: the audit row is written then, not for every request
        of a flood (which would make the audit log the thing being flooded)."""
        return await self._announced.first_use(f"{hit.limit}:{hit.key}", ttl_s=hit.retry_after_s)


def claimed_client_id(assertion: str, client_id: str | None) -> str | None:
    """Whom a token request says it is, before anything is verified: the key its failures count
    under. The form's ``client_id`` if it is one, else the assertion's ``sub``; None when neither
    names a possible client (such a request counts against its address only).

    Parsed by hand, never raising: the request has not been checked yet and may be anything.
    """
    candidates: list[object] = [client_id]
    parts = assertion.split(".")
    if len(parts) == 3:
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            candidates.append(payload.get("sub"))
    for candidate in candidates:
        if isinstance(candidate, str):
            try:
                return str(uuid.UUID(candidate))
            except ValueError:
                continue
    return None
