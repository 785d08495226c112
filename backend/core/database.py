"""Async engine, the per-request session, and side effects that wait for the commit."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from backend.core.errors import Problem
from backend.core.settings import Settings

AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT_KEY = "mpac_after_commit"


def async_database_url(url: str) -> str:
    """Turn any ``postgresql://`` URL (including pgserver's socket form) into asyncpg's."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"unsupported database URL scheme {parts.scheme!r}")
    return urlunsplit(("postgresql+asyncpg", *parts[1:]))


# A pooled connection unused for longer than this is checked (a round trip) before it is handed
# out: that is when a server restart, an idle timeout or a firewall may have dropped it.
IDLE_PING_AFTER_S = 10.0
_CHECKED_IN_AT = "mpac_checked_in_at"


def create_engine(settings: Settings, *, application_name: str) -> AsyncEngine:
    engine = create_async_engine(
        async_database_url(settings.database_url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        # Not pool_pre_ping: with asyncpg it costs three round trips (BEGIN, ";", ROLLBACK) on
        # every checkout, and a payment checks out three connections.
        pool_pre_ping=False,
        connect_args={"server_settings": {"application_name": application_name}},
    )
    ping_idle_connections(engine, IDLE_PING_AFTER_S)
    return engine


def ping_idle_connections(engine: AsyncEngine, idle_s: float) -> None:
    """Check a pooled connection before use only when it sat idle for ``idle_s`` or more.

    A connection that fails the check is discarded and the pool hands out another (the pool
    retries a checkout that raises ``DisconnectionError``). One in busy use was working a moment
    ago; if the server went away since, the statement fails with a disconnect error, after which
    SQLAlchemy invalidates every pooled connection, so a restart costs the requests in flight,
    as it would anyway.
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checking_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_s:
            return  # just connected, or used a moment ago
        try:
            # The adapted asyncpg connection's ping; checkouts run where it may await.
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("the idle connection did not answer a ping") from exc


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def after_commit(session: AsyncSession, effect: AfterCommit) -> None:
    """Run ``effect`` once the request's transaction has committed; dropped on rollback."""
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(effect)


async def commit_and_run_effects(session: AsyncSession) -> None:
    await session.commit()
    effects: list[AfterCommit] = session.info.pop(_AFTER_COMMIT_KEY, [])
    for effect in effects:
        await effect()


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except Problem as problem:
            if problem.commit:
                await commit_and_run_effects(session)
            else:
                await session.rollback()
                session.info.pop(_AFTER_COMMIT_KEY, None)
            raise
        except BaseException:
            await session.rollback()
            session.info.pop(_AFTER_COMMIT_KEY, None)
            raise
        else:
            await commit_and_run_effects(session)


# Services never commit: the request's session commits when the handler returns and rolls back
# when it raises, before the response is sent, so a client never sees a write that did not land.
SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]
