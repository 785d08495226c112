"""Closes racing payments and refunds: every settled payment ends in exactly one batch."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from backend.core.authz import Role
from backend.core.settings import Settings
from tests.backend.pgw.settlement.support import SETTLED, db_fetch
from tests.support.pgw import (
    APPROVED_VISA,
    GENERIC_DECLINE,
    PayingTerminal,
    card_payment,
    close_settlement,
    paying_terminal,
    refund,
)

PAYMENTS_PER_TERMINAL = 15


def _client(settings: Settings) -> httpx.Client:
    return httpx.Client(base_url=settings.url_of("pgw"), timeout=30)


@pytest.mark.slow
def test_payments_refunds_and_closes_racing_leave_each_payment_in_exactly_one_batch(
    shop: PayingTerminal,
    portal: httpx.Client,
    settlement_settings: Settings,
) -> None:
    second = paying_terminal(settlement_settings, portal, shop.tenant)
    manager = shop.tenant.user(Role.STORE_MANAGER).headers
    terminals = (shop, second)
    captured: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    paying_done = threading.Event()
    rng = random.Random(20240611)
    amounts = [[rng.randint(100, 9000) for _ in range(PAYMENTS_PER_TERMINAL)] for _ in terminals]

    def guarded(work: Callable[[httpx.Client], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                with _client(settlement_settings) as pgw:
                    work(pgw)
            except BaseException as exc:  # reported by the main thread
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")

        return run

    def pay(terminal: PayingTerminal, its_amounts: list[int]) -> Callable[[httpx.Client], None]:
        def work(pgw: httpx.Client) -> None:
            for n, amount in enumerate(its_amounts):
                pan = GENERIC_DECLINE if n % 5 == 4 else APPROVED_VISA
                response = terminal.pay(pgw, card_payment(pan, amount=amount, tip_amount=n))
                assert response.status_code == 201, response.text
                if response.json()["status"] == "captured":
                    with lock:
                        captured.append(response.json()["id"])

        return work

    def refunds(pgw: httpx.Client) -> None:
        refunded: set[str] = set()
        while not paying_done.is_set() or len(refunded) < 6:
            with lock:
                candidates = [p for p in captured if p not in refunded]
            if not candidates:
                if paying_done.is_set():
                    return
                time.sleep(0.02)
                continue
            payment_id = candidates[0]
            response = refund(pgw, shop.headers, payment_id, 50)
            assert response.status_code == 201, response.text
            refunded.add(payment_id)

    def closes(headers: dict[str, str], body: dict[str, Any]) -> Callable[[httpx.Client], None]:
        def work(pgw: httpx.Client) -> None:
            while not paying_done.is_set():
                response = close_settlement(pgw, headers, body)
                assert response.status_code == 201, response.text

        return work

    # One request first: pgw fetches the portal's JWKS on the first token it sees, and callers
    # racing that first fetch are refused with token_unknown_kid (backend/core/jwks.py).
    with _client(settlement_settings) as pgw:
        assert pgw.get("/v1/settlements", headers=manager).status_code == 200
    payers = [
        threading.Thread(target=guarded(pay(terminal, its_amounts)))
        for terminal, its_amounts in zip(terminals, amounts, strict=True)
    ]
    others = [
        threading.Thread(target=guarded(refunds)),
        threading.Thread(target=guarded(closes(shop.headers, {}))),
        threading.Thread(target=guarded(closes(second.headers, {}))),
        threading.Thread(target=guarded(closes(manager, {}))),
    ]
    for thread in payers + others:
        thread.start()
    for thread in payers:
        thread.join(120)
    paying_done.set()
    for thread in others:
        thread.join(120)
    assert not errors, errors
    with _client(settlement_settings) as pgw:
        final = close_settlement(pgw, manager)
        assert final.status_code == 201, final.text

    merchant_id = uuid.UUID(shop.tenant.merchant_id)
    payments = db_fetch(
        settlement_settings,
        "SELECT id, status, terminal_id, amount_captured, tip_amount, settlement_batch_id"
        " FROM pgw.payments WHERE merchant_id = $1",
        merchant_id,
    )
    refund_rows = db_fetch(
        settlement_settings,
        "SELECT id, amount, terminal_id, settlement_batch_id FROM pgw.refunds"
        " WHERE merchant_id = $1",
        merchant_id,
    )
    batches = db_fetch(
        settlement_settings,
        "SELECT id, scope, terminal_id, period_start, period_end, payment_count, refund_count,"
        " totals FROM pgw.settlement_batches WHERE merchant_id = $1",
        merchant_id,
    )
    settled = [p for p in payments if p["status"] in SETTLED]
    assert len(payments) == 2 * PAYMENTS_PER_TERMINAL
    assert len(settled) == len(captured) == 2 * (PAYMENTS_PER_TERMINAL - PAYMENTS_PER_TERMINAL // 5)
    assert len(refund_rows) >= 6
    busy = [b for b in batches if b["payment_count"] and str(b["id"]) != final.json()["id"]]
    assert len(busy) >= 2, "the closes did not run while paying"
    # Every settled payment and every refund is in a batch; nothing else is.
    assert all(p["settlement_batch_id"] is not None for p in settled)
    assert all(p["settlement_batch_id"] is None for p in payments if p["status"] not in SETTLED)
    assert all(r["settlement_batch_id"] is not None for r in refund_rows)
    # ... and in exactly one: the batches' counts and totals add up to the whole day.
    totals = [json.loads(b["totals"]) for b in batches]
    assert sum(b["payment_count"] for b in batches) == len(settled)
    assert sum(b["refund_count"] for b in batches) == len(refund_rows)
    assert sum(t.get("JPY", {}).get("gross", 0) for t in totals) == sum(
        p["amount_captured"] for p in settled
    )
    assert sum(t.get("JPY", {}).get("refunds", 0) for t in totals) == sum(
        r["amount"] for r in refund_rows
    )
    # Each batch's totals are those of the rows stamped with its id, all of its own terminal.
    members: dict[uuid.UUID, list[Any]] = defaultdict(list)
    refund_members: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for p in settled:
        members[p["settlement_batch_id"]].append(p)
    for r in refund_rows:
        refund_members[r["settlement_batch_id"]].append(r)
    for batch, batch_totals in zip(batches, totals, strict=True):
        rows, its_refunds = members[batch["id"]], refund_members[batch["id"]]
        assert batch["payment_count"] == len(rows)
        assert batch["refund_count"] == len(its_refunds)
        jpy = batch_totals.get("JPY", {})
        assert jpy.get("gross", 0) == sum(p["amount_captured"] for p in rows)
        assert jpy.get("tips", 0) == sum(p["tip_amount"] for p in rows)
        assert jpy.get("refunds", 0) == sum(r["amount"] for r in its_refunds)
        if batch["scope"] == "terminal":
            assert {p["terminal_id"] for p in rows} <= {batch["terminal_id"]}
            assert {r["terminal_id"] for r in its_refunds} <= {batch["terminal_id"]}
    # Each terminal's (and the store's) batches follow one another without a gap.
    chains: dict[tuple[str, Any], list[Any]] = defaultdict(list)
    for batch in batches:
        chains[(batch["scope"], batch["terminal_id"])].append(batch)
    for chain in chains.values():
        chain.sort(key=lambda b: b["period_end"])
        assert chain[0]["period_start"] is None
        for before, after in itertools.pairwise(chain):
            assert after["period_start"] == before["period_end"]
