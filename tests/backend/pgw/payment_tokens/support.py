"""Drivers for the payment-token tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from backend.core.settings import Settings
from tests.helpers import asyncpg_dsn, run
from tests.support.pgw import PayingTerminal
from tests.support.portal import Tenant, bearer

PROBLEM = "application/problem+json"


@dataclass
class Shop:
    """A terminal known to pgw that issues payment tokens; device tokens are fetched fresh."""

    paying: PayingTerminal
    portal: httpx.Client
    pgw: httpx.Client

    @property
    def tenant(self) -> Tenant:
        return self.paying.tenant

    @property
    def terminal_id(self) -> str:
        return self.paying.terminal.terminal_id

    @property
    def store_id(self) -> str:
        return self.paying.tenant.store_a_id

    def device_headers(self) -> dict[str, str]:
        return bearer(self.paying.terminal.fresh_token(self.portal))

    def issue(self, **body: Any) -> dict[str, Any]:
        response = self.issue_response(**body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def issue_response(self, **body: Any) -> httpx.Response:
        return self.pgw.post("/v1/payment-tokens", json=body, headers=self.device_headers())

    def pay_as_terminal(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.pgw.post(
            "/v1/payments",
            json=body,
            headers={**self.device_headers(), "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 201, response.text
        return dict(response.json())


def token_headers(token: str, *, idempotency_key: bool = False) -> dict[str, str]:
    headers = bearer(token)
    if idempotency_key:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return headers


def db_execute(settings: Settings, sql: str, *args: Any) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(asyncpg_dsn(settings.database_url))
        try:
            return [dict(row) for row in await connection.fetch(sql, *args)]
        finally:
            await connection.close()

    return run(go())
