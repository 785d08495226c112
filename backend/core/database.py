"""Async engine, the per-request session, and side effects that wait for the commit."""

from __future__ import annotations

import logging
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
from sqlalchemy.orm import Session

from backend.core.errors import DependencyUnreachable, Problem, unreachable_dependency
from backend.core.settings import Settings

logger = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT_KEY = "mpac_after_commit"
_ON_COMMIT_KEY = "mpac_on_commit"


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
    name_connect_failures(engine)
    return engine


def name_connect_failures(engine: AsyncEngine) -> None:
    """Raise :class:`DependencyUnreachable` when a new connection cannot even be opened.

    asyncpg reports a server that is down (refused, or its unix socket gone during a restart)
    as a bare ``OSError``, which SQLAlchemy passes through unwrapped; named here, where it can
    only mean that, the error handlers can answer 503 instead of a 500 for a defect.
    """

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except OSError as exc:
            raise DependencyUnreachable(f"cannot connect to the database: {exc}") from exc


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


def on_commit(session: AsyncSession, record: Callable[[], None]) -> None:
    """Call ``record`` when the session's transaction commits, however it commits; never on
    rollback. For in-process bookkeeping (metrics): it cannot await, so no I/O; effects that
    reach other systems go through :func:`after_commit`."""
    session.info.setdefault(_ON_COMMIT_KEY, []).append(record)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    for record in session.info.pop(_ON_COMMIT_KEY, []):
        record()


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, previous_transaction: Any) -> None:
    session.info.pop(_ON_COMMIT_KEY, None)


async def commit_and_run_effects(session: AsyncSession) -> None:
    await session.commit()
    effects: list[AfterCommit] = session.info.pop(_AFTER_COMMIT_KEY, [])
    for effect in effects:
        try:
            await effect()
        except Exception as exc:
            # The write is committed, so the client must be told it succeeded: an error here
            # (Redis down for a publish) would make it retry a write that landed, and a POST
            # without an Idempotency-Key would land twice. Effects are notifications whose
            # readers catch up from the database (a store event's seq reveals the gap).
            if unreachable_dependency(exc) is not None:
                logger.warning("an after-commit effect could not run: %s", exc)
            else:
                logger.exception("an after-commit effect failed")


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
