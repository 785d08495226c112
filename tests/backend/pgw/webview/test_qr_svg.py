"""GET /v1/payments/{id}/qr.svg: the code the customer's wallet scans, for whoever may read the
payment, while the payment waits for it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import segno

from backend.core.settings import Settings
from tests.backend.pgw.payment_tokens.support import Shop, token_headers
from tests.backend.pgw.webview.support import ORIGIN, dark_modules, read_qr_svg
from tests.support.pgw import card_payment, qr_payment, simulate_qr, wait_for_status


def waiting_qr_payment(shop: Shop, pgw: httpx.Client) -> tuple[str, dict[str, Any]]:
    """A payment token and the QR payment it created, waiting for the customer."""
    token = shop.issue(amount=800, currency="JPY")["token"]
    created = pgw.post(
        "/v1/payments",
        json=qr_payment(amount=800),
        headers=token_headers(token, idempotency_key=True),
    )
    assert created.status_code == 201, created.text
    payment = created.json()
    assert payment["status"] == "requires_action"
    assert payment["qr_payload"]
    return token, payment


@pytest.fixture(scope="module")
def waiting(shop: Shop, pgw: httpx.Client) -> tuple[str, dict[str, Any]]:
    return waiting_qr_payment(shop, pgw)


class TestTheCode:
    def test_is_an_svg_of_the_payments_qr_payload(
        self, waiting: tuple[str, dict[str, Any]], pgw: httpx.Client
    ) -> None:
        token, payment = waiting

        response = pgw.get(f"/v1/payments/{payment['id']}/qr.svg", headers=token_headers(token))

        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/svg+xml"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        svg = read_qr_svg(response.text)
        # The modules drawn are exactly those of the payload's QR code: a wallet reads it.
        expected = segno.make(payment["qr_payload"], error="m")
        assert svg.modules == dark_modules(expected.matrix)
        side = expected.symbol_size(scale=6, border=4)[0]
        assert (svg.width, svg.height) == (side, side)
        assert svg.view_box == f"0 0 {side} {side}"
        assert "<script" not in response.text

    def test_scale_sets_the_size(
        self, waiting: tuple[str, dict[str, Any]], pgw: httpx.Client
    ) -> None:
        token, payment = waiting
        url = f"/v1/payments/{payment['id']}/qr.svg"

        small = read_qr_svg(pgw.get(url, params={"scale": 2}, headers=token_headers(token)).text)
        large = read_qr_svg(pgw.get(url, params={"scale": 10}, headers=token_headers(token)).text)

        assert large.width == 5 * small.width
        assert large.modules == small.modules

    @pytest.mark.parametrize("scale", [0, 21, "big"])
    def test_a_bad_scale_is_a_validation_problem(
        self, waiting: tuple[str, dict[str, Any]], pgw: httpx.Client, scale: int | str
    ) -> None:
        token, payment = waiting

        response = pgw.get(
            f"/v1/payments/{payment['id']}/qr.svg",
            params={"scale": scale},
            headers={**token_headers(token), "origin": ORIGIN},
        )

        assert response.status_code == 422
        assert response.json()["code"] == "validation_failed"
        assert response.headers["access-control-allow-origin"] == "*"


class TestWhoMaySeeIt:
    def test_the_terminal_of_the_store_may(
        self, waiting: tuple[str, dict[str, Any]], shop: Shop, pgw: httpx.Client
    ) -> None:
        _, payment = waiting

        response = pgw.get(f"/v1/payments/{payment['id']}/qr.svg", headers=shop.device_headers())

        assert response.status_code == 200

    def test_no_token_is_401(self, waiting: tuple[str, dict[str, Any]], pgw: httpx.Client) -> None:
        _, payment = waiting

        response = pgw.get(f"/v1/payments/{payment['id']}/qr.svg")

        assert response.status_code == 401
        assert response.json()["code"] == "missing_token"

    def test_another_tenant_gets_404(
        self, waiting: tuple[str, dict[str, Any]], other_shop: Shop, pgw: httpx.Client
    ) -> None:
        _, payment = waiting

        response = pgw.get(
            f"/v1/payments/{payment['id']}/qr.svg", headers=other_shop.device_headers()
        )

        assert response.status_code == 404
        assert response.json()["code"] == "payment_not_found"

    def test_a_token_of_another_payment_gets_404(
        self, waiting: tuple[str, dict[str, Any]], shop: Shop, pgw: httpx.Client
    ) -> None:
        _, payment = waiting
        other_token, _ = waiting_qr_payment(shop, pgw)  # same store, its own payment
        unused_token = shop.issue()["token"]  # same store, no payment yet

        for token in (other_token, unused_token):
            response = pgw.get(f"/v1/payments/{payment['id']}/qr.svg", headers=token_headers(token))
            assert response.status_code == 404
            assert response.json()["code"] == "payment_not_found"

    def test_an_unknown_payment_is_404(
        self, waiting: tuple[str, dict[str, Any]], shop: Shop, pgw: httpx.Client
    ) -> None:
        response = pgw.get(f"/v1/payments/{uuid.uuid4()}/qr.svg", headers=shop.device_headers())

        assert response.status_code == 404


class TestNoCodeToShow:
    def test_a_card_payment_has_none(self, shop: Shop, pgw: httpx.Client) -> None:
        token = shop.issue(amount=1200, currency="JPY")["token"]
        paid = pgw.post(
            "/v1/payments",
            json=card_payment(amount=1200),
            headers=token_headers(token, idempotency_key=True),
        ).json()

        response = pgw.get(f"/v1/payments/{paid['id']}/qr.svg", headers=token_headers(token))

        assert response.status_code == 409
        body = response.json()
        assert body["code"] == "qr_not_available"
        assert body["method"] == "card_present"

    def test_a_paid_qr_payment_shows_it_no_more(
        self, shop: Shop, pgw: httpx.Client, settings: Settings
    ) -> None:
        token, payment = waiting_qr_payment(shop, pgw)
        simulate_qr(settings, payment["id"], "paid")
        wait_for_status(pgw, token_headers(token), payment["id"], {"captured"})

        response = pgw.get(f"/v1/payments/{payment['id']}/qr.svg", headers=token_headers(token))

        assert response.status_code == 409
        assert response.json()["code"] == "qr_not_available"
        assert response.json()["current_status"] == "captured"
