"""backend.core.replay against the session's real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from redis.asyncio import Redis

from backend.core.errors import TooManyRequests
from backend.core.redis import create_redis
from backend.core.replay import FixedWindowLimiter, ReplayCache, first_exhausted
from backend.core.settings import Settings

T = TypeVar("T")


def _with_redis(settings: Settings, body: Callable[[Redis], Awaitable[T]]) -> T:
    async def main() -> T:
        redis = create_redis(settings)
        try:
            return await body(redis)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def _namespace() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_first_use_is_true_once_then_false(test_settings: Settings) -> None:
    async def body(redis: Redis) -> list[bool]:
        cache = ReplayCache(redis, _namespace())
        return [await cache.first_use("jti-1", ttl_s=60) for _ in range(3)]

    assert _with_redis(test_settings, body) == [True, False, False]


def test_first_use_is_per_value_and_per_namespace(test_settings: Settings) -> None:
    async def body(redis: Redis) -> list[bool]:
        namespace = _namespace()
        a, b = ReplayCache(redis, namespace), ReplayCache(redis, f"{namespace}-other")
        return [
            await a.first_use("v1", ttl_s=60),
            await a.first_use("v2", ttl_s=60),
            await b.first_use("v1", ttl_s=60),
            await a.first_use("v1", ttl_s=60),
        ]

    assert _with_redis(test_settings, body) == [True, True, True, False]


def test_first_use_marker_expires_with_its_ttl(test_settings: Settings) -> None:
    async def body(redis: Redis) -> tuple[int, bool]:
        cache = ReplayCache(redis, _namespace())
        await cache.first_use("nonce", ttl_s=1)
        ttl = await redis.ttl(f"replay:{cache.namespace}:nonce")
        await asyncio.sleep(1.1)
        return ttl, await cache.first_use("nonce", ttl_s=1)

    ttl, after_expiry = _with_redis(test_settings, body)
    assert ttl == 1
    assert after_expiry is True


def test_first_use_with_zero_ttl_still_remembers_the_value(test_settings: Settings) -> None:
    async def body(redis: Redis) -> list[bool]:
        cache = ReplayCache(redis, _namespace())
        return [await cache.first_use("v", ttl_s=0), await cache.first_use("v", ttl_s=-5)]

    assert _with_redis(test_settings, body) == [True, False]


def test_first_use_under_concurrency_admits_exactly_one(test_settings: Settings) -> None:
    async def body(redis: Redis) -> list[bool]:
        cache = ReplayCache(redis, _namespace())
        return list(await asyncio.gather(*(cache.first_use("race", ttl_s=60) for _ in range(25))))

    results = _with_redis(test_settings, body)
    assert results.count(True) == 1


def test_limiter_allows_until_the_limit_then_refuses_with_retry_after(
    test_settings: Settings,
) -> None:
    async def body(redis: Redis) -> tuple[list[int], TooManyRequests]:
        limiter = FixedWindowLimiter(redis, _namespace(), limit=3, window_s=120)
        counts = []
        for _ in range(3):
            await limiter.ensure_allowed("alice")
            counts.append(await limiter.record("alice"))
        with pytest.raises(TooManyRequests) as caught:
            await limiter.ensure_allowed("alice")
        await limiter.ensure_allowed("bob")  # other keys are unaffected
        return counts, caught.value

    counts, refusal = _with_redis(test_settings, body)
    assert counts == [1, 2, 3]
    assert refusal.status == 429
    assert refusal.code == "too_many_attempts"
    retry_after = int(refusal.headers["Retry-After"])
    assert 1 <= retry_after <= 120
    assert refusal.extensions["retry_after_s"] == retry_after


def test_first_exhausted_names_the_used_up_limiter_among_several(test_settings: Settings) -> None:
    async def body(redis: Redis) -> list[tuple[str, str, int] | None]:
        loose = FixedWindowLimiter(redis, _namespace(), limit=5, window_s=60)
        tight = FixedWindowLimiter(redis, _namespace(), limit=2, window_s=60)
        names = {id(loose): "loose", id(tight): "tight"}
        checks = [(loose, "k"), (tight, "k")]
        seen = []
        for _ in range(3):
            hit = await first_exhausted(checks)
            seen.append(None if hit is None else (names[id(hit[0])], hit[1], hit[2]))
            await loose.record("k")
            await tight.record("k")
        seen.append(await first_exhausted([]))
        return seen

    first, second, third, nothing = _with_redis(test_settings, body)
    assert first is None
    assert second is None
    assert third is not None
    assert third[:2] == ("tight", "k")
    assert 1 <= third[2] <= 60
    assert nothing is None


def test_limiter_window_starts_at_the_first_event_and_is_not_extended(
    test_settings: Settings,
) -> None:
    async def body(redis: Redis) -> tuple[int, int]:
        limiter = FixedWindowLimiter(redis, _namespace(), limit=10, window_s=100)
        await limiter.record("k")
        await redis.expire(limiter._key("k"), 50)  # as if 50 s of the window had passed
        await limiter.record("k")
        return await redis.ttl(limiter._key("k")), int(await redis.get(limiter._key("k")))

    ttl, count = _with_redis(test_settings, body)
    assert ttl <= 50
    assert count == 2


def test_limiter_window_expiry_allows_again(test_settings: Settings) -> None:
    async def body(redis: Redis) -> None:
        limiter = FixedWindowLimiter(redis, _namespace(), limit=1, window_s=1)
        await limiter.record("k")
        with pytest.raises(TooManyRequests):
            await limiter.ensure_allowed("k")
        await asyncio.sleep(1.1)
        await limiter.ensure_allowed("k")

    _with_redis(test_settings, body)


def test_limiter_reset_clears_the_count(test_settings: Settings) -> None:
    async def body(redis: Redis) -> int:
        limiter = FixedWindowLimiter(redis, _namespace(), limit=2, window_s=60)
        await limiter.record("k")
        await limiter.record("k")
        await limiter.reset("k")
        await limiter.ensure_allowed("k")
        return await limiter.record("k")

    assert _with_redis(test_settings, body) == 1


def test_limiter_counts_concurrent_records_exactly(test_settings: Settings) -> None:
    async def body(redis: Redis) -> tuple[list[int], int]:
        limiter = FixedWindowLimiter(redis, _namespace(), limit=100, window_s=60)
        counts = await asyncio.gather(*(limiter.record("k") for _ in range(30)))
        return sorted(counts), await redis.ttl(limiter._key("k"))

    counts, ttl = _with_redis(test_settings, body)
    assert counts == list(range(1, 31))
    assert 0 < ttl <= 60


def test_acquire_counts_the_attempt_before_it_happens(test_settings: Settings) -> None:
    async def body(redis: Redis) -> tuple[int, TooManyRequests]:
        limiter = FixedWindowLimiter(redis, _namespace(), limit=2, window_s=60)
        await limiter.acquire("k")
        await limiter.acquire("k")
        with pytest.raises(TooManyRequests) as caught:
            await limiter.acquire("k")
        return int(await redis.get(limiter._key("k"))), caught.value

    count, refusal = _with_redis(test_settings, body)
    assert count == 2  # the refused attempt is not counted
    assert refusal.code == "too_many_attempts"
    assert 1 <= int(refusal.headers["Retry-After"]) <= 60


def test_concurrent_acquires_admit_exactly_the_limit(test_settings: Settings) -> None:
    async def body(redis: Redis) -> list[bool]:
        limiter = FixedWindowLimiter(redis, _namespace(), limit=5, window_s=60)

        async def attempt() -> bool:
            try:
                await limiter.acquire("k")
            except TooManyRequests:
                return False
            return True

        return list(await asyncio.gather(*(attempt() for _ in range(30))))

    assert _with_redis(test_settings, body).count(True) == 5


def test_release_gives_an_attempt_back(test_settings: Settings) -> None:
    async def body(redis: Redis) -> int:
        limiter = FixedWindowLimiter(redis, _namespace(), limit=1, window_s=60)
        await limiter.acquire("k")
        await limiter.release("k")
        await limiter.acquire("k")  # allowed again
        return int(await redis.get(limiter._key("k")))

    assert _with_redis(test_settings, body) == 1


def test_release_after_the_window_expired_leaves_no_key_behind(test_settings: Settings) -> None:
    async def body(redis: Redis) -> tuple[int, int]:
        limiter = FixedWindowLimiter(redis, _namespace(), limit=3, window_s=60)
        await limiter.release("never-acquired")
        return await redis.exists(limiter._key("never-acquired")), await redis.ttl(
            limiter._key("never-acquired")
        )

    # A DECR on a missing key would leave -1 forever (no TTL): one free attempt per window.
    assert _with_redis(test_settings, body) == (0, -2)
