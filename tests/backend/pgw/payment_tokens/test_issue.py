"""Issuing payment tokens: who may, what comes back, what is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid

import httpx
import pytest

from backend.core.authz import Role
from backend.core.settings import Settings
from tests.backend.pgw.payment_tokens.support import PROBLEM, Shop, db_execute, token_headers
from tests.support.pgw import card_payment, service_client
from tests.support.portal import bearer

TOKEN = re.compile(r"pt_[A-Za-z0-9_-]{43,}")


class TestIssueByTerminal:
    def test_a_terminal_gets_a_five_minute_token_for_its_store(self, shop: Shop) -> None:
        before = dt.datetime.now(dt.UTC)
        issued = shop.issue(amount=1200, currency="JPY", reference="order-17")

        assert TOKEN.fullmatch(issued["token"])
        assert issued["token_type"] == "Bearer"
        assert issued["expires_in"] == 300
        expires_at = dt.datetime.fromisoformat(issued["expires_at"])
        assert dt.timedelta(seconds=295) < expires_at - before < dt.timedelta(seconds=305)
        assert issued["store_id"] == shop.store_id
        assert issued["terminal_id"] == shop.terminal_id
        assert (issued["amount"], issued["currency"]) == (1200, "JPY")
        assert issued["payment_id"] is None
        assert issued["reference"] == "order-17"

    def test_only_the_sha256_of_the_token_is_stored(self, shop: Shop, settings: Settings) -> None:
        issued = shop.issue()

        rows = db_execute(
            settings,
            "SELECT token_hash, store_id, terminal_id, amount FROM pgw.payment_tokens WHERE id = $1",
            uuid.UUID(issued["id"]),
        )
        assert len(rows) == 1
        assert rows[0]["token_hash"] == hashlib.sha256(issued["token"].encode()).hexdigest()
        assert str(rows[0]["terminal_id"]) == shop.terminal_id
        assert rows[0]["amount"] is None
        leaked = db_execute(
            settings,
            "SELECT count(*) AS n FROM pgw.payment_tokens WHERE token_hash = $1",
            issued["token"],
        )
        assert leaked[0]["n"] == 0

    def test_every_token_is_different(self, shop: Shop) -> None:
        assert shop.issue()["token"] != shop.issue()["token"]

    def test_the_holder_can_see_its_token_but_not_the_secret(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        issued = shop.issue(amount=500, currency="JPY")

        response = pgw.get("/v1/payment-tokens/current", headers=token_headers(issued["token"]))

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == issued["id"]
        assert (body["amount"], body["currency"], body["payment_id"]) == (500, "JPY", None)
        assert 0 < body["expires_in"] <= 300
        assert "token" not in body

    def test_whoami_shows_the_payment_token_role(self, shop: Shop, pgw: httpx.Client) -> None:
        issued = shop.issue()

        me = pgw.get("/v1/whoami", headers=token_headers(issued["token"])).json()

        assert me["kind"] == "payment_token"
        assert me["role"] == "payment_token"
        assert me["subject_id"] == issued["id"]
        assert me["store_id"] == shop.store_id
        assert me["merchant_id"] == shop.tenant.merchant_id

    def test_an_amount_needs_its_currency(self, shop: Shop) -> None:
        response = shop.issue_response(amount=1200)

        assert response.status_code == 422
        assert response.json()["code"] == "currency_required"

    @pytest.mark.parametrize(
        "body",
        [{"amount": 0, "currency": "JPY"}, {"currency": "XXX"}, {"unknown": 1}],
        ids=["zero_amount", "unsupported_currency", "unknown_field"],
    )
    def test_an_invalid_body_is_refused(self, shop: Shop, body: dict[str, object]) -> None:
        response = shop.issue_response(**body)

        assert response.status_code == 422
        assert response.json()["code"] == "validation_failed"

    def test_another_store_of_the_merchant_is_refused(self, shop: Shop) -> None:
        response = shop.issue_response(store_id=shop.tenant.store_b_id)

        assert response.status_code == 422
        assert response.json()["code"] == "store_mismatch"


class TestIssueForAPayment:
    def test_a_token_can_be_bound_to_an_existing_payment(self, shop: Shop) -> None:
        payment = shop.pay_as_terminal(card_payment(amount=900))

        issued = shop.issue(payment_id=payment["id"])

        assert issued["payment_id"] == payment["id"]
        assert (issued["amount"], issued["currency"]) == (900, "JPY")

    def test_a_different_amount_than_the_payment_is_refused(self, shop: Shop) -> None:
        payment = shop.pay_as_terminal(card_payment(amount=900))

        response = shop.issue_response(payment_id=payment["id"], amount=901, currency="JPY")

        assert response.status_code == 422
        assert response.json()["code"] == "payment_token_amount_mismatch"

    def test_an_unknown_payment_is_not_found(self, shop: Shop) -> None:
        response = shop.issue_response(payment_id=str(uuid.uuid4()))

        assert response.status_code == 404
        assert response.json()["code"] == "payment_not_found"

    def test_another_tenants_payment_is_not_found(self, shop: Shop, other_shop: Shop) -> None:
        theirs = other_shop.pay_as_terminal(card_payment())

        response = shop.issue_response(payment_id=theirs["id"])

        assert response.status_code == 404
        assert response.json()["code"] == "payment_not_found"


class TestWhoMayIssue:
    def test_a_service_caller_issues_for_the_store_in_its_signed_headers(
        self, shop: Shop, settings: Settings
    ) -> None:
        with service_client(settings, "smarttab", settings.url_of("pgw")) as client:
            response = client.post(
                "/v1/payment-tokens",
                json={"amount": 300, "currency": "JPY"},
                headers={
                    "X-MPAC-Merchant-Id": shop.tenant.merchant_id,
                    "X-MPAC-Store-Id": shop.store_id,
                },
            )

        assert response.status_code == 201, response.text
        assert response.json()["store_id"] == shop.store_id
        assert response.json()["terminal_id"] is None

    def test_a_service_caller_must_name_a_store(self, shop: Shop, settings: Settings) -> None:
        with service_client(settings, "smarttab", settings.url_of("pgw")) as client:
            response = client.post(
                "/v1/payment-tokens",
                json={},
                headers={"X-MPAC-Merchant-Id": shop.tenant.merchant_id},
            )

        assert response.status_code == 422
        assert response.json()["code"] == "store_required"

    @pytest.mark.parametrize("role", [Role.CASHIER, Role.STORE_MANAGER])
    def test_a_person_cannot_issue_even_with_payment_create(
        self, shop: Shop, pgw: httpx.Client, role: Role
    ) -> None:
        user = shop.tenant.user(role)

        response = pgw.post("/v1/payment-tokens", json={}, headers=user.headers)

        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"

    def test_an_auditor_lacks_payment_create(self, shop: Shop, pgw: httpx.Client) -> None:
        response = pgw.post(
            "/v1/payment-tokens", json={}, headers=shop.tenant.user(Role.AUDITOR).headers
        )

        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"

    def test_a_payment_token_cannot_issue_another(self, shop: Shop, pgw: httpx.Client) -> None:
        issued = shop.issue()

        response = pgw.post("/v1/payment-tokens", json={}, headers=token_headers(issued["token"]))

        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"

    def test_without_a_token_it_is_401(self, pgw: httpx.Client) -> None:
        response = pgw.post("/v1/payment-tokens", json={})

        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM

    def test_current_needs_a_payment_token(self, shop: Shop, pgw: httpx.Client) -> None:
        response = pgw.get("/v1/payment-tokens/current", headers=shop.device_headers())

        assert response.status_code == 403
        assert response.json()["code"] == "payment_token_required"
        assert pgw.delete("/v1/payment-tokens/current", headers=bearer("x")).status_code == 401
