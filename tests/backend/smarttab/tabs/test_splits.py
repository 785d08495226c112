"""POST /v1/tabs/{id}/splits: full, equal (remainder rule), by amounts, by items."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.smarttab import Tabs, card, item


def izakaya(tabs: Tabs) -> dict[str, Any]:
    """The worked example of docs/smarttab.md: total ¥3,076 with a ¥300 tip."""
    tab = tabs.tab_with(
        item("Draft beer", 583, quantity=2),
        item("Edamame", 379),
        item("Bento (take-out)", 863, tax_category="reduced"),
    )
    tab = tabs.update_ok(
        tab, discount={"kind": "fixed", "amount": 100}, service_charge_percent=10, tip_amount=300
    )
    assert tab["totals"]["total"] == 3076
    return tab


def amounts(tab: dict[str, Any]) -> list[int]:
    return [part["amount"] for part in tab["split"]["parts"]]


def test_full(tabs: Tabs) -> None:
    tab = tabs.split_ok(izakaya(tabs), mode="full", cashier_id="c-1")
    assert tab["split"]["mode"] == "full"
    [part] = tab["split"]["parts"]
    assert (part["number"], part["amount"], part["tip_share"], part["status"]) == (
        1,
        3076,
        300,
        "unpaid",
    )
    assert tab["amount_due"] == 3076


def test_equal_parts_give_the_remainder_to_the_first_parts(tabs: Tabs) -> None:
    tab = tabs.split_ok(izakaya(tabs), mode="equal", count=3)
    assert amounts(tab) == [1026, 1025, 1025]
    assert [part["tip_share"] for part in tab["split"]["parts"]] == [100, 100, 100]
    tab = tabs.split_ok(tab, mode="equal", count=7)
    assert amounts(tab) == [440, 440, 440, 439, 439, 439, 439]  # 3076 = 7 x 439 + 3
    assert sum(amounts(tab)) == 3076
    assert tab["split"]["generation"] == 2


def test_by_amounts(tabs: Tabs) -> None:
    tab = tabs.split_ok(izakaya(tabs), mode="amounts", amounts=[1000, 2076])
    assert amounts(tab) == [1000, 2076]
    assert sum(part["tip_share"] for part in tab["split"]["parts"]) == 300


def test_amounts_that_do_not_sum_to_the_total_are_refused(tabs: Tabs) -> None:
    tab = izakaya(tabs)
    response = tabs.split(tab, mode="amounts", amounts=[1000, 2000])
    assert response.status_code == 422
    assert response.json()["code"] == "split_amounts_mismatch"
    assert response.json()["total"] == 3076
    assert tabs.get(tab["id"])["split"] is None


def test_by_items_allocates_tax_service_charge_and_tip_by_the_same_rules(tabs: Tabs) -> None:
    tab = izakaya(tabs)
    beer, edamame, bento = (line["id"] for line in tab["items"])

    tab = tabs.split_ok(tab, mode="items", parts=[[beer], [bento, edamame]])

    first, second = tab["split"]["parts"]
    assert first["item_ids"] == [beer]
    assert second["item_ids"] == [bento, edamame]
    assert first["breakdown"] == {
        "net": 1116,
        "service_charge": 111,
        "taxes": {"standard": 123, "reduced": 0, "exempt": 0},
        "tax": 123,
    }
    assert second["breakdown"]["taxes"] == {"standard": 48, "reduced": 66, "exempt": 0}
    assert (first["tip_share"], second["tip_share"]) == (145, 155)
    assert amounts(tab) == [1495, 1581]


@pytest.mark.parametrize("case", ["missing", "repeated", "unknown", "empty"])
def test_items_must_each_be_in_exactly_one_part(tabs: Tabs, case: str) -> None:
    tab = izakaya(tabs)
    beer, edamame, bento = (line["id"] for line in tab["items"])
    parts = {
        "missing": [[beer], [edamame]],
        "repeated": [[beer, edamame], [edamame, bento]],
        "unknown": [[beer, edamame, bento], [str(uuid.uuid4())]],
        "empty": [[beer, edamame, bento], []],
    }[case]
    response = tabs.split(tab, mode="items", parts=parts)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "split_items_mismatch"
    assert {
        "missing": body["missing"] == [bento],
        "repeated": body["repeated"] == [edamame],
        "unknown": len(body["unknown"]) == 1,
        "empty": body["empty_parts"] == [2],
    }[case]


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "equal", "count": 0},
        {"mode": "equal", "count": 51},
        {"mode": "equal"},
        {"mode": "amounts", "amounts": []},
        {"mode": "amounts", "amounts": [0, 3076]},
        {"mode": "amounts", "amounts": [1538.5, 1537.5]},
        {"mode": "halves"},
        {"mode": "full", "count": 2},
        {},
    ],
)
def test_malformed_splits_are_422(tabs: Tabs, body: dict[str, Any]) -> None:
    tab = izakaya(tabs)
    response = tabs.change("POST", f"/v1/tabs/{tab['id']}/splits", tab, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"


def test_a_part_paying_only_tip_is_refused(tabs: Tabs) -> None:
    tab = tabs.tab_with(item("Gum", 1))  # ¥1 + tax 0
    tab = tabs.update_ok(tab, tip_amount=5)
    response = tabs.split(tab, mode="equal", count=3)
    assert response.status_code == 422
    assert response.json()["code"] == "split_part_too_small"


def test_an_empty_tab_has_nothing_to_pay(tabs: Tabs) -> None:
    response = tabs.split(tabs.open_ok(), mode="full")
    assert response.status_code == 409
    assert response.json()["code"] == "nothing_to_pay"


def test_changing_the_bill_voids_a_split_no_money_moved_on(tabs: Tabs) -> None:
    tab = tabs.split_ok(izakaya(tabs), mode="equal", count=2)
    tab = tabs.add_item_ok(tab, name="Dessert", unit_price=400)
    assert tab["split"] is None
    tab = tabs.split_ok(tab, mode="full")
    assert tab["split"]["generation"] == 2


def test_once_a_part_is_paid_the_bill_and_split_are_locked(tabs: Tabs) -> None:
    tab = tabs.split_ok(izakaya(tabs), mode="equal", count=2)
    tab = tabs.pay_ok(tab, 1, card())["tab"]
    assert tab["status"] == "open"
    assert tab["amount_due"] == 1538
    for response in (
        tabs.add_item(tab),
        tabs.update(tab, tip_amount=0),
        tabs.split(tab, mode="full"),
        tabs.remove_item(tab, tab["items"][0]["id"]),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "tab_locked"
    # A label is not part of the bill.
    assert tabs.update(tab, label="Party of 2").status_code == 200
