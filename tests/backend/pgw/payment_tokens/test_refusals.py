"""Tokens that are not (or no longer) good: unknown, forged, expired, revoked, elsewhere."""

from __future__ import annotations

import secrets
import uuid

import httpx
import pytest

from backend.core.settings import Settings
from tests.backend.pgw.payment_tokens.support import PROBLEM, Shop, db_execute, token_headers
from tests.support.pgw import card_payment, paying_terminal, service_client, wait_until


def assert_refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")


def create(pgw: httpx.Client, token: str) -> httpx.Response:
    return pgw.post(
        "/v1/payments", json=card_payment(), headers=token_headers(token, idempotency_key=True)
    )


class TestUnknownTokens:
    @pytest.mark.parametrize(
        "token",
        [
            "pt_" + secrets.token_urlsafe(32),
            "pt_short",
            "pt_" + "!" * 43,
            "pt_" + "A" * 300,
        ],
        ids=["well_formed_unknown", "too_short", "bad_characters", "too_long"],
    )
    def test_a_forged_token_is_refused(self, pgw: httpx.Client, token: str) -> None:
        assert_refused(create(pgw, token), "payment_token_invalid")
        assert_refused(
            pgw.get(f"/v1/payments/{uuid.uuid4()}", headers=token_headers(token)),
            "payment_token_invalid",
        )

    def test_a_real_token_with_one_character_changed_is_refused(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        token = shop.issue()["token"]
        forged = token[:-1] + ("A" if token[-1] != "A" else "B")

        assert_refused(create(pgw, forged), "payment_token_invalid")
        assert create(pgw, token).status_code == 201


class TestExpiry:
    def test_an_expired_token_is_refused(
        self, shop: Shop, pgw: httpx.Client, settings: Settings
    ) -> None:
        issued = shop.issue(amount=1200, currency="JPY")
        db_execute(
            settings,
            "UPDATE pgw.payment_tokens SET expires_at = now() - interval '1 second' WHERE id = $1",
            uuid.UUID(issued["id"]),
        )

        assert_refused(create(pgw, issued["token"]), "payment_token_expired")
        assert_refused(
            pgw.get("/v1/payment-tokens/current", headers=token_headers(issued["token"])),
            "payment_token_expired",
        )

    def test_an_expired_token_can_no_longer_read_its_payment(
        self, shop: Shop, pgw: httpx.Client, settings: Settings
    ) -> None:
        issued = shop.issue()
        payment = create(pgw, issued["token"]).json()
        db_execute(
            settings,
            "UPDATE pgw.payment_tokens SET expires_at = now() WHERE id = $1",
            uuid.UUID(issued["id"]),
        )

        assert_refused(
            pgw.get(f"/v1/payments/{payment['id']}", headers=token_headers(issued["token"])),
            "payment_token_expired",
        )


class TestRevocation:
    def test_the_holder_revokes_its_token(self, shop: Shop, pgw: httpx.Client) -> None:
        issued = shop.issue()
        headers = token_headers(issued["token"])

        revoked = pgw.delete("/v1/payment-tokens/current", headers=headers)

        assert revoked.status_code == 204
        assert_refused(create(pgw, issued["token"]), "payment_token_revoked")
        assert_refused(
            pgw.delete("/v1/payment-tokens/current", headers=headers), "payment_token_revoked"
        )

    def test_revoking_after_paying_keeps_the_payment(self, shop: Shop, pgw: httpx.Client) -> None:
        issued = shop.issue()
        payment = create(pgw, issued["token"]).json()

        assert (
            pgw.delete(
                "/v1/payment-tokens/current", headers=token_headers(issued["token"])
            ).status_code
            == 204
        )

        assert_refused(
            pgw.get(f"/v1/payments/{payment['id']}", headers=token_headers(issued["token"])),
            "payment_token_revoked",
        )
        kept = pgw.get(f"/v1/payments/{payment['id']}", headers=shop.device_headers())
        assert kept.json()["status"] == "captured"


class TestOnlyPgwAcceptsThem:
    def test_the_portal_refuses_a_payment_token(self, shop: Shop, portal: httpx.Client) -> None:
        token = shop.issue()["token"]

        for path in ("/v1/auth/me", f"/v1/stores/{shop.store_id}", "/v1/terminals"):
            response = portal.get(path, headers=token_headers(token))
            assert response.status_code == 401, (path, response.text)
            assert response.headers["content-type"] == PROBLEM

    def test_smarttab_refuses_a_payment_token(self, shop: Shop, smarttab: httpx.Client) -> None:
        token = shop.issue()["token"]

        response = smarttab.get("/v1/whoami", headers=token_headers(token))

        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM


class TestDirectory:
    def test_a_token_of_a_suspended_terminal_stops_working(
        self, shop: Shop, settings: Settings, portal: httpx.Client, pgw: httpx.Client
    ) -> None:
        terminal = paying_terminal(settings, portal, shop.tenant)
        token = pgw.post("/v1/payment-tokens", json={}, headers=terminal.headers).json()["token"]

        suspended = portal.post(
            f"/v1/terminals/{terminal.terminal.terminal_id}/suspend",
            json={"reason": "lost"},
            headers=shop.tenant.admin.headers,
        )
        assert suspended.status_code == 200, suspended.text
        with service_client(settings, "smarttab", settings.url_of("pgw")) as internal:
            wait_until(
                lambda: (
                    internal.get(
                        f"/internal/v1/directory/terminals/{terminal.terminal.terminal_id}"
                    ).json()["status"]
                    == "suspended"
                ),
                what="pgw to learn of the suspension",
            )

        response = create(pgw, token)

        assert response.status_code == 403
        assert response.json()["code"] == "terminal_not_active"
