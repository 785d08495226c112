"""Paying parts through pgw: declines and retries, lost responses, QR, who paid (real pgw)."""

from __future__ import annotations

from typing import Any

import httpx

from backend.core.authz import Role
from backend.core.settings import Settings
from tests.support.pgw import PayingTerminal, provider_api, simulate_qr, wait_until
from tests.support.smarttab import (
    DECLINED_VISA,
    TIMEOUT_VISA,
    Tabs,
    card,
    item,
    pgw_payments_of,
    tab_events,
)


def dinner(tabs: Tabs, *, parts: int = 2) -> dict[str, Any]:
    tab = tabs.tab_with(item("Course", 4000, quantity=2), item("Wine", 3000))
    assert tab["totals"]["total"] == 12100
    return tabs.split_ok(tab, mode="equal", count=parts)


def test_a_declined_part_leaves_the_tab_open_and_a_retry_pays_it_without_double_charge(
    tabs: Tabs, test_settings: Settings
) -> None:
    tab = dinner(tabs)

    declined = tabs.pay(tab, 1, card(DECLINED_VISA, cashier_id="aiko"))

    assert declined.status_code == 200, declined.text
    result = declined.json()
    assert result["outcome"] == "failed"
    assert result["payment"]["status"] == "declined"
    assert result["payment"]["failure_code"] == "generic_decline"
    part = result["part"]
    assert part["status"] == "failed"
    assert part["last_attempt"]["number"] == 1
    assert part["last_attempt"]["failure_code"] == "generic_decline"
    tab = result["tab"]
    assert tab["status"] == "open"
    assert tab["amount_paid"] == 0

    second = tabs.pay_ok(tab, 2, card(cashier_id="ben"))
    assert second["tab"]["status"] == "open"  # part 1 still owes
    retry = tabs.pay_ok(second["tab"], 1, card(cashier_id="aiko"))

    assert retry["part"]["last_attempt"]["number"] == 2
    tab = retry["tab"]
    assert tab["status"] == "paid"
    assert tab["closed_at"] is not None
    assert tab["amount_paid"] == 12100
    assert tab["amount_due"] == 0
    assert [p["status"] for p in tab["split"]["parts"]] == ["paid", "paid"]
    assert [p["cashier_id"] for p in tab["split"]["parts"]] == ["aiko", "ben"]
    payments = pgw_payments_of(test_settings, tab)
    captured = [p for p in payments if p["status"] == "captured"]
    assert sorted(p["amount_captured"] for p in captured) == [6050, 6050]
    assert [p["status"] for p in payments].count("declined") == 1
    assert len(payments) == 3
    # A new attempt after a decline is a new payment under a new key and reference.
    references = {p["reference"] for p in payments}
    assert len(references) == 3
    assert all(p["cashier_id"] in ("aiko", "ben") for p in payments)


def test_a_paid_part_cannot_be_paid_again(tabs: Tabs) -> None:
    tab = tabs.pay_ok(dinner(tabs), 1, card())["tab"]
    response = tabs.pay(tab, 1, card())
    assert response.status_code == 409
    assert response.json()["code"] == "part_already_paid"


def test_paying_needs_a_split_and_an_existing_part(tabs: Tabs) -> None:
    tab = tabs.tab_with(item())
    response = tabs.pay(tab, 1, card())
    assert response.status_code == 409
    assert response.json()["code"] == "split_required"
    tab = tabs.split_ok(tab, mode="full")
    response = tabs.pay(tab, 2, card())
    assert response.status_code == 404
    assert response.json()["code"] == "part_not_found"
    assert tabs.get(tab["id"])["version"] == tab["version"]  # no half-write


def test_card_fields_are_checked_before_anything_is_written(tabs: Tabs) -> None:
    tab = tabs.split_ok(tabs.tab_with(item()), mode="full")
    cases = [
        ({"method": "card_present"}, "card_required"),
        ({"method": "qr_wallet", "card": card()["card"]}, "card_not_allowed"),
        (card("12"), "validation_failed"),
        (card(tip_amount=-1), "validation_failed"),
        (card(tip_amount="5"), "validation_failed"),
        ({"method": "cash"}, "validation_failed"),
    ]
    for body, code in cases:
        response = tabs.pay(tab, 1, body)
        assert response.status_code == 422, body
        assert response.json()["code"] == code
        assert "4242424242424242" not in response.text
    assert tabs.get(tab["id"])["version"] == tab["version"]


def test_a_tip_at_payment_is_added_to_the_part(tabs: Tabs, test_settings: Settings) -> None:
    tab = tabs.tab_with(item("Lunch", 1000))
    tab = tabs.update_ok(tab, tip_amount=100)  # total 1100 + 100
    tab = tabs.split_ok(tab, mode="full")

    result = tabs.pay_ok(tab, 1, card(tip_amount=150))

    assert result["part"]["last_attempt"]["amount"] == 1100
    assert result["part"]["last_attempt"]["tip_amount"] == 250
    assert result["part"]["amount_captured"] == 1350
    assert result["tab"]["amount_paid"] == 1350
    [payment] = pgw_payments_of(test_settings, tab)
    assert (payment["amount"], payment["tip_amount"], payment["amount_captured"]) == (
        1100,
        250,
        1350,
    )


def test_a_retry_of_the_same_attempt_after_a_lost_response_charges_once(
    tabs: Tabs, test_settings: Settings
) -> None:
    tab = dinner(tabs)

    # The provider charges but answers after pgw stopped waiting: 202, outcome unknown.
    lost = tabs.pay(tab, 1, card(TIMEOUT_VISA))

    assert lost.status_code == 202, lost.text
    result = lost.json()
    assert result["outcome"] == "pending"
    assert result["payment"]["status"] == "processing"
    assert result["part"]["status"] == "processing"
    assert result["tab"]["status"] == "paying"
    tab = result["tab"]
    for refused in (tabs.add_item(tab), tabs.split(tab, mode="full"), tabs.cancel(tab)):
        assert refused.status_code == 409

    # The same attempt again: the same Idempotency-Key, so pgw resumes the one payment.
    retry = tabs.pay_ok(tab, 1, card(TIMEOUT_VISA))

    assert retry["part"]["attempts"] == 1
    assert retry["payment"]["id"] == result["payment"]["id"]
    assert retry["tab"]["status"] == "open"
    payments = pgw_payments_of(test_settings, tab)
    assert [(p["id"], p["status"]) for p in payments] == [(result["payment"]["id"], "captured")]
    with provider_api(test_settings) as provider:
        charge = provider.get(f"/v1/authorizations/by-reference/{payments[0]['id']}")
    assert charge.json()["amount_captured"] == 6050


def test_a_pending_part_is_settled_by_a_refresh(tabs: Tabs, test_settings: Settings) -> None:
    tab = tabs.split_ok(tabs.tab_with(item("Omakase", 20000)), mode="full")
    result = tabs.pay(tab, 1, card(TIMEOUT_VISA)).json()
    assert result["outcome"] == "pending"
    tab = result["tab"]

    def settled() -> dict[str, Any] | None:
        nonlocal tab
        tab = tabs.refresh_ok(tab)
        return tab if tab["status"] == "paid" else None

    paid = wait_until(settled, timeout_s=20, interval_s=0.5, what="the tab to be paid")

    assert paid["split"]["parts"][0]["amount_captured"] == 22000
    assert len(pgw_payments_of(test_settings, tab)) == 1
    # Nothing left to learn: a refresh changes nothing, not even the version.
    again = tabs.refresh_ok(paid)
    assert again["version"] == paid["version"]


def test_a_retry_in_doubt_with_other_details_is_refused(tabs: Tabs) -> None:
    tab = tabs.split_ok(tabs.tab_with(item("Omakase", 20000)), mode="full")
    tab = tabs.pay(tab, 1, card(TIMEOUT_VISA)).json()["tab"]

    response = tabs.pay(tab, 1, card(TIMEOUT_VISA, tip_amount=500))

    assert response.status_code == 409
    assert response.json()["code"] == "attempt_in_doubt"


def test_a_qr_wallet_part_is_pending_until_the_customer_pays(
    tabs: Tabs, test_settings: Settings
) -> None:
    tab = tabs.split_ok(tabs.tab_with(item("Ramen", 900)), mode="full")

    response = tabs.pay(tab, 1, {"method": "qr_wallet"})

    assert response.status_code == 202, response.text
    result = response.json()
    assert result["payment"]["status"] == "requires_action"
    assert result["part"]["last_attempt"]["status"] == "requires_action"
    assert result["part"]["last_attempt"]["qr_payload"]
    simulate_qr(test_settings, result["payment"]["id"], "paid")

    tab = result["tab"]

    def settled() -> dict[str, Any] | None:
        nonlocal tab
        tab = tabs.refresh_ok(tab)
        return tab if tab["status"] == "paid" else None

    paid = wait_until(settled, timeout_s=10, interval_s=0.3, what="the QR payment")
    assert paid["amount_paid"] == 990


def test_paying_needs_payment_create_as_well(
    terminal: PayingTerminal, tabs: Tabs, smarttab_client: httpx.Client
) -> None:
    tab = tabs.split_ok(tabs.tab_with(item()), mode="full")
    admin = Tabs(smarttab_client, terminal.tenant.user(Role.MERCHANT_ADMIN).headers)
    response = admin.pay(tab, 1, card())
    assert response.status_code == 403
    assert response.json()["permission"] == "payment:create"


def test_a_cashier_pays_with_their_own_token(
    terminal: PayingTerminal, smarttab_client: httpx.Client, test_settings: Settings
) -> None:
    cashier = terminal.tenant.user(Role.CASHIER)
    tabs = Tabs(smarttab_client, cashier.headers)
    tab = tabs.split_ok(tabs.tab_with(item()), mode="full")

    result = tabs.pay_ok(tab, 1, card())

    assert result["part"]["cashier_id"] == cashier.id
    paid = [event for event in tab_events(test_settings, tab) if event["event"] == "tab.part_paid"]
    assert paid[0]["data"]["cashier_id"] == cashier.id
    assert paid[0]["data"]["actor"] == f"user:{cashier.id}"
