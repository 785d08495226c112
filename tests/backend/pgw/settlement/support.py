"""Helpers of the settlement tests: recompute totals from the payments API, read the database."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import asyncpg
import httpx

from backend.core.settings import Settings
from tests.helpers import asyncpg_dsn, run

SETTLED = ("captured", "partially_refunded", "refunded")


def all_payments(
    pgw: httpx.Client, headers: dict[str, str], **filters: str
) -> list[dict[str, Any]]:
    """Every payment the caller can see, through the paginated list."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200, **filters}
    while True:
        response = pgw.get("/v1/payments", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        if not page["next_cursor"]:
            return items
        params["before"] = page["next_cursor"]


def refunds_of(pgw: httpx.Client, headers: dict[str, str], payment_id: str) -> list[dict[str, Any]]:
    response = pgw.get(f"/v1/payments/{payment_id}/refunds", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json())


def _breakdown_entry() -> dict[str, int]:
    return {"count": 0, "amount": 0, "refund_count": 0, "refund_amount": 0, "net": 0}


def expected_totals(
    payments: Iterable[dict[str, Any]], refunds: Iterable[tuple[dict[str, Any], dict[str, Any]]]
) -> dict[str, Any]:
    """Totals as docs/settlement.md defines them, from payments and (refund, its payment) JSON."""
    totals: dict[str, Any] = {}

    def line(currency: str) -> dict[str, Any]:
        return totals.setdefault(
            currency,
            {
                "payment_count": 0,
                "refund_count": 0,
                "gross": 0,
                "tips": 0,
                "refunds": 0,
                "net": 0,
                "by_method": {},
                "by_card_brand": {},
                "by_entry_mode": {},
            },
        )

    def keys(payment: dict[str, Any]) -> dict[str, str]:
        return {
            "by_method": payment["method"],
            "by_card_brand": (payment["card"] or {}).get("brand") or "none",
            "by_entry_mode": payment["entry_mode"] or "none",
        }

    for payment in payments:
        current = line(payment["currency"])
        current["payment_count"] += 1
        current["gross"] += payment["amount_captured"]
        current["tips"] += payment["tip_amount"]
        for name, key in keys(payment).items():
            entry = current[name].setdefault(key, _breakdown_entry())
            entry["count"] += 1
            entry["amount"] += payment["amount_captured"]
    for refund, payment in refunds:
        current = line(refund["currency"])
        current["refund_count"] += 1
        current["refunds"] += refund["amount"]
        for name, key in keys(payment).items():
            entry = current[name].setdefault(key, _breakdown_entry())
            entry["refund_count"] += 1
            entry["refund_amount"] += refund["amount"]
    for current in totals.values():
        current["net"] = current["gross"] - current["refunds"]
        for name in ("by_method", "by_card_brand", "by_entry_mode"):
            for entry in current[name].values():
                entry["net"] = entry["amount"] - entry["refund_amount"]
    return totals


def csv_blocks(text: str) -> list[list[dict[str, str]]]:
    """The CSV's blocks (separated by an empty line), each as rows keyed by its header."""
    blocks: list[list[list[str]]] = [[]]
    for row in csv.reader(io.StringIO(text)):
        if not row:
            blocks.append([])
        else:
            blocks[-1].append(row)
    return [[dict(zip(rows[0], row, strict=True)) for row in rows[1:]] for rows in blocks]


async def _fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


def db_fetch(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    """Read the database directly (what the API cannot show: every row, no scope)."""
    return run(_fetch(settings.database_url, query, *args))


async def _execute(url: str, query: str, *args: Any) -> str:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return str(await connection.execute(query, *args))
    finally:
        await connection.close()


def db_execute(settings: Settings, query: str, *args: Any) -> str:
    return run(_execute(settings.database_url, query, *args))
