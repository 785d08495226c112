"""Every tab change records a store event in its transaction, in order (smarttab.store_events)."""

from __future__ import annotations

from backend.core.settings import Settings
from tests.support.smarttab import DECLINED_VISA, Tabs, card, item, store_events, tab_events


def test_a_tabs_life_is_recorded_in_order_with_versions_and_totals(
    tabs: Tabs, test_settings: Settings
) -> None:
    tab = tabs.open_ok(label="T1", cashier_id="aiko")
    tab = tabs.add_item_ok(tab, name="Beer", unit_price=600, quantity=2, cashier_id="aiko")
    line = tab["items"][0]["id"]
    tab = tabs.update_item(tab, line, quantity=3).json()
    tab = tabs.add_item_ok(tab, name="Gyoza", unit_price=500)
    tab = tabs.remove_item(tab, tab["items"][1]["id"]).json()
    tab = tabs.update_ok(tab, tip_amount=200)
    tab = tabs.split_ok(tab, mode="equal", count=2)
    tab = tabs.pay(tab, 1, card(DECLINED_VISA, cashier_id="aiko")).json()["tab"]
    tab = tabs.pay_ok(tab, 1, card(cashier_id="aiko"))["tab"]
    tab = tabs.pay_ok(tab, 2, card(cashier_id="ben"))["tab"]
    tab = tabs.refund(tab, part_number=2, cashier_id="mgr").json()["tab"]

    events = tab_events(test_settings, tab)

    assert [event["event"] for event in events] == [
        "tab.opened",
        "tab.item_added",
        "tab.item_updated",
        "tab.item_added",
        "tab.item_removed",
        "tab.updated",
        "tab.split",
        "tab.payment_started",
        "tab.part_failed",
        "tab.payment_started",
        "tab.part_paid",
        "tab.payment_started",
        "tab.part_paid",
        "tab.paid",
        "tab.refund_requested",
        "tab.refunded",
    ]
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(seqs) == list(range(seqs[0], seqs[0] + len(seqs)))
    versions = [event["data"]["version"] for event in events]
    assert versions == sorted(versions)
    assert versions[-1] == tab["version"]
    assert all(event["data"]["tab_id"] == tab["id"] for event in events)
    final = events[-1]["data"]
    assert final["status"] == "partially_refunded"
    assert final["totals"]["total"] == tab["totals"]["total"] == 1800 + 180 + 200
    assert final["totals"]["amount_refunded"] == 1090
    by_type = {event["event"]: event["data"] for event in events}
    assert by_type["tab.opened"]["cashier_id"] == "aiko"
    assert by_type["tab.part_failed"]["failure_code"] == "generic_decline"
    assert by_type["tab.refunded"]["cashier_id"] == "mgr"
    assert by_type["tab.paid"]["status"] == "paid"
    assert by_type["tab.split"]["parts"] == [
        {"number": 1, "amount": 1090},
        {"number": 2, "amount": 1090},
    ]
    assert events[-3]["data"]["cashier_id"] == "ben"  # the part_paid of part 2


def test_refused_changes_record_nothing(tabs: Tabs, test_settings: Settings) -> None:
    tab = tabs.tab_with(item())
    before = store_events(test_settings, tab["store_id"])
    assert tabs.add_item(tab | {"version": 1}).status_code == 412
    assert tabs.update(tab, tip_amount=-1).status_code == 422
    assert tabs.split(tabs.open_ok(), mode="full").status_code == 409
    after = store_events(test_settings, tab["store_id"])
    assert [e["event"] for e in after[len(before) :]] == ["tab.opened"]
