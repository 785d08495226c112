"""backend.core.database: URL handling and the request session's commit/rollback rules."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text

from backend.core.database import (
    _request_session,
    after_commit,
    async_database_url,
    create_engine,
    create_sessionmaker,
)
from backend.core.errors import Problem
from backend.core.settings import Settings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
        (
            "postgresql://postgres@/db?host=/tmp/sock",
            "postgresql+asyncpg://postgres@/db?host=/tmp/sock",
        ),
    ],
)
def test_async_database_url(url: str, expected: str) -> None:
    assert async_database_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite:///x.db", ""])
def test_async_database_url_refuses_other_databases(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        async_database_url(url)


def _run_request(settings: Settings, raise_: BaseException | None) -> tuple[list[str], bool]:
    """Drive the per-request session dependency once; returns (effects run, row committed)."""

    async def main() -> tuple[list[str], bool]:
        engine = create_engine(settings, application_name="tests-db")
        try:
            sessionmaker = create_sessionmaker(engine)
            table = f"tests_probe_{uuid.uuid4().hex}"
            async with engine.begin() as connection:
                await connection.execute(text(f"CREATE TABLE {table} (id int)"))
            state = SimpleNamespace(sessionmaker=sessionmaker)
            request: Any = SimpleNamespace(app=SimpleNamespace(state=state))
            ran: list[str] = []

            async def effect() -> None:
                ran.append("effect")

            dependency = _request_session(request)
            session = await dependency.__anext__()
            insert = text(f"INSERT INTO {table} VALUES (1)")  # noqa: S608
            await session.execute(insert)
            after_commit(session, effect)
            assert ran == []
            if raise_ is None:
                with pytest.raises(StopAsyncIteration):
                    await dependency.__anext__()
            else:
                with pytest.raises(type(raise_)):
                    await dependency.athrow(raise_)
            async with engine.begin() as connection:
                count_rows = text(f"SELECT count(*) FROM {table}")  # noqa: S608
                count = (await connection.execute(count_rows)).scalar()
                await connection.execute(text(f"DROP TABLE {table}"))
            return ran, count == 1
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_request_session_commits_and_then_runs_effects(test_settings: Settings) -> None:
    assert _run_request(test_settings, None) == (["effect"], True)


def test_request_session_rolls_back_and_drops_effects_on_a_problem(
    test_settings: Settings,
) -> None:
    assert _run_request(test_settings, Problem("no", code="refused")) == ([], False)


def test_request_session_keeps_a_refusals_security_record(test_settings: Settings) -> None:
    # Problem(commit=True): the audit row written before refusing must survive the error.
    assert _run_request(test_settings, Problem("no", code="refused", commit=True)) == (
        ["effect"],
        True,
    )


def test_request_session_rolls_back_on_unexpected_errors(test_settings: Settings) -> None:
    assert _run_request(test_settings, RuntimeError("boom")) == ([], False)


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(
    test_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pre-ping on every checkout, but one idle past IDLE_PING_AFTER_S is checked first."""
    import backend.core.database as database

    monkeypatch.setattr(database, "IDLE_PING_AFTER_S", 0.2)

    async def main() -> tuple[int, int, int]:
        engine = create_engine(test_settings, application_name="tests-db-idle")
        admin = create_engine(test_settings, application_name="tests-db-admin")
        try:
            async with engine.connect() as connection:
                first = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            # Used a moment ago: handed out again as is, same server process.
            async with engine.connect() as connection:
                again = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            # The server drops it while it sits idle in the pool (a restart, an idle timeout).
            async with admin.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            await asyncio.sleep(0.4)
            async with engine.connect() as connection:
                after = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            return first, again, after
        finally:
            await engine.dispose()
            await admin.dispose()

    first, again, after = asyncio.run(main())
    assert again == first
    assert after != first
