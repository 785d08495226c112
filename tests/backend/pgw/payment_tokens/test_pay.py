"""Paying with a payment token: one payment, of the token's amount, and nothing else."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx

from backend.core.settings import Settings
from tests.backend.pgw.payment_tokens.support import Shop, db_execute, token_headers
from tests.support.pgw import (
    APPROVED_VISA,
    card_payment,
    qr_payment,
    simulate_qr,
    wait_for_status,
)


def pay(pgw: httpx.Client, token: str, body: dict[str, Any]) -> httpx.Response:
    return pgw.post("/v1/payments", json=body, headers=token_headers(token, idempotency_key=True))


class TestCardPayment:
    def test_a_token_pays_by_card_and_reads_the_payment_back(
        self, shop: Shop, pgw: httpx.Client, settings: Settings
    ) -> None:
        issued = shop.issue(amount=1200, currency="JPY")

        response = pay(pgw, issued["token"], card_payment(APPROVED_VISA, amount=1200))

        assert response.status_code == 201, response.text
        payment = response.json()
        assert payment["status"] == "captured"
        assert payment["amount_captured"] == 1200
        assert payment["card"]["last4"] == "4242"
        assert payment["store_id"] == shop.store_id
        assert payment["terminal_id"] == shop.terminal_id
        assert APPROVED_VISA not in response.text

        read = pgw.get(f"/v1/payments/{payment['id']}", headers=token_headers(issued["token"]))
        assert read.status_code == 200, read.text
        assert read.json()["status"] == "captured"

        events = pgw.get(
            f"/v1/payments/{payment['id']}/events", headers=token_headers(issued["token"])
        )
        assert events.status_code == 200
        assert {event["actor"] for event in events.json()} == {f"payment_token:{issued['id']}"}

        rows = db_execute(
            settings,
            "SELECT payment_id FROM pgw.payment_tokens WHERE id = $1",
            uuid.UUID(issued["id"]),
        )
        assert str(rows[0]["payment_id"]) == payment["id"]
        current = pgw.get("/v1/payment-tokens/current", headers=token_headers(issued["token"]))
        assert current.json()["payment_id"] == payment["id"]

        # The terminal sees the payment too, like any payment of its store.
        mine = pgw.get(f"/v1/payments/{payment['id']}", headers=shop.device_headers())
        assert mine.status_code == 200

    def test_a_token_without_an_amount_pays_any_amount_once(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        issued = shop.issue()

        response = pay(pgw, issued["token"], card_payment(amount=4321, currency="USD"))

        assert response.status_code == 201, response.text
        assert response.json()["amount"] == 4321

    def test_a_second_payment_with_the_same_token_is_refused(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        issued = shop.issue(amount=1200, currency="JPY")
        first = pay(pgw, issued["token"], card_payment(amount=1200))
        assert first.status_code == 201, first.text

        second = pay(pgw, issued["token"], card_payment(amount=1200))

        assert second.status_code == 409
        assert second.json()["code"] == "payment_token_used"
        assert second.json()["payment_id"] == first.json()["id"]

    def test_a_retry_with_the_same_idempotency_key_replays_instead_of_refusing(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        issued = shop.issue(amount=1200, currency="JPY")
        headers = token_headers(issued["token"], idempotency_key=True)
        first = pgw.post("/v1/payments", json=card_payment(amount=1200), headers=headers)
        assert first.status_code == 201, first.text

        again = pgw.post("/v1/payments", json=card_payment(amount=1200), headers=headers)

        assert again.status_code == 201
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json()["id"] == first.json()["id"]

    def test_concurrent_payments_with_one_token_make_exactly_one(
        self, shop: Shop, settings: Settings
    ) -> None:
        issued = shop.issue(amount=700, currency="JPY")
        results: list[int] = []

        def attempt() -> None:
            with httpx.Client(base_url=settings.url_of("pgw"), timeout=20) as client:
                results.append(pay(client, issued["token"], card_payment(amount=700)).status_code)

        threads = [threading.Thread(target=attempt) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert sorted(results) == [201, 409, 409, 409]

    def test_an_amount_other_than_the_tokens_is_refused(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        issued = shop.issue(amount=1200, currency="JPY")

        response = pay(pgw, issued["token"], card_payment(amount=1201))

        assert response.status_code == 422
        assert response.json()["code"] == "payment_token_amount_mismatch"
        # Nothing was taken, so the token still pays the right amount.
        assert pay(pgw, issued["token"], card_payment(amount=1200)).status_code == 201

    def test_a_tip_on_a_fixed_amount_is_refused(self, shop: Shop, pgw: httpx.Client) -> None:
        issued = shop.issue(amount=1200, currency="JPY")

        response = pay(pgw, issued["token"], card_payment(amount=1200, tip_amount=100))

        assert response.status_code == 422
        assert response.json()["code"] == "payment_token_amount_mismatch"

    def test_another_currency_than_the_tokens_is_refused(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        issued = shop.issue(amount=1200, currency="JPY")

        response = pay(pgw, issued["token"], card_payment(amount=1200, currency="USD"))

        assert response.status_code == 422
        assert response.json()["code"] == "payment_token_currency_mismatch"

    def test_a_token_cannot_pay_in_another_store(self, shop: Shop, pgw: httpx.Client) -> None:
        issued = shop.issue()

        response = pay(pgw, issued["token"], card_payment(store_id=shop.tenant.store_b_id))

        assert response.status_code == 422
        assert response.json()["code"] == "store_mismatch"


class TestQrPayment:
    def test_a_token_starts_a_qr_payment_and_follows_it_to_paid(
        self, shop: Shop, pgw: httpx.Client, settings: Settings
    ) -> None:
        issued = shop.issue(amount=800, currency="JPY")

        response = pay(pgw, issued["token"], qr_payment(amount=800))

        assert response.status_code == 201, response.text
        payment = response.json()
        assert payment["status"] == "requires_action"
        assert payment["qr_payload"]
        simulate_qr(settings, payment["id"], "paid")
        paid = wait_for_status(pgw, token_headers(issued["token"]), payment["id"], {"captured"})
        assert paid["amount_captured"] == 800

    def test_a_token_cancels_its_waiting_qr_payment(self, shop: Shop, pgw: httpx.Client) -> None:
        issued = shop.issue(amount=800, currency="JPY")
        payment = pay(pgw, issued["token"], qr_payment(amount=800)).json()

        response = pgw.post(
            f"/v1/payments/{payment['id']}/void",
            headers=token_headers(issued["token"], idempotency_key=True),
        )

        assert response.status_code == 200, response.text
        assert response.json()["status"] == "canceled"


class TestOnlyItsOwnPayment:
    def test_another_payment_of_the_same_store_is_not_found(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        issued = shop.issue()
        assert pay(pgw, issued["token"], card_payment()).status_code == 201
        others = shop.pay_as_terminal(card_payment(capture_method="manual"))
        headers = token_headers(issued["token"])

        for path in ("", "/events", "/refunds"):
            response = pgw.get(f"/v1/payments/{others['id']}{path}", headers=headers)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["code"] == "payment_not_found"
        void = pgw.post(
            f"/v1/payments/{others['id']}/void",
            headers=token_headers(issued["token"], idempotency_key=True),
        )
        assert void.status_code == 404
        assert void.json()["code"] == "payment_not_found"
        # Untouched.
        still = pgw.get(f"/v1/payments/{others['id']}", headers=shop.device_headers())
        assert still.json()["status"] == "authorized"

    def test_a_token_that_has_not_paid_sees_no_payment(self, shop: Shop, pgw: httpx.Client) -> None:
        others = shop.pay_as_terminal(card_payment())
        issued = shop.issue()

        response = pgw.get(f"/v1/payments/{others['id']}", headers=token_headers(issued["token"]))

        assert response.status_code == 404
        assert response.json()["code"] == "payment_not_found"

    def test_another_tenants_payment_is_not_found(
        self, shop: Shop, other_shop: Shop, pgw: httpx.Client
    ) -> None:
        theirs = other_shop.pay_as_terminal(card_payment())
        issued = shop.issue()

        response = pgw.get(f"/v1/payments/{theirs['id']}", headers=token_headers(issued["token"]))

        assert response.status_code == 404

    def test_a_token_bound_to_a_payment_reads_and_voids_it_but_creates_nothing(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        payment = shop.pay_as_terminal(card_payment(amount=650, capture_method="manual"))
        issued = shop.issue(payment_id=payment["id"])
        headers = token_headers(issued["token"])

        assert pgw.get(f"/v1/payments/{payment['id']}", headers=headers).status_code == 200
        create = pay(pgw, issued["token"], card_payment(amount=650))
        assert create.status_code == 409
        assert create.json()["code"] == "payment_token_used"
        void = pgw.post(
            f"/v1/payments/{payment['id']}/void",
            headers=token_headers(issued["token"], idempotency_key=True),
        )
        assert void.status_code == 200, void.text
        assert void.json()["status"] == "voided"


class TestWhatATokenCannotDo:
    def test_it_cannot_list_payments(self, shop: Shop, pgw: httpx.Client) -> None:
        issued = shop.issue()

        response = pgw.get("/v1/payments", headers=token_headers(issued["token"]))

        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"

    def test_it_cannot_refund_its_own_payment(self, shop: Shop, pgw: httpx.Client) -> None:
        issued = shop.issue()
        payment = pay(pgw, issued["token"], card_payment()).json()

        response = pgw.post(
            f"/v1/payments/{payment['id']}/refunds",
            json={"amount": 100},
            headers=token_headers(issued["token"], idempotency_key=True),
        )

        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"

    def test_it_cannot_capture_its_own_payment(self, shop: Shop, pgw: httpx.Client) -> None:
        issued = shop.issue()
        payment = pay(pgw, issued["token"], card_payment(capture_method="manual")).json()
        assert payment["status"] == "authorized"

        response = pgw.post(
            f"/v1/payments/{payment['id']}/capture",
            json={},
            headers=token_headers(issued["token"], idempotency_key=True),
        )

        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
        # The terminal can.
        captured = pgw.post(
            f"/v1/payments/{payment['id']}/capture",
            json={},
            headers={**shop.device_headers(), "Idempotency-Key": uuid.uuid4().hex},
        )
        assert captured.status_code == 200, captured.text
