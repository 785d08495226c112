"""Refunding a paid tab, whole or by part, through pgw's refunds (signed as smarttab)."""

from __future__ import annotations

from typing import Any

import httpx

from backend.core.authz import Role
from backend.core.settings import Settings
from tests.support.pgw import PayingTerminal
from tests.support.smarttab import Tabs, card, item, pgw_payments_of


def paid_tab(tabs: Tabs) -> dict[str, Any]:
    tab = tabs.tab_with(item("Course", 4000, quantity=2), item("Wine", 3000))
    tab = tabs.split_ok(tab, mode="amounts", amounts=[5000, 7100])
    tab = tabs.pay_ok(tab, 1, card())["tab"]
    tab = tabs.pay_ok(tab, 2, card(tip_amount=400))["tab"]
    assert tab["status"] == "paid"
    assert tab["amount_paid"] == 12500
    return tab


def test_refund_a_whole_paid_tab(tabs: Tabs, test_settings: Settings) -> None:
    tab = paid_tab(tabs)

    response = tabs.refund(tab, reason="wrong table", cashier_id="mgr-1")

    assert response.status_code == 201, response.text
    result = response.json()
    assert [(r["part_number"], r["amount"], r["status"]) for r in result["refunds"]] == [
        (1, 5000, "succeeded"),
        (2, 7500, "succeeded"),  # the tip at payment is refunded too
    ]
    tab = result["tab"]
    assert tab["status"] == "refunded"
    assert tab["amount_refunded"] == 12500
    assert [p["status"] for p in tab["split"]["parts"]] == ["refunded", "refunded"]
    assert all(r["cashier_id"] == "mgr-1" for r in tab["refunds"])
    payments = pgw_payments_of(test_settings, tab)
    assert sorted((p["status"], p["amount_refunded"]) for p in payments) == [
        ("refunded", 5000),
        ("refunded", 7500),
    ]
    again = tabs.refund(tab)
    assert again.status_code == 409
    assert again.json()["code"] == "tab_state_conflict"


def test_refund_part_of_one_part(tabs: Tabs, test_settings: Settings) -> None:
    tab = paid_tab(tabs)

    result = tabs.refund(tab, part_number=2, amount=1000).json()

    assert [(r["part_number"], r["amount"]) for r in result["refunds"]] == [(2, 1000)]
    tab = result["tab"]
    assert tab["status"] == "partially_refunded"
    assert [p["status"] for p in tab["split"]["parts"]] == ["paid", "partially_refunded"]
    too_much = tabs.refund(tab, part_number=2, amount=6501)
    assert too_much.status_code == 422
    assert too_much.json()["code"] == "refund_exceeds_paid"
    assert too_much.json()["refundable"] == 6500

    rest = tabs.refund(tab).json()  # everything left, on both parts
    assert sorted((r["part_number"], r["amount"]) for r in rest["refunds"]) == [
        (1, 5000),
        (2, 6500),
    ]
    assert rest["tab"]["status"] == "refunded"
    part_two = next(p for p in pgw_payments_of(test_settings, tab) if p["amount_captured"] == 7500)
    assert part_two["amount_refunded"] == 7500


def test_refunds_need_a_paid_tab_and_a_valid_request(tabs: Tabs) -> None:
    tab = tabs.split_ok(tabs.tab_with(item()), mode="full")
    response = tabs.refund(tab)
    assert response.status_code == 409
    assert response.json()["code"] == "tab_state_conflict"
    tab = paid_tab(tabs)
    response = tabs.refund(tab, amount=100)
    assert response.status_code == 422
    assert response.json()["code"] == "refund_part_required"
    response = tabs.refund(tab, part_number=3)
    assert response.status_code == 404
    assert response.json()["code"] == "part_not_found"
    assert tabs.get(tab["id"])["version"] == tab["version"]


def test_a_cashier_cannot_refund(
    terminal: PayingTerminal, tabs: Tabs, smarttab_client: httpx.Client
) -> None:
    tab = paid_tab(tabs)
    cashier = Tabs(smarttab_client, terminal.tenant.user(Role.CASHIER).headers)
    response = cashier.refund(tab)
    assert response.status_code == 403
    assert response.json()["permission"] == "payment:refund"
    manager = Tabs(smarttab_client, terminal.tenant.user(Role.STORE_MANAGER).headers)
    assert manager.refund(tab, part_number=1).status_code == 201
