"""End-of-day settlement: the cashier closes the terminal's day (END_OF_DAY), and the Z-report's
counts and totals match the payments and refunds the gateway holds for the day
(``docs/settlement.md``)."""

from __future__ import annotations

import json
from typing import Any

from pytest_bdd import given, then, when

from features.support.backoffice import Backoffice
from features.support.terminals import Terminal, Transaction, expect
from features.support.vocabulary import step_text, yen
from terminal_emulator.contract import Action, Status

SETTLED = {"captured", "partially_refunded", "refunded"}


def _totals(closing: Transaction) -> dict[str, Any]:
    result = expect(closing.result(), Status.APPROVED, what="the end of day")
    totals = json.loads(result.totals or "{}")
    return dict(totals.get("JPY") or {})


@given(step_text("the terminal's earlier days are closed"))
def earlier_days_closed(terminal: Terminal) -> None:
    """An END_OF_DAY first, so the day starts empty (a real device has a past)."""
    expect(terminal.end_of_day().result(), Status.APPROVED, what="closing the earlier days")


@when(step_text("the cashier closes the day on the terminal"), target_fixture="closing")
def cashier_closes_day(terminal: Terminal) -> Transaction:
    """END_OF_DAY for the terminal: pgw makes a settlement batch of what is not in one yet."""
    return terminal.end_of_day()


@then(step_text("the day is closed with {payments:Count} payment(s) and {refunds:Count} refund(s)"))
def day_closed_with(closing: Transaction, payments: int, refunds: int) -> None:
    """The Z-report counts only settled payments (not declined ones) and succeeded refunds."""
    result = expect(closing.result(), Status.APPROVED, what="the end of day")
    assert result.settlement_id, "the end of day names no settlement batch"
    assert (result.payment_count, result.refund_count) == (payments, refunds), (
        f"the Z-report counts {result.payment_count} payment(s) and {result.refund_count} "
        f"refund(s), expected {payments} and {refunds}"
    )


@then(step_text("the day's takings are {gross:Yen} gross, {refunded:Yen} refunded, {net:Yen} net"))
def day_takings(closing: Transaction, gross: int, refunded: int, net: int) -> None:
    """The Z-report's JPY totals: captured (tips included), refunded, and the difference."""
    totals = _totals(closing)
    shown = (totals.get("gross", 0), totals.get("refunds", 0), totals.get("net", 0))
    assert shown == (gross, refunded, net), (
        f"the Z-report says {yen(shown[0])} gross, {yen(shown[1])} refunded, {yen(shown[2])} net"
    )


@then(step_text("the day's totals match what the gateway holds for the day's payments"))
def totals_match_gateway(backoffice: Backoffice, terminal: Terminal, closing: Transaction) -> None:
    """Recomputed from pgw's own records of the payments and refunds the scenario made on the
    terminal since its earlier days were closed; and the batch pgw stored says the same."""
    totals = _totals(closing)
    payment_ids, refund_ids = set(), set()
    for transaction in terminal.history:
        result = transaction.result() if transaction.future.done() else None
        if result is None or result.status is not Status.APPROVED:
            continue
        if result.action is Action.PAYMENT and result.payment_id:
            payment_ids.add(result.payment_id)
        if result.action is Action.REFUND and result.refund_id:
            refund_ids.add(result.refund_id)
    payments = [backoffice.payment(payment_id) for payment_id in sorted(payment_ids)]
    settled = [payment for payment in payments if payment["status"] in SETTLED]
    refunds = [
        refund
        for payment in payments
        for refund in backoffice.refunds(str(payment["id"]))
        if refund["id"] in refund_ids and refund["status"] == "succeeded"
    ]
    expected = {
        "payment_count": len(settled),
        "refund_count": len(refunds),
        "gross": sum(payment["amount_captured"] for payment in settled),
        "refunds": sum(refund["amount"] for refund in refunds),
    }
    shown = {key: totals.get(key, 0) for key in expected}
    assert shown == expected, f"the Z-report says {shown}, pgw's records add up to {expected}"
    result = closing.result()
    batch = backoffice.deployment.pgw.get(
        f"/v1/settlements/{result.settlement_id}", headers=backoffice.deployment.admin.headers
    )
    assert batch.status_code == 200, batch.text
    assert batch.json()["totals"].get("JPY", {}) == totals, (
        "the batch pgw stored differs from what the terminal reported"
    )
