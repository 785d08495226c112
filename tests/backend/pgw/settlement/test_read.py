"""Reading batches: list, one batch as JSON or CSV, tenant isolation, immutability."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from backend.core.authz import Role
from backend.core.settings import Settings
from tests.backend.pgw.settlement.support import csv_blocks, db_execute
from tests.support.pgw import (
    APPROVED_VISA,
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


@pytest.fixture
def closed(
    shop: PayingTerminal, pgw: httpx.Client, settlement_settings: Settings
) -> dict[str, Any]:
    """A batch with two card payments (one with a formula-like reference), a QR one, a refund."""
    visa = shop.pay(
        pgw, card_payment(APPROVED_VISA, amount=1200, tip_amount=100, reference="=1+2")
    ).json()
    shop.pay(pgw, card_payment(MASTERCARD, amount=900, entry_mode="chip"))
    qr = shop.pay(pgw, qr_payment(amount=800)).json()
    simulate_qr(settlement_settings, qr["id"], "paid")
    wait_for_status(pgw, shop.headers, qr["id"], ["captured"])
    assert refund(pgw, shop.headers, visa["id"], 400).status_code == 201
    response = close_settlement(pgw, shop.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


class TestList:
    def test_newest_first_with_filters_and_a_cursor(
        self,
        shop: PayingTerminal,
        pgw: httpx.Client,
        portal: httpx.Client,
        settlement_settings: Settings,
    ) -> None:
        second = paying_terminal(settlement_settings, portal, shop.tenant)
        manager = shop.tenant.user(Role.STORE_MANAGER)
        made = [
            close_settlement(pgw, shop.headers).json(),
            close_settlement(pgw, second.headers).json(),
            close_settlement(pgw, manager.headers).json(),
            close_settlement(pgw, shop.headers).json(),
        ]
        newest_first = [batch["id"] for batch in reversed(made)]

        everything = pgw.get("/v1/settlements", headers=manager.headers).json()
        one = pgw.get(
            "/v1/settlements",
            params={"terminal_id": shop.terminal.terminal_id},
            headers=manager.headers,
        ).json()
        stores = pgw.get(
            "/v1/settlements", params={"scope": "store"}, headers=manager.headers
        ).json()
        other_store = pgw.get(
            "/v1/settlements",
            params={"store_id": shop.tenant.store_b_id},
            headers=shop.tenant.user(Role.MERCHANT_ADMIN).headers,
        ).json()
        paged: list[str] = []
        params: dict[str, Any] = {"limit": 1}
        while True:
            page = pgw.get("/v1/settlements", params=params, headers=manager.headers).json()
            paged.extend(batch["id"] for batch in page["items"])
            if page["next_cursor"] is None:
                break
            params["before"] = page["next_cursor"]

        assert [batch["id"] for batch in everything["items"]] == newest_first
        assert everything["next_cursor"] is None
        assert [batch["id"] for batch in one["items"]] == [made[3]["id"], made[0]["id"]]
        assert [batch["id"] for batch in stores["items"]] == [made[2]["id"]]
        assert other_store["items"] == []
        assert paged == newest_first

    def test_one_batch_reads_back_as_it_was_closed(
        self, shop: PayingTerminal, pgw: httpx.Client, closed: dict[str, Any]
    ) -> None:
        auditor = shop.tenant.user(Role.AUDITOR)

        by_device = pgw.get(f"/v1/settlements/{closed['id']}", headers=shop.headers)
        by_auditor = pgw.get(f"/v1/settlements/{closed['id']}", headers=auditor.headers)

        assert by_device.status_code == by_auditor.status_code == 200
        assert by_device.json() == by_auditor.json() == closed


class TestCsv:
    def test_one_line_per_payment_and_refund_then_the_totals_and_never_a_card_number(
        self, shop: PayingTerminal, pgw: httpx.Client, closed: dict[str, Any]
    ) -> None:
        response = pgw.get(f"/v1/settlements/{closed['id']}.csv", headers=shop.headers)
        query = pgw.get(
            f"/v1/settlements/{closed['id']}", params={"format": "csv"}, headers=shop.headers
        )

        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert f"settlement-{closed['id']}.csv" in response.headers["content-disposition"]
        assert query.text == response.text
        for pan in (APPROVED_VISA, MASTERCARD):
            assert pan not in response.text
        header, lines, totals = csv_blocks(response.text)
        assert header == [
            {
                **header[0],
                "batch_id": closed["id"],
                "scope": "terminal",
                "terminal_id": shop.terminal.terminal_id,
                "payment_count": "3",
                "refund_count": "1",
            }
        ]
        payments = [line for line in lines if line["record_type"] == "payment"]
        refunds = [line for line in lines if line["record_type"] == "refund"]
        assert len(payments) == closed["payment_count"] == 3
        assert len(refunds) == closed["refund_count"] == 1
        assert {(p["card_brand"], p["card_last4"]) for p in payments} == {
            ("visa", "4242"),
            ("mastercard", "4444"),
            ("", ""),
        }
        assert sum(int(p["amount_captured"]) for p in payments) == 1300 + 900 + 800
        assert (refunds[0]["card_brand"], refunds[0]["refund_amount"], refunds[0]["net"]) == (
            "visa",
            "400",
            "-400",
        )
        assert sum(int(line["net"]) for line in lines) == closed["totals"]["JPY"]["net"]
        # A reference a spreadsheet would evaluate is neutralised.
        assert {p["reference"] for p in payments} == {"'=1+2", ""}
        total = next(row for row in totals if row["section"] == "total")
        assert (total["currency"], total["amount"], total["refund_amount"], total["net"]) == (
            "JPY",
            "3000",
            "400",
            "2600",
        )
        tips = next(row for row in totals if row["section"] == "tips")
        assert tips["amount"] == "100"
        brands = {row["key"]: row for row in totals if row["section"] == "by_card_brand"}
        assert set(brands) == {"visa", "mastercard", "none"}
        assert brands["visa"]["net"] == "900"


class TestTenantIsolation:
    def test_another_tenants_batch_is_not_found(
        self,
        shop: PayingTerminal,
        other_shop: PayingTerminal,
        pgw: httpx.Client,
        closed: dict[str, Any],
    ) -> None:
        for headers in (other_shop.headers, other_shop.tenant.admin.headers):
            for path in (f"/v1/settlements/{closed['id']}", f"/v1/settlements/{closed['id']}.csv"):
                response = pgw.get(path, headers=headers)
                assert response.status_code == 404, (path, response.text)
                assert response.json()["code"] == "settlement_not_found"
            listed = pgw.get("/v1/settlements", headers=headers).json()["items"]
            assert closed["id"] not in {batch["id"] for batch in listed}

    def test_a_store_level_user_does_not_see_another_stores_batches(
        self, shop: PayingTerminal, pgw: httpx.Client
    ) -> None:
        admin = shop.tenant.user(Role.MERCHANT_ADMIN)
        store_b = close_settlement(pgw, admin.headers, {"store_id": shop.tenant.store_b_id})
        assert store_b.status_code == 201

        response = pgw.get(
            f"/v1/settlements/{store_b.json()['id']}",
            headers=shop.tenant.user(Role.STORE_MANAGER).headers,
        )

        assert response.status_code == 404
        assert response.json()["code"] == "settlement_not_found"

    def test_an_unknown_id_is_not_found(self, shop: PayingTerminal, pgw: httpx.Client) -> None:
        response = pgw.get(
            "/v1/settlements/0190f3c2-0000-7000-8000-000000000000", headers=shop.headers
        )

        assert response.status_code == 404
        assert response.json()["code"] == "settlement_not_found"


class TestImmutability:
    def test_there_is_no_route_to_change_or_delete_a_batch(
        self, shop: PayingTerminal, pgw: httpx.Client, closed: dict[str, Any]
    ) -> None:
        manager = shop.tenant.user(Role.STORE_MANAGER)
        for method in ("PUT", "PATCH", "DELETE"):
            response = pgw.request(
                method, f"/v1/settlements/{closed['id']}", headers=manager.headers, json={}
            )
            assert response.status_code == 405, (method, response.text)

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE pgw.settlement_batches SET payment_count = 0 WHERE id = $1",
            "DELETE FROM pgw.settlement_batches WHERE id = $1",
            "UPDATE pgw.payments SET settlement_batch_id = NULL WHERE settlement_batch_id = $1",
            "UPDATE pgw.payments SET amount_captured = 1 WHERE settlement_batch_id = $1",
            "DELETE FROM pgw.payments WHERE settlement_batch_id = $1",
            "UPDATE pgw.refunds SET amount = 1 WHERE settlement_batch_id = $1",
            "DELETE FROM pgw.refunds WHERE settlement_batch_id = $1",
        ],
    )
    def test_the_database_refuses_to_change_a_batch_or_what_it_holds(
        self, settlement_settings: Settings, closed: dict[str, Any], statement: str
    ) -> None:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            db_execute(settlement_settings, statement, uuid.UUID(closed["id"]))
