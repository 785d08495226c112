"""Redis client construction (TCP or the embedded server's unix socket)."""

from __future__ import annotations

from redis.asyncio import Redis

from backend.core.settings import Settings


def create_redis(settings: Settings) -> Redis:
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
