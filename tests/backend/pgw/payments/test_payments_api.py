"""Payments through the real gateway and the simulated provider, over HTTP."""

from __future__ import annotations

import httpx
import pytest

from backend.core.settings import Settings
from tests.support.pgw import (
    APPROVED_VISA,
    PayingTerminal,
    card_payment,
    qr_payment,
    service_client,
    wait_for_directory,
    wait_until,
)
from tests.support.portal import bearer

PROBLEM = "application/problem+json"


class TestCardPayments:
    def test_an_approved_card_is_captured_and_only_safe_card_data_comes_back(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        response = paying.pay(pgw_client, card_payment(APPROVED_VISA, amount=1200, tip_amount=100))

        assert response.status_code == 201, response.text
        payment = response.json()
        assert response.headers["location"] == f"/v1/payments/{payment['id']}"
        assert payment["status"] == "captured"
        assert payment["amount_captured"] == 1300
        assert payment["amount_refundable"] == 1300
        assert payment["card"]["brand"] == "visa"
        assert payment["card"]["last4"] == "4242"
        assert payment["auth_code"]
        assert payment["entry_mode"] == "contactless"
        assert payment["terminal_id"] == paying.terminal.terminal_id
        assert payment["store_id"] == paying.tenant.store_a_id
        assert APPROVED_VISA not in response.text

    @pytest.mark.parametrize(
        ("pan", "decline_code"),
        [
            ("4000000000000002", "generic_decline"),
            ("4000000000009995", "insufficient_funds"),
            ("4000000000009987", "lost_card"),
            ("4000000000009979", "stolen_card"),
            ("4000000000000069", "expired_card"),
            ("4000000000000119", "processing_error"),
            ("4000000000001026", "do_not_honor"),
        ],
    )
    def test_each_catalogue_decline_ends_declined_with_its_reason(
        self, paying: PayingTerminal, pgw_client: httpx.Client, pan: str, decline_code: str
    ) -> None:
        response = paying.pay(pgw_client, card_payment(pan))

        assert response.status_code == 201, response.text
        assert response.json()["status"] == "declined"
        assert response.json()["failure_code"] == decline_code
        assert response.json()["amount_captured"] == 0

    @pytest.mark.parametrize(
        ("pin", "status", "failure_code"),
        [
            (None, "declined", "pin_required"),
            ("1234", "captured", None),
            ("9999", "declined", "incorrect_pin"),
        ],
    )
    def test_a_pin_card_needs_the_right_pin(
        self,
        paying: PayingTerminal,
        pgw_client: httpx.Client,
        pin: str | None,
        status: str,
        failure_code: str | None,
    ) -> None:
        card = {"pin": pin} if pin else {}
        response = paying.pay(
            pgw_client, card_payment("4000000000001000", entry_mode="chip", card=card)
        )

        assert response.json()["status"] == status
        assert response.json()["failure_code"] == failure_code

    def test_other_brands_are_recognised(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        brands = {
            pan: paying.pay(pgw_client, card_payment(pan)).json()["card"]["brand"]
            for pan in ("5555555555554444", "3566002020360505", "378282246310005")
        }
        assert brands == {
            "5555555555554444": "mastercard",
            "3566002020360505": "jcb",
            "378282246310005": "amex",
        }


class TestCaptureAndVoid:
    def test_a_manual_payment_is_authorized_then_partially_captured_once(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        payment = paying.pay(pgw_client, card_payment(amount=5000, capture_method="manual")).json()
        assert payment["status"] == "authorized"
        assert payment["amount_captured"] == 0

        captured = paying.post(
            pgw_client, f"/v1/payments/{payment['id']}/capture", {"amount": 4200}
        )
        assert captured.status_code == 200, captured.text
        assert captured.json()["status"] == "captured"
        assert captured.json()["amount_captured"] == 4200

        again = paying.post(pgw_client, f"/v1/payments/{payment['id']}/capture", {"amount": 100})
        assert again.status_code == 409
        assert again.json()["code"] == "illegal_transition"
        assert again.json()["current_status"] == "captured"

    def test_capturing_more_than_authorized_is_refused(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        payment = paying.pay(pgw_client, card_payment(amount=5000, capture_method="manual")).json()

        response = paying.post(
            pgw_client, f"/v1/payments/{payment['id']}/capture", {"amount": 5001}
        )

        assert response.status_code == 422
        assert response.json()["code"] == "capture_exceeds_authorized"
        assert (
            pgw_client.get(f"/v1/payments/{payment['id']}", headers=paying.headers).json()["status"]
            == "authorized"
        )

    def test_void_before_capture_releases_the_authorization(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        payment = paying.pay(pgw_client, card_payment(capture_method="manual")).json()

        voided = paying.post(pgw_client, f"/v1/payments/{payment['id']}/void")

        assert voided.status_code == 200, voided.text
        assert voided.json()["status"] == "voided"
        capture = paying.post(pgw_client, f"/v1/payments/{payment['id']}/capture", {})
        assert capture.status_code == 409
        assert capture.json()["current_status"] == "voided"

    def test_a_captured_payment_cannot_be_voided(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        payment = paying.pay(pgw_client, card_payment()).json()

        response = paying.post(pgw_client, f"/v1/payments/{payment['id']}/void")

        assert response.status_code == 409
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["current_status"] == "captured"
        assert "refund" in response.json()["detail"]


class TestRefunds:
    def test_partial_refunds_add_up_and_never_exceed_what_was_captured(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        payment = paying.pay(pgw_client, card_payment(amount=1000)).json()
        path = f"/v1/payments/{payment['id']}/refunds"

        first = paying.post(pgw_client, path, {"amount": 300, "reason": "cold ramen"})
        assert first.status_code == 201, first.text
        assert first.json()["payment"]["status"] == "partially_refunded"
        assert first.json()["payment"]["amount_refundable"] == 700

        too_much = paying.post(pgw_client, path, {"amount": 701})
        assert too_much.status_code == 422
        assert too_much.json()["code"] == "refund_exceeds_captured"
        assert too_much.json()["refundable"] == 700

        rest = paying.post(pgw_client, path, {})
        assert rest.status_code == 201
        assert rest.json()["refund"]["amount"] == 700
        assert rest.json()["payment"]["status"] == "refunded"
        assert rest.json()["payment"]["amount_refunded"] == 1000

        after = paying.post(pgw_client, path, {"amount": 1})
        assert after.status_code == 409
        assert after.json()["current_status"] == "refunded"
        refunds = pgw_client.get(path, headers=paying.headers).json()
        assert [r["amount"] for r in refunds] == [300, 700]

    def test_a_declined_payment_cannot_be_refunded(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        payment = paying.pay(pgw_client, card_payment("4000000000000002")).json()

        response = paying.post(pgw_client, f"/v1/payments/{payment['id']}/refunds", {"amount": 1})

        assert response.status_code == 409
        assert response.json()["code"] == "illegal_transition"


class TestReading:
    def test_every_transition_is_recorded_as_an_event(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        payment = paying.pay(pgw_client, card_payment(capture_method="manual")).json()
        paying.post(pgw_client, f"/v1/payments/{payment['id']}/capture", {})
        paying.post(pgw_client, f"/v1/payments/{payment['id']}/refunds", {"amount": 200})

        events = pgw_client.get(
            f"/v1/payments/{payment['id']}/events", headers=paying.headers
        ).json()

        assert [(e["from_status"], e["to_status"]) for e in events] == [
            ("pending", "processing"),
            ("processing", "authorized"),
            ("authorized", "captured"),
            ("captured", "partially_refunded"),
        ]
        assert all(e["actor"] == f"device:{paying.terminal.terminal_id}" for e in events)

    def test_list_filters_and_pages_newest_first(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        ids = [paying.pay(pgw_client, card_payment(amount=100 + i)).json()["id"] for i in range(5)]
        paying.pay(pgw_client, card_payment("4000000000000002"))

        first = pgw_client.get(
            "/v1/payments", params={"status": "captured", "limit": 3}, headers=paying.headers
        ).json()
        second = pgw_client.get(
            "/v1/payments",
            params={"status": "captured", "limit": 3, "before": first["next_cursor"]},
            headers=paying.headers,
        ).json()

        assert [p["id"] for p in first["items"] + second["items"]] == list(reversed(ids))
        assert second["next_cursor"] is None

    def test_another_tenants_payment_does_not_exist_for_you(
        self, paying: PayingTerminal, other_paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        theirs = other_paying.pay(pgw_client, card_payment()).json()

        for path in ("", "/events", "/refunds"):
            response = pgw_client.get(f"/v1/payments/{theirs['id']}{path}", headers=paying.headers)
            assert response.status_code == 404, path
            assert response.json()["code"] == "payment_not_found"
        refund = paying.post(pgw_client, f"/v1/payments/{theirs['id']}/refunds", {"amount": 1})
        assert refund.status_code == 404
        listed = pgw_client.get("/v1/payments", headers=paying.headers).json()["items"]
        assert theirs["id"] not in {p["id"] for p in listed}

    def test_store_staff_see_their_store_and_auditors_their_merchant(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        payment = paying.pay(pgw_client, card_payment()).json()
        manager = paying.tenant.user("store_manager")
        auditor = paying.tenant.user("auditor")

        assert (
            pgw_client.get(f"/v1/payments/{payment['id']}", headers=manager.headers).status_code
            == 200
        )
        assert (
            pgw_client.get(f"/v1/payments/{payment['id']}", headers=auditor.headers).status_code
            == 200
        )
        refund = pgw_client.post(
            f"/v1/payments/{payment['id']}/refunds",
            json={"amount": 1},
            headers={**auditor.headers, "Idempotency-Key": "auditor-refund"},
        )
        assert refund.status_code == 403
        assert refund.json()["code"] == "permission_denied"


class TestBadInput:
    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            (card_payment(amount=0), 422, "validation_failed"),
            (card_payment(amount=-5), 422, "validation_failed"),
            (card_payment(amount=10.5), 422, "validation_failed"),
            (card_payment(currency="XXX"), 422, "validation_failed"),
            (card_payment(currency="jpy"), 422, "validation_failed"),
            ({"amount": 100, "currency": "JPY", "method": "card_present"}, 422, "card_required"),
            ({**qr_payment(), "card": card_payment()["card"]}, 422, "card_not_allowed"),
            ({**qr_payment(), "capture_method": "manual"}, 422, "capture_method_not_supported"),
            (card_payment(card={"pan": "42424242"}), 422, "validation_failed"),
            (card_payment(unknown_field=1), 422, "validation_failed"),
        ],
    )
    def test_bad_payments_are_refused_precisely(
        self,
        paying: PayingTerminal,
        pgw_client: httpx.Client,
        body: dict[str, object],
        status: int,
        code: str,
    ) -> None:
        response = paying.pay(pgw_client, body)

        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == code
        # Card numbers in a refused body are not echoed back.
        assert "4242424242424242" not in response.text

    def test_a_money_moving_request_needs_an_idempotency_key(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        response = pgw_client.post("/v1/payments", json=card_payment(), headers=paying.headers)

        assert response.status_code == 400
        assert response.json()["code"] == "idempotency_key_required"

    def test_a_non_uuid_payment_id_is_a_validation_error(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        response = pgw_client.get("/v1/payments/not-a-uuid", headers=paying.headers)
        assert response.status_code == 422

    def test_a_uuid_that_is_not_ours_is_not_found(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        response = pgw_client.get(
            "/v1/payments/6f1c2b9e-0000-4000-8000-000000000000", headers=paying.headers
        )
        assert response.status_code == 404


class TestWhoMayPay:
    def test_a_suspended_terminal_is_refused_even_with_a_valid_token(
        self,
        test_settings: Settings,
        paying: PayingTerminal,
        portal_client: httpx.Client,
        pgw_client: httpx.Client,
    ) -> None:
        suspended = portal_client.post(
            f"/v1/terminals/{paying.terminal.terminal_id}/suspend",
            json={"reason": "stolen"},
            headers=paying.tenant.admin.headers,
        )
        assert suspended.status_code == 200
        wait_for_directory(
            test_settings,
            store_id=paying.tenant.store_a_id,
            terminal_id=paying.terminal.terminal_id,
            status="suspended",
        )

        response = paying.pay(pgw_client, card_payment())

        assert response.status_code == 403
        assert response.json()["code"] == "terminal_not_active"

    def test_a_closed_store_is_refused(
        self,
        test_settings: Settings,
        paying: PayingTerminal,
        portal_client: httpx.Client,
        pgw_client: httpx.Client,
    ) -> None:
        closed = portal_client.patch(
            f"/v1/stores/{paying.tenant.store_a_id}",
            json={"status": "closed"},
            headers=paying.tenant.admin.headers,
        )
        assert closed.status_code == 200

        def refused() -> bool:
            return paying.pay(pgw_client, card_payment()).status_code == 403

        wait_until(refused, what="pgw to learn the store closed")
        assert paying.pay(pgw_client, card_payment()).json()["code"] == "store_not_active"

    def test_smarttab_pays_for_a_store_with_a_signed_request(
        self, test_settings: Settings, paying: PayingTerminal
    ) -> None:
        tenant = paying.tenant
        with service_client(test_settings, "smarttab", test_settings.url_of("pgw")) as smarttab:
            response = smarttab.post(
                "/v1/payments",
                json=card_payment(reference="tab-42/part-1"),
                headers={
                    "Idempotency-Key": "tab-42-part-1",
                    "X-MPAC-Merchant-Id": tenant.merchant_id,
                    "X-MPAC-Store-Id": tenant.store_a_id,
                },
            )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "captured"
        assert response.json()["terminal_id"] is None
        assert response.json()["reference"] == "tab-42/part-1"

    def test_a_signed_request_for_an_unknown_merchant_is_refused(
        self, test_settings: Settings
    ) -> None:
        with service_client(test_settings, "smarttab", test_settings.url_of("pgw")) as smarttab:
            response = smarttab.post(
                "/v1/payments",
                json=card_payment(),
                headers={
                    "Idempotency-Key": "x",
                    "X-MPAC-Merchant-Id": "6f1c2b9e-0000-4000-8000-000000000000",
                },
            )
        assert response.status_code == 403
        assert response.json()["code"] == "unknown_merchant"

    def test_a_user_token_of_a_cashier_can_take_a_payment_in_their_store(
        self, paying: PayingTerminal, pgw_client: httpx.Client
    ) -> None:
        cashier = paying.tenant.user("cashier")
        response = pgw_client.post(
            "/v1/payments",
            json=card_payment(),
            headers={**cashier.headers, "Idempotency-Key": "c1"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["store_id"] == paying.tenant.store_a_id
        assert response.json()["terminal_id"] is None

    def test_no_token_no_payment(self, pgw_client: httpx.Client) -> None:
        response = pgw_client.post(
            "/v1/payments", json=card_payment(), headers={"Idempotency-Key": "k"}
        )
        assert response.status_code == 401
        assert response.json()["code"] == "missing_token"
        assert pgw_client.get("/v1/payments", headers=bearer("garbage")).status_code == 401
