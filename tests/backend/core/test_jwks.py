"""backend.core.jwks: parsing JWKS documents and the cached, refetching key source.

The key source runs against the session's real Redis; only the portal's HTTP side is replaced
by an httpx.MockTransport so each test controls what the "portal" publishes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from redis.asyncio import Redis

from backend.core.jwks import JwksKeySource, jwks_document, parse_jwks
from backend.core.redis import create_redis
from backend.core.settings import Settings
from backend.core.tokens import SigningKey, generate_signing_key

T = TypeVar("T")


@pytest.fixture(scope="module")
def es_key() -> SigningKey:
    return generate_signing_key("ES256")


@pytest.fixture(scope="module")
def rs_key() -> SigningKey:
    return generate_signing_key("RS256")


# --- parse_jwks ---------------------------------------------------------------------------


def test_jwks_document_wraps_keys() -> None:
    assert jwks_document([{"kid": "a"}, {"kid": "b"}]) == {"keys": [{"kid": "a"}, {"kid": "b"}]}


def test_parse_jwks_keeps_es256_and_rs256_keys_by_kid(
    es_key: SigningKey, rs_key: SigningKey
) -> None:
    keys = parse_jwks(jwks_document([es_key.public_jwk(), rs_key.public_jwk()]))
    assert set(keys) == {es_key.kid, rs_key.kid}
    assert keys[es_key.kid].algorithm == "ES256"
    assert keys[rs_key.kid].algorithm == "RS256"


def test_parse_jwks_skips_unusable_keys_and_keeps_the_good_one(es_key: SigningKey) -> None:
    good = es_key.public_jwk()
    private = {**ECAlgorithm.to_jwk(es_key.private_key, as_dict=True), "kid": "private"}
    p384 = {
        **ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True),
        "kid": "p384",
    }
    document = {
        "keys": [
            {**good, "kid": "encryption", "use": "enc"},
            {key: value for key, value in good.items() if key != "kid"},
            {**good, "kid": ""},
            {**good, "kid": 7},
            private,
            p384,
            {**good, "kid": "declares-hs256", "alg": "HS256"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "symmetric"},
            {"kty": "EC", "crv": "P-256", "kid": "no-coordinates"},
            {**good, "kid": "p384-coordinates", "x": p384["x"], "y": p384["y"]},
            {**good, "kid": "off-curve", "x": good["y"]},
            "not-an-object",
            ["nor", "this"],
            good,
        ]
    }
    assert list(parse_jwks(document)) == [es_key.kid]


def test_parse_jwks_of_documents_without_keys_is_empty() -> None:
    assert parse_jwks({}) == {}
    assert parse_jwks({"keys": []}) == {}


# --- JwksKeySource --------------------------------------------------------------------------


class FakePortal:
    """Serves a JWKS document that the test changes, and counts the fetches."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.status = 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if self.status != 200:
            return httpx.Response(self.status, json={"code": "down"})
        return httpx.Response(200, json=jwks_document(key.public_jwk() for key in self.keys))


def _with_source(
    settings: Settings,
    portal: FakePortal,
    body: Callable[[JwksKeySource], Awaitable[T]],
    *,
    url: str | None = None,
    ttl_s: int = 300,
    min_refetch_interval_s: float = 10.0,
) -> T:
    async def main() -> T:
        redis = create_redis(settings)
        http = httpx.AsyncClient(transport=httpx.MockTransport(portal.handler))
        try:
            source = JwksKeySource(
                url or f"http://portal-{uuid.uuid4().hex}.test/.well-known/jwks.json",
                redis=redis,
                http=http,
                ttl_s=ttl_s,
                min_refetch_interval_s=min_refetch_interval_s,
            )
            return await body(source)
        finally:
            await http.aclose()
            await redis.aclose()

    return asyncio.run(main())


def test_first_lookup_fetches_then_serves_from_memory(
    test_settings: Settings, es_key: SigningKey
) -> None:
    portal = FakePortal(es_key)

    async def body(source: JwksKeySource) -> None:
        assert (await source.get(es_key.kid)) == es_key.verification_key()
        assert (await source.get(es_key.kid)) == es_key.verification_key()

    _with_source(test_settings, portal, body)
    assert portal.fetches == 1


def test_fetched_document_is_shared_through_redis(
    test_settings: Settings, es_key: SigningKey
) -> None:
    portal = FakePortal(es_key)
    url = f"http://portal-{uuid.uuid4().hex}.test/.well-known/jwks.json"

    async def first(source: JwksKeySource) -> None:
        assert await source.get(es_key.kid) is not None

    async def second(source: JwksKeySource) -> list[str]:
        assert await source.get(es_key.kid) is not None
        cached = await source.redis.get(source._redis_key)
        ttl = await source.redis.ttl(source._redis_key)
        assert 0 < ttl <= 300
        return [jwk["kid"] for jwk in json.loads(cached)["keys"]]

    _with_source(test_settings, portal, first, url=url)
    # A second process (its own memory, same Redis) needs no fetch of its own.
    assert _with_source(test_settings, portal, second, url=url) == [es_key.kid]
    assert portal.fetches == 1


def test_unknown_kid_triggers_a_refetch_that_finds_a_rotated_key(
    test_settings: Settings, es_key: SigningKey
) -> None:
    portal = FakePortal(es_key)
    rotated = generate_signing_key()

    async def body(source: JwksKeySource) -> None:
        assert await source.get(es_key.kid) is not None
        portal.keys.append(rotated)
        assert (await source.get(rotated.kid)) == rotated.verification_key()
        assert await source.get(es_key.kid) is not None

    _with_source(test_settings, portal, body, min_refetch_interval_s=0.0)
    assert portal.fetches == 2


def test_refetches_for_unknown_kids_are_throttled(
    test_settings: Settings, es_key: SigningKey
) -> None:
    portal = FakePortal(es_key)

    async def body(source: JwksKeySource) -> None:
        assert await source.get(es_key.kid) is not None
        for _ in range(20):
            assert await source.get(uuid.uuid4().hex) is None

    _with_source(test_settings, portal, body, min_refetch_interval_s=60.0)
    assert portal.fetches == 1


def test_refetch_is_allowed_again_after_the_interval(
    test_settings: Settings, es_key: SigningKey
) -> None:
    portal = FakePortal(es_key)
    rotated = generate_signing_key()

    async def body(source: JwksKeySource) -> None:
        assert await source.get(es_key.kid) is not None
        portal.keys.append(rotated)
        assert await source.get(rotated.kid) is None  # throttled: fetched a moment ago
        await asyncio.sleep(0.3)
        assert await source.get(rotated.kid) is not None

    _with_source(test_settings, portal, body, min_refetch_interval_s=0.25)
    assert portal.fetches == 2


def test_failed_fetch_keeps_the_keys_already_known(
    test_settings: Settings, es_key: SigningKey
) -> None:
    portal = FakePortal(es_key)

    async def body(source: JwksKeySource) -> None:
        assert await source.get(es_key.kid) is not None
        portal.status = 503
        assert await source.get("unknown") is None
        assert await source.get(es_key.kid) == es_key.verification_key()

    _with_source(test_settings, portal, body, min_refetch_interval_s=0.0)
    assert portal.fetches == 2


def test_unreachable_portal_means_no_key_not_an_error(
    test_settings: Settings, es_key: SigningKey
) -> None:
    portal = FakePortal(es_key)
    portal.status = 500

    async def body(source: JwksKeySource) -> None:
        assert await source.get(es_key.kid) is None

    _with_source(test_settings, portal, body)


def test_document_with_a_broken_key_still_serves_the_good_ones(
    test_settings: Settings, es_key: SigningKey
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        broken = {"kty": "EC", "crv": "P-256", "kid": "broken", "x": "AAAA"}
        return httpx.Response(200, json={"keys": [broken, es_key.public_jwk()]})

    async def main() -> Any:
        redis = create_redis(test_settings)
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        try:
            source = JwksKeySource(
                f"http://portal-{uuid.uuid4().hex}.test/jwks", redis=redis, http=http, ttl_s=300
            )
            return await source.get(es_key.kid), await source.get("broken")
        finally:
            await http.aclose()
            await redis.aclose()

    found, broken = asyncio.run(main())
    assert found == es_key.verification_key()
    assert broken is None


def test_key_dropped_from_the_jwks_is_forgotten_after_the_cache_ttl(
    test_settings: Settings, es_key: SigningKey
) -> None:
    portal = FakePortal(es_key)
    rotated = generate_signing_key()

    async def body(source: JwksKeySource) -> None:
        assert await source.get(es_key.kid) is not None
        portal.keys = [rotated]
        assert await source.get(es_key.kid) is not None  # still cached
        await asyncio.sleep(1.1)  # memory and Redis copies both expire after ttl_s
        assert await source.get(es_key.kid) is None
        assert await source.get(rotated.kid) is not None

    _with_source(test_settings, portal, body, ttl_s=1, min_refetch_interval_s=0.0)
    assert portal.fetches == 2


def test_redis_outage_does_not_stop_verification(es_key: SigningKey) -> None:
    """The Redis copy is only a cache: without it the source fetches from the portal itself."""
    portal = FakePortal(es_key)

    async def main() -> tuple[Any, Any]:
        # Nothing listens on port 1: every Redis command fails to connect.
        redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        http = httpx.AsyncClient(transport=httpx.MockTransport(portal.handler))
        try:
            source = JwksKeySource("http://portal.test/jwks", redis=redis, http=http, ttl_s=300)
            return await source.get(es_key.kid), await source.get(es_key.kid)
        finally:
            await http.aclose()
            await redis.aclose()

    first, second = asyncio.run(main())
    assert first == es_key.verification_key()
    assert second == es_key.verification_key()
    assert portal.fetches == 1
