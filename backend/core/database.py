"""Async engine, the per-request session, and side effects that wait for the commit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from fastapi import Depends, Request
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


def create_engine(settings: Settings, *, application_name: str) -> AsyncEngine:
    return create_async_engine(
        async_database_url(settings.database_url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": application_name}},
    )


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
