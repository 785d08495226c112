"""Requests arriving together while the first JWKS fetch is still on its way."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from backend.core.jwks import JwksKeySource, jwks_document
from backend.core.redis import create_redis
from backend.core.settings import Settings
from backend.core.tokens import generate_signing_key


def test_concurrent_lookups_during_the_first_fetch_all_get_the_key(test_settings: Settings) -> None:
    key = generate_signing_key()
    fetches = 0

    async def slow_portal(request: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.1)
        return httpx.Response(200, json=jwks_document([key.public_jwk()]))

    async def main() -> list[object]:
        redis = create_redis(test_settings)
        http = httpx.AsyncClient(transport=httpx.MockTransport(slow_portal))
        try:
            source = JwksKeySource(
                f"http://portal-{uuid.uuid4().hex}.test/.well-known/jwks.json",
                redis=redis,
                http=http,
                ttl_s=300,
            )
            return list(await asyncio.gather(*(source.get(key.kid) for _ in range(10))))
        finally:
            await http.aclose()
            await redis.aclose()

    found = asyncio.run(main())

    assert found == [key.verification_key()] * 10
    assert fetches == 1
