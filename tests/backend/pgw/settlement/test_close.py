"""Closing a terminal or a store: what a batch holds, its totals, and who may close."""

from __future__ import annotations

import uuid

import httpx
import pytest

from backend.core.authz import Role
from backend.core.settings import Settings
from tests.backend.pgw.settlement.support import (
    SETTLED,
    all_payments,
    expected_totals,
    refunds_of,
)
from tests.support.pgw import (
    APPROVED_VISA,
    GENERIC_DECLINE,
    PayingTerminal,
    card_payment,
    close_settlement,
    paying_terminal,
    qr_payment,
    refund,
    simulate_qr,
    wait_for_status,
)

MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
JCB = "3566002020360505"


def _paid(response: httpx.Response, status: str = "captured") -> dict[str, object]:
    assert response.status_code in (200, 201), response.text
    body = response.json()
    assert body["status"] == status, body
    return dict(body)


class TestMixedDay:
    def test_totals_equal_the_sum_of_the_batchs_payments_recomputed_from_the_payments_api(
        self, shop: PayingTerminal, pgw: httpx.Client, settlement_settings: Settings
    ) -> None:
        visa = _paid(shop.pay(pgw, card_payment(APPROVED_VISA, amount=1200, tip_amount=100)))
        master = _paid(shop.pay(pgw, card_payment(MASTERCARD, amount=2500, entry_mode="chip")))
        declined = _paid(shop.pay(pgw, card_payment(GENERIC_DECLINE, amount=999)), "declined")
        amex = _paid(
            shop.pay(
                pgw,
                card_payment(AMEX, amount=3000, entry_mode="swipe", capture_method="manual"),
            ),
            "authorized",
        )
        capture = shop.post(pgw, f"/v1/payments/{amex['id']}/capture", {"amount": 2000})
        assert capture.status_code == 200, capture.text
        jcb = _paid(shop.pay(pgw, card_payment(JCB, amount=700, tip_amount=50)))
        qr = _paid(shop.pay(pgw, qr_payment(amount=800)), "requires_action")
        simulate_qr(settlement_settings, str(qr["id"]), "paid")
        wait_for_status(pgw, shop.headers, str(qr["id"]), ["captured"])
        partial = refund(pgw, shop.headers, str(visa["id"]), 500)
        assert partial.status_code == 201, partial.text

        response = close_settlement(pgw, shop.headers)

        assert response.status_code == 201, response.text
        batch = response.json()
        assert response.headers["location"] == f"/v1/settlements/{batch['id']}"
        assert batch["scope"] == "terminal"
        assert batch["terminal_id"] == shop.terminal.terminal_id
        assert batch["store_id"] == shop.tenant.store_a_id
        assert batch["merchant_id"] == shop.tenant.merchant_id
        assert batch["period_start"] is None
        assert batch["closed_by"] == f"device:{shop.terminal.terminal_id}"
        payments = all_payments(pgw, shop.headers)
        in_batch = [p for p in payments if p["settlement_batch_id"] == batch["id"]]
        assert {p["id"] for p in in_batch} == {p["id"] for p in (visa, master, amex, jcb, qr)}
        assert {p["id"] for p in payments if p["status"] in SETTLED} == {p["id"] for p in in_batch}
        assert next(p for p in payments if p["id"] == declined["id"])["settlement_batch_id"] is None
        refunds = [(r, p) for p in in_batch for r in refunds_of(pgw, shop.headers, p["id"])]
        assert batch["totals"] == expected_totals(in_batch, refunds)
        jpy = batch["totals"]["JPY"]
        assert (jpy["gross"], jpy["tips"], jpy["refunds"], jpy["net"]) == (
            1300 + 2500 + 2000 + 750 + 800,
            150,
            500,
            7350 - 500,
        )
        assert (batch["payment_count"], batch["refund_count"]) == (5, 1)
        assert jpy["by_method"]["qr_wallet"] == {
            "count": 1,
            "amount": 800,
            "refund_count": 0,
            "refund_amount": 0,
            "net": 800,
        }
        assert jpy["by_card_brand"]["visa"]["refund_amount"] == 500
        assert jpy["by_card_brand"]["visa"]["net"] == 800
        assert set(jpy["by_card_brand"]) == {"visa", "mastercard", "amex", "jcb", "none"}
        assert jpy["by_entry_mode"]["swipe"]["amount"] == 2000
        assert jpy["by_entry_mode"]["none"]["count"] == 1

    def test_a_second_close_holds_only_what_came_after_and_nets_late_refunds_on_their_day(
        self, shop: PayingTerminal, pgw: httpx.Client
    ) -> None:
        early = _paid(shop.pay(pgw, card_payment(amount=1000)))
        first = close_settlement(pgw, shop.headers).json()
        late = _paid(shop.pay(pgw, card_payment(MASTERCARD, amount=2000)))
        assert refund(pgw, shop.headers, str(early["id"]), 300).status_code == 201

        response = close_settlement(pgw, shop.headers)

        assert response.status_code == 201, response.text
        second = response.json()
        assert second["period_start"] == first["period_end"]
        assert second["period_end"] > first["period_end"]
        assert (second["payment_count"], second["refund_count"]) == (1, 1)
        jpy = second["totals"]["JPY"]
        assert (jpy["gross"], jpy["refunds"], jpy["net"]) == (2000, 300, 1700)
        # The refund of yesterday's visa payment is netted today, under the visa brand.
        assert jpy["by_card_brand"]["visa"] == {
            "count": 0,
            "amount": 0,
            "refund_count": 1,
            "refund_amount": 300,
            "net": -300,
        }
        by_id = {p["id"]: p for p in all_payments(pgw, shop.headers)}
        assert by_id[str(early["id"])]["settlement_batch_id"] == first["id"]
        assert by_id[str(late["id"])]["settlement_batch_id"] == second["id"]
        assert first["totals"]["JPY"]["refunds"] == 0


class TestTerminalAndStoreCloses:
    def test_terminal_and_store_closes_never_count_a_payment_twice(
        self,
        shop: PayingTerminal,
        pgw: httpx.Client,
        portal: httpx.Client,
        settlement_settings: Settings,
    ) -> None:
        second = paying_terminal(settlement_settings, portal, shop.tenant)
        manager = shop.tenant.user(Role.STORE_MANAGER)
        at_one = _paid(shop.pay(pgw, card_payment(amount=1100)))
        at_two = _paid(second.pay(pgw, card_payment(amount=2200)))
        counter = pgw.post(
            "/v1/payments",
            json=card_payment(amount=3300),
            headers={**manager.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        without_terminal = _paid(counter)
        assert without_terminal["terminal_id"] is None

        terminal_one = close_settlement(pgw, shop.headers).json()
        store = close_settlement(pgw, manager.headers).json()
        terminal_two = close_settlement(pgw, second.headers).json()

        assert (terminal_one["scope"], store["scope"]) == ("terminal", "store")
        assert store["terminal_id"] is None
        assert store["closed_by"] == f"user:{manager.id}"
        assert terminal_one["totals"]["JPY"]["gross"] == 1100
        assert store["totals"]["JPY"]["gross"] == 2200 + 3300
        assert terminal_two["payment_count"] == 0
        assert terminal_two["totals"] == {}
        by_id = {p["id"]: p for p in all_payments(pgw, shop.headers)}
        assert by_id[str(at_one["id"])]["settlement_batch_id"] == terminal_one["id"]
        assert by_id[str(at_two["id"])]["settlement_batch_id"] == store["id"]
        assert by_id[str(without_terminal["id"])]["settlement_batch_id"] == store["id"]

        later = _paid(shop.pay(pgw, card_payment(amount=4400)))
        next_store = close_settlement(pgw, manager.headers).json()
        assert next_store["period_start"] == store["period_end"]
        assert next_store["payment_count"] == 1
        assert (
            pgw.get(f"/v1/payments/{later['id']}", headers=shop.headers).json()[
                "settlement_batch_id"
            ]
            == next_store["id"]
        )

    def test_staff_may_close_one_terminal_by_naming_it(
        self, shop: PayingTerminal, pgw: httpx.Client
    ) -> None:
        _paid(shop.pay(pgw, card_payment(amount=1500)))
        manager = shop.tenant.user(Role.STORE_MANAGER)

        response = close_settlement(
            pgw, manager.headers, {"terminal_id": shop.terminal.terminal_id}
        )

        assert response.status_code == 201, response.text
        assert response.json()["scope"] == "terminal"
        assert response.json()["terminal_id"] == shop.terminal.terminal_id
        assert response.json()["totals"]["JPY"]["gross"] == 1500

    def test_a_terminal_may_close_its_whole_store(
        self, shop: PayingTerminal, pgw: httpx.Client
    ) -> None:
        _paid(shop.pay(pgw, card_payment(amount=1600)))

        response = close_settlement(pgw, shop.headers, {"scope": "store"})

        assert response.status_code == 201, response.text
        assert response.json()["scope"] == "store"
        assert response.json()["terminal_id"] is None
        assert response.json()["totals"]["JPY"]["gross"] == 1600


class TestIdempotency:
    def test_the_same_key_replays_the_batch_and_a_new_key_with_nothing_new_is_empty(
        self, shop: PayingTerminal, pgw: httpx.Client
    ) -> None:
        _paid(shop.pay(pgw, card_payment(amount=1000)))
        first = close_settlement(pgw, shop.headers, key="z-report-1")

        replay = close_settlement(pgw, shop.headers, key="z-report-1")
        empty = close_settlement(pgw, shop.headers, key="z-report-2")

        assert first.status_code == replay.status_code == 201
        assert replay.json() == first.json()
        assert replay.headers.get("idempotent-replayed") == "true"
        assert empty.status_code == 201, empty.text
        assert empty.json()["id"] != first.json()["id"]
        assert (empty.json()["payment_count"], empty.json()["refund_count"]) == (0, 0)
        assert empty.json()["totals"] == {}
        assert empty.json()["period_start"] == first.json()["period_end"]
        listed = pgw.get("/v1/settlements", headers=shop.headers).json()["items"]
        assert [batch["id"] for batch in listed] == [empty.json()["id"], first.json()["id"]]

    def test_a_key_reused_for_another_terminal_is_refused_not_replayed(
        self,
        shop: PayingTerminal,
        pgw: httpx.Client,
        portal: httpx.Client,
        settlement_settings: Settings,
    ) -> None:
        second = paying_terminal(settlement_settings, portal, shop.tenant)
        assert close_settlement(pgw, shop.headers, key="shared").status_code == 201

        response = close_settlement(pgw, second.headers, key="shared")

        assert response.status_code == 422, response.text
        assert response.json()["code"] == "idempotency_key_reused"

    def test_a_close_needs_an_idempotency_key(
        self, shop: PayingTerminal, pgw: httpx.Client
    ) -> None:
        response = pgw.post("/v1/settlements/close", json={}, headers=shop.headers)

        assert response.status_code == 400
        assert response.json()["code"] == "idempotency_key_required"


class TestWhoMayClose:
    @pytest.mark.parametrize("role", [Role.CASHIER, Role.AUDITOR])
    def test_a_role_without_settlement_close_gets_403(
        self, shop: PayingTerminal, pgw: httpx.Client, role: Role
    ) -> None:
        user = shop.tenant.user(role)

        response = close_settlement(pgw, user.headers, {"store_id": shop.tenant.store_a_id})

        assert response.status_code == 403, response.text
        assert response.json()["code"] == "permission_denied"
        assert response.json()["permission"] == "settlement:close"

    def test_a_cashier_cannot_read_batches_either(
        self, shop: PayingTerminal, pgw: httpx.Client
    ) -> None:
        response = pgw.get("/v1/settlements", headers=shop.tenant.user(Role.CASHIER).headers)

        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"

    def test_staff_above_a_store_must_name_it(
        self, shop: PayingTerminal, pgw: httpx.Client
    ) -> None:
        admin = shop.tenant.user(Role.MERCHANT_ADMIN)

        missing = close_settlement(pgw, admin.headers)
        named = close_settlement(pgw, admin.headers, {"store_id": shop.tenant.store_b_id})

        assert missing.status_code == 422
        assert missing.json()["code"] == "store_required"
        assert named.status_code == 201, named.text
        assert named.json()["store_id"] == shop.tenant.store_b_id
        assert named.json()["scope"] == "store"

    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            ({"terminal_id": "other"}, 403, "terminal_mismatch"),
            ({"scope": "store", "terminal_id": "own"}, 422, "terminal_not_allowed"),
            ({"store_id": "store_b"}, 422, "store_mismatch"),
            ({"scope": "daily"}, 422, "validation_failed"),
            ({"unknown": 1}, 422, "validation_failed"),
        ],
    )
    def test_a_terminal_closes_only_itself_or_its_store(
        self,
        shop: PayingTerminal,
        pgw: httpx.Client,
        body: dict[str, object],
        status: int,
        code: str,
    ) -> None:
        values = {
            "other": str(uuid.uuid4()),
            "own": shop.terminal.terminal_id,
            "store_b": shop.tenant.store_b_id,
        }
        resolved = {k: values.get(v, v) if isinstance(v, str) else v for k, v in body.items()}

        response = close_settlement(pgw, shop.headers, resolved)

        assert response.status_code == status, response.text
        assert response.json()["code"] == code

    def test_a_store_manager_cannot_close_another_store(
        self, shop: PayingTerminal, pgw: httpx.Client
    ) -> None:
        manager = shop.tenant.user(Role.STORE_MANAGER)

        response = close_settlement(pgw, manager.headers, {"store_id": shop.tenant.store_b_id})

        assert response.status_code == 422
        assert response.json()["code"] == "store_mismatch"

    def test_staff_closing_a_terminal_must_name_it(
        self, shop: PayingTerminal, pgw: httpx.Client
    ) -> None:
        manager = shop.tenant.user(Role.STORE_MANAGER)

        response = close_settlement(pgw, manager.headers, {"scope": "terminal"})

        assert response.status_code == 422
        assert response.json()["code"] == "terminal_required"

    def test_another_tenants_store_or_terminal_is_not_found(
        self, shop: PayingTerminal, other_shop: PayingTerminal, pgw: httpx.Client
    ) -> None:
        intruder = other_shop.tenant.admin

        store = close_settlement(pgw, intruder.headers, {"store_id": shop.tenant.store_a_id})
        terminal = close_settlement(
            pgw, intruder.headers, {"terminal_id": shop.terminal.terminal_id}
        )

        assert store.status_code == 404
        assert store.json()["code"] == "store_not_found"
        assert terminal.status_code == 404
        assert terminal.json()["code"] == "terminal_not_found"
