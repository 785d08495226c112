"""Opening a tab, changing its items and adjustments, and what it answers (real HTTP)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from backend.core.authz import Role
from tests.support.pgw import PayingTerminal
from tests.support.smarttab import Tabs, card, etag_version, item


class TestOpen:
    def test_a_terminal_opens_a_tab_at_its_store(
        self, tabs: Tabs, terminal: PayingTerminal
    ) -> None:
        response = tabs.open(label="Window seat", table="T7", cashier_id="cashier-17")

        assert response.status_code == 201, response.text
        tab = response.json()
        assert tab["status"] == "open"
        assert tab["version"] == 1
        assert response.headers["etag"] == '"1"'
        assert response.headers["location"] == f"/v1/tabs/{tab['id']}"
        assert tab["store_id"] == terminal.tenant.store_a_id
        assert tab["merchant_id"] == terminal.tenant.merchant_id
        assert (tab["label"], tab["table"], tab["cashier_id"]) == (
            "Window seat",
            "T7",
            "cashier-17",
        )
        assert tab["opened_by"] == f"device:{terminal.terminal.terminal_id}"
        assert tab["currency"] == "JPY"
        assert tab["totals"]["total"] == 0
        assert tab["items"] == []
        assert tab["split"] is None

    def test_a_store_user_opens_a_tab_and_is_its_cashier(
        self, terminal: PayingTerminal, smarttab_client: httpx.Client
    ) -> None:
        cashier = terminal.tenant.user(Role.CASHIER)
        tab = Tabs(smarttab_client, cashier.headers).open_ok()
        assert tab["cashier_id"] == cashier.id
        assert tab["opened_by"] == f"user:{cashier.id}"

    def test_a_merchant_level_user_cannot_open_one_without_a_store(
        self, terminal: PayingTerminal, smarttab_client: httpx.Client
    ) -> None:
        admin = terminal.tenant.user(Role.MERCHANT_ADMIN)
        response = Tabs(smarttab_client, admin.headers).open()
        assert response.status_code == 403
        assert response.json()["code"] == "store_scope_required"

    def test_roles_without_tab_write_are_refused(
        self, terminal: PayingTerminal, smarttab_client: httpx.Client
    ) -> None:
        for role in (Role.AUDITOR, Role.PSP_ADMIN):
            response = Tabs(smarttab_client, terminal.tenant.user(role).headers).open()
            assert response.status_code == 403, role
            assert response.json()["code"] == "permission_denied"

    def test_without_a_token_it_is_401(self, smarttab_client: httpx.Client) -> None:
        response = smarttab_client.post("/v1/tabs", json={})
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize(
        "body",
        [
            {"currency": "XXX"},
            {"currency": "jpy"},
            {"label": ""},
            {"label": "x" * 101},
            {"service_charge_percent": 0},
            {"service_charge_percent": 101},
            {"service_charge_percent": 10.001},
            {"cashier_id": "x" * 65},
            {"unknown": 1},
        ],
    )
    def test_bad_input_is_a_precise_422(self, tabs: Tabs, body: dict[str, Any]) -> None:
        response = tabs.open(**body)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_failed"

    def test_a_usd_tab_with_a_service_charge(self, tabs: Tabs) -> None:
        tab = tabs.open_ok(currency="USD", service_charge_percent=12.5)
        tab = tabs.add_item_ok(tab, name="Burger", unit_price=1299, quantity=2)
        assert tab["service_charge_percent"] == 12.5
        # 12.5 % of 2598 = 324.75 -> 325 (half-even); tax on 2598 + 325 = 292.3 -> 292
        assert tab["totals"]["service_charge"] == 325
        assert tab["totals"]["tax_total"] == 292
        assert tab["totals"]["total"] == 2598 + 325 + 292


class TestItems:
    def test_items_are_priced_per_rate_with_the_tax_floored(self, tabs: Tabs) -> None:
        tab = tabs.tab_with(
            item("Draft beer", 583, quantity=2),
            item("Edamame", 379),
            item("Bento (take-out)", 863, tax_category="reduced"),
        )

        assert tab["version"] == 4
        assert [line["position"] for line in tab["items"]] == [1, 2, 3]
        assert [line["gross"] for line in tab["items"]] == [1166, 379, 863]
        totals = tab["totals"]
        assert totals["subtotal"] == 2408
        assert {tax["category"]: tax["tax"] for tax in totals["taxes"]} == {
            "standard": 154,
            "reduced": 69,
            "exempt": 0,
        }
        assert totals["total"] == 2631

    def test_adjust_and_remove_items(self, tabs: Tabs) -> None:
        tab = tabs.tab_with(item("Coffee", 500), item("Cake", 700, tax_category="reduced"))
        coffee, cake = (line["id"] for line in tab["items"])

        response = tabs.update_item(
            tab, coffee, quantity=3, discount={"kind": "fixed", "amount": 100}
        )
        assert response.status_code == 200, response.text
        tab = response.json()
        assert etag_version(response) == tab["version"] == 4
        assert tab["items"][0]["quantity"] == 3
        assert tab["items"][0]["item_discount"] == 100
        assert tab["totals"]["subtotal"] == 2200
        assert tab["totals"]["discount_total"] == 100

        response = tabs.update_item(tab, coffee, discount=None)
        tab = response.json()
        assert tab["items"][0]["discount"] is None
        assert tab["totals"]["discount_total"] == 0

        response = tabs.remove_item(tab, cake)
        assert response.status_code == 200, response.text
        tab = response.json()
        assert [line["name"] for line in tab["items"]] == ["Coffee"]
        assert tab["totals"]["total"] == 1650

    def test_unknown_items_are_404(self, tabs: Tabs) -> None:
        tab = tabs.tab_with(item())
        for response in (
            tabs.update_item(tab, str(uuid.uuid4()), quantity=2),
            tabs.remove_item(tab, str(uuid.uuid4())),
        ):
            assert response.status_code == 404
            assert response.json()["code"] == "item_not_found"

    @pytest.mark.parametrize(
        "body",
        [
            {"quantity": 0},
            {"quantity": -1},
            {"quantity": 1.5},
            {"unit_price": -1},
            {"unit_price": 10.5},
            {"unit_price": "100"},
            {"tax_category": "luxury"},
            {"name": ""},
            {"discount": {"kind": "percentage", "amount": 5}},
            {"discount": {"kind": "fixed", "amount": 0}},
            {"discount": {"kind": "percentage", "percent": 120}},
            {"discount": {"kind": "bogus", "percent": 1}},
        ],
    )
    def test_bad_items_are_refused(self, tabs: Tabs, body: dict[str, Any]) -> None:
        tab = tabs.open_ok()
        response = tabs.change("POST", f"/v1/tabs/{tab['id']}/items", tab, json=item(**body))
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_failed"
        assert tabs.get(tab["id"])["version"] == 1  # nothing written

    def test_an_empty_update_and_null_required_fields_are_refused(self, tabs: Tabs) -> None:
        tab = tabs.tab_with(item())
        line = tab["items"][0]["id"]
        assert tabs.update(tab).json()["code"] == "empty_update"
        assert tabs.update_item(tab, line).json()["code"] == "empty_update"
        response = tabs.update_item(tab, line, quantity=None)
        assert response.status_code == 422
        assert tabs.get(tab["id"])["version"] == tab["version"]

    def test_a_total_beyond_the_gateway_limit_is_refused(self, tabs: Tabs) -> None:
        tab = tabs.open_ok()
        for _ in range(2):
            response = tabs.add_item(tab, unit_price=10**10, quantity=9999)
            if response.status_code != 201:
                break
            tab = response.json()
        assert response.status_code == 422
        assert response.json()["code"] == "tab_total_too_large"


class TestAdjustments:
    def test_tab_discount_service_charge_and_tip(self, tabs: Tabs) -> None:
        tab = tabs.tab_with(
            item("Draft beer", 583, quantity=2),
            item("Edamame", 379),
            item("Bento (take-out)", 863, tax_category="reduced"),
        )
        tab = tabs.update_ok(
            tab,
            discount={"kind": "fixed", "amount": 100},
            service_charge_percent=10,
            tip_amount=300,
        )
        totals = tab["totals"]
        assert [line["tab_discount"] for line in tab["items"]] == [50, 15, 35]
        assert totals["discount_total"] == 100
        assert totals["service_charge"] == 231
        assert totals["tax_total"] == 237
        assert totals["tip"] == 300
        assert totals["total"] == 3076
        assert tab["discount"] == {"kind": "fixed", "percent": None, "amount": 100}

        tab = tabs.update_ok(
            tab, discount={"kind": "percentage", "percent": 5}, service_charge_percent=None
        )
        assert tab["discount"]["percent"] == 5
        assert tab["service_charge_percent"] is None
        assert tab["totals"]["tab_discount"] == 120
        assert tab["totals"]["service_charge"] == 0

    def test_label_and_table_change_alone(self, tabs: Tabs) -> None:
        tab = tabs.open_ok(label="A")
        tab = tabs.update_ok(tab, label="B", table="T2")
        assert (tab["label"], tab["table"]) == ("B", "T2")
        tab = tabs.update_ok(tab, label=None)
        assert tab["label"] is None


class TestCancelAndList:
    def test_a_tab_without_payments_can_be_cancelled_and_is_then_frozen(self, tabs: Tabs) -> None:
        tab = tabs.tab_with(item())
        response = tabs.cancel(tab, reason="walked out")
        assert response.status_code == 200, response.text
        tab = response.json()
        assert tab["status"] == "cancelled"
        assert tab["closed_at"] is not None
        for refused in (tabs.add_item(tab), tabs.update(tab, label="x"), tabs.cancel(tab)):
            assert refused.status_code == 409
            assert refused.json()["code"] == "tab_state_conflict"
            assert refused.json()["current_status"] == "cancelled"

    def test_a_tab_with_money_taken_cannot_be_cancelled(self, tabs: Tabs) -> None:
        tab = tabs.tab_with(item("A", 1000), item("B", 1000))
        tab = tabs.split_ok(tab, mode="equal", count=2)
        tab = tabs.pay_ok(tab, 1, card())["tab"]
        response = tabs.cancel(tab)
        assert response.status_code == 409
        assert response.json()["code"] == "tab_locked"

    def test_list_by_status_with_a_cursor(self, tabs: Tabs) -> None:
        opened = [tabs.open_ok(label=f"t{n}")["id"] for n in range(3)]
        cancelled = tabs.cancel(tabs.get(opened[0])).json()

        page = tabs.list(limit=2).json()
        assert [tab["id"] for tab in page["items"]] == opened[:2]
        rest = tabs.list(limit=2, after=page["next_cursor"]).json()
        assert [tab["id"] for tab in rest["items"]] == opened[2:]
        assert rest["next_cursor"] is None
        only_open = tabs.list(status="open").json()["items"]
        assert [tab["id"] for tab in only_open] == opened[1:]
        assert tabs.list(status="cancelled").json()["items"][0]["id"] == cancelled["id"]
        assert tabs.list(status="nope").status_code == 422


def test_malformed_json_is_400(tabs: Tabs, smarttab_client: httpx.Client) -> None:
    tab = tabs.open_ok()
    response = smarttab_client.post(
        f"/v1/tabs/{tab['id']}/items",
        content=b"{not json",
        headers={**tabs.headers, "If-Match": '"1"', "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


def test_a_malformed_tab_id_is_422(tabs: Tabs) -> None:
    response = tabs.read("not-a-uuid")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"


def test_an_unknown_tab_is_404(tabs: Tabs) -> None:
    response = tabs.read(str(uuid.uuid4()))
    assert response.status_code == 404
    assert response.json()["code"] == "tab_not_found"
