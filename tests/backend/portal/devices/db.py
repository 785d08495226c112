"""Direct reads of the portal's tables, for what its API deliberately does not show.

Also the one piece of setup the API cannot do: ageing an activation code past its expiry.
Shared by the device and terminal tests.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import text

from backend.core.database import create_engine
from backend.core.settings import Settings
from tests.helpers import run


def fetch(settings: Settings, sql: str, **params: Any) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        engine = create_engine(settings, application_name="tests")
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(sql), params)
                return [dict(row._mapping) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return run(go())


def terminal_row(settings: Settings, terminal_id: str) -> dict[str, Any]:
    rows = fetch(
        settings, "SELECT * FROM portal.terminals WHERE id = :id", id=uuid.UUID(terminal_id)
    )
    assert len(rows) == 1, f"terminal {terminal_id} not found in the database"
    return rows[0]


def audit_rows(settings: Settings, *, request_id: str) -> list[dict[str, Any]]:
    """The audit rows one request wrote (requests send their own ``X-Request-ID``)."""
    return fetch(
        settings,
        "SELECT * FROM portal.audit_events WHERE request_id = :request_id ORDER BY id",
        request_id=request_id,
    )


def audit_rows_about(settings: Settings, target_id: str, event_type: str) -> list[dict[str, Any]]:
    return fetch(
        settings,
        "SELECT * FROM portal.audit_events"
        " WHERE target_id = :target_id AND event_type = :event_type ORDER BY id",
        target_id=target_id,
        event_type=event_type,
    )


def expire_activation_code(settings: Settings, terminal_id: str) -> None:
    fetch(
        settings,
        "UPDATE portal.terminals SET activation_code_expires_at = :expired WHERE id = :id",
        expired=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
        id=uuid.UUID(terminal_id),
    )


def new_request_id() -> str:
    return f"test-{uuid.uuid4().hex}"
