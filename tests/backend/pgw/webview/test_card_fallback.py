"""The SDK's browser fallback (TEST ONLY): a page with a payment token sends the card as a
terminal would. pgw takes it like any card payment, and the card number is kept nowhere."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from backend.core.settings import Settings
from tests.backend.pgw.payment_tokens.support import Shop, db_execute, token_headers
from tests.backend.pgw.webview.support import ORIGIN
from tests.support.pgw import APPROVED_VISA, GENERIC_DECLINE, card_payment

CVV = "987"


def pay_from_page(
    pgw: httpx.Client, token: str, body: dict[str, object], *, key: str | None = None
) -> httpx.Response:
    return pgw.post(
        "/v1/payments",
        json=body,
        headers={
            **token_headers(token),
            "Idempotency-Key": key or uuid.uuid4().hex,
            "origin": ORIGIN,
        },
    )


def test_a_token_pays_by_card_and_a_retry_does_not_charge_twice(
    shop: Shop, pgw: httpx.Client, settings: Settings
) -> None:
    issued = shop.issue(amount=1200, currency="JPY")
    body = card_payment(APPROVED_VISA, amount=1200, card={"cvv": CVV})
    key = uuid.uuid4().hex

    first = pay_from_page(pgw, issued["token"], body, key=key)
    # The answer was lost: the SDK retries with the same Idempotency-Key.
    retry = pay_from_page(pgw, issued["token"], body, key=key)

    assert first.status_code == 201, first.text
    payment = first.json()
    assert payment["status"] == "captured"
    assert payment["card"]["last4"] == "4242"
    assert first.headers["access-control-allow-origin"] == "*"
    assert retry.status_code == 201
    assert retry.json()["id"] == payment["id"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" in retry.headers["access-control-expose-headers"]
    charged = db_execute(
        settings,
        "SELECT count(*) AS n FROM provider.authorizations WHERE reference = $1",
        payment["id"],
    )
    made = db_execute(
        settings,
        "SELECT count(DISTINCT payment_id) AS n FROM pgw.payment_events WHERE actor = $1",
        f"payment_token:{issued['id']}",
    )
    assert (charged[0]["n"], made[0]["n"]) == (1, 1)


def test_a_declined_card_is_a_declined_payment_and_uses_the_token(
    shop: Shop, pgw: httpx.Client
) -> None:
    token = shop.issue(amount=1200, currency="JPY")["token"]

    declined = pay_from_page(pgw, token, card_payment(GENERIC_DECLINE, amount=1200))
    again = pay_from_page(pgw, token, card_payment(APPROVED_VISA, amount=1200))

    assert declined.status_code == 201, declined.text
    assert declined.json()["status"] == "declined"
    assert declined.json()["failure_code"] == "generic_decline"
    # One token, one payment: a new attempt needs a new token from the terminal.
    assert again.status_code == 409
    assert again.json()["code"] == "payment_token_used"
    assert again.headers["access-control-allow-origin"] == "*"


def test_no_card_number_or_cvv_is_stored_or_logged(
    shop: Shop, pgw: httpx.Client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pans = (APPROVED_VISA, GENERIC_DECLINE)
    for pan in pans:
        token = shop.issue(amount=1200, currency="JPY")["token"]
        response = pay_from_page(pgw, token, card_payment(pan, amount=1200, card={"cvv": CVV}))
        assert response.status_code == 201, response.text
        assert pan not in response.text
    refused = pay_from_page(
        pgw,
        shop.issue()["token"],
        card_payment(APPROVED_VISA, card={"exp_month": 13, "cvv": CVV}),
    )
    assert refused.status_code == 422
    assert APPROVED_VISA not in refused.text

    stored = "\n".join(
        row["row"]
        for table in db_execute(
            settings,
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('pgw', 'provider') AND table_type = 'BASE TABLE'",
        )
        for row in db_execute(
            settings,
            # Names come from information_schema, not from input.
            f'SELECT t::text AS row FROM "{table["table_schema"]}"."{table["table_name"]}" t',  # noqa: S608
        )
    )

    assert "4242" in stored  # last4 is kept: the scan does see card-derived data
    for pan in pans:
        assert pan not in stored
        assert pan not in caplog.text
    assert f'"cvv": "{CVV}"' not in stored
    assert f"cvv={CVV}" not in caplog.text
