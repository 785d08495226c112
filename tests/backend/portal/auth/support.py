"""Helpers for the portal auth tests: reading the database, clients from other addresses."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from typing import Any

import asyncpg
import httpx

from backend.core.settings import Settings
from tests.helpers import asyncpg_dsn


async def _connect(settings: Settings) -> asyncpg.Connection:
    connection = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
    return connection


def fetch(settings: Settings, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of ``sql`` on the session's database, as dicts."""

    async def main() -> list[dict[str, Any]]:
        connection = await _connect(settings)
        try:
            return [dict(row) for row in await connection.fetch(sql, *args)]
        finally:
            await connection.close()

    return asyncio.run(main())


def execute(settings: Settings, sql: str, *args: Any) -> str:
    async def main() -> str:
        connection = await _connect(settings)
        try:
            return str(await connection.execute(sql, *args))
        finally:
            await connection.close()

    return asyncio.run(main())


def audit_by_request(settings: Settings, request_id: str) -> list[dict[str, Any]]:
    """The audit rows one request wrote (the request id is in every problem body)."""
    return fetch(
        settings, "SELECT * FROM portal.audit_events WHERE request_id = $1 ORDER BY id", request_id
    )


def refresh_row(settings: Settings, refresh_token: str) -> dict[str, Any]:
    """The stored link of a refresh token (only its SHA-256 is kept)."""
    secret_hash = hashlib.sha256(refresh_token.encode()).hexdigest()
    rows = fetch(
        settings, "SELECT * FROM portal.refresh_tokens WHERE secret_hash = $1", secret_hash
    )
    assert len(rows) == 1, f"expected one refresh token row, found {len(rows)}"
    return rows[0]


def family_rows(settings: Settings, family_id: Any) -> list[dict[str, Any]]:
    return fetch(
        settings,
        "SELECT * FROM portal.refresh_tokens WHERE family_id = $1 ORDER BY issued_at",
        family_id,
    )


def random_loopback_address() -> str:
    """An address in 127.0.0.0/8 other than 127.0.0.1: Linux routes the whole range locally."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def client_from(base_url: str, address: str) -> httpx.Client:
    """A client whose connections come from ``address``, which the portal sees as client IP.

    Login failures are also counted per client address; tests that fail logins on purpose use
    their own address so they cannot push 127.0.0.1, which every other test shares, over it.
    """
    return httpx.Client(
        base_url=base_url,
        timeout=10.0,
        transport=httpx.HTTPTransport(local_address=address),
    )


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert ``response`` is the problem ``status``/``code``; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body
