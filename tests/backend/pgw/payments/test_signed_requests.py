"""Forged, stale, replayed and tampered service signatures on pgw's real payment route.

tests/backend/core/test_hmac_signing.py covers the signature scheme on a test receiver; these
check that ``POST /v1/payments`` runs the check before anything else, idempotency included: a
signed request replayed, or changed on the way, takes no payment.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from backend.core.hmac_signing import MERCHANT_HEADER, STORE_HEADER, HmacAuth, generate_s2s_secret
from backend.core.settings import Settings
from tests.support.pgw import PayingTerminal, card_payment


def _signed_payment(
    settings: Settings, paying: PayingTerminal, reference: str, auth: HmacAuth | None = None
) -> httpx.Request:
    """A payment smarttab signed for the terminal's store, built once to be sent as is or not."""
    request = httpx.Request(
        "POST",
        f"{settings.url_of('pgw')}/v1/payments",
        json=card_payment(reference=reference),
        headers={
            "Idempotency-Key": f"tab-{reference}",
            MERCHANT_HEADER: paying.tenant.merchant_id,
            STORE_HEADER: paying.tenant.store_a_id,
        },
    )
    return (auth or HmacAuth.from_settings(settings, "smarttab")).sign(request)


def _copy(
    signed: httpx.Request, *, content: bytes | None = None, headers: dict[str, str] | None = None
) -> httpx.Request:
    """``signed`` with its signature headers kept and, optionally, its body or a header changed."""
    kept = httpx.Headers(
        [(k, v) for k, v in signed.headers.multi_items() if k not in ("content-length", "host")]
    )
    kept.update(headers or {})
    return httpx.Request(
        signed.method,
        signed.url,
        headers=kept,
        content=signed.content if content is None else content,
    )


def _payments(pgw: httpx.Client, paying: PayingTerminal, reference: str) -> list[str]:
    response = pgw.get(
        "/v1/payments",
        params={"reference": reference},
        headers=paying.tenant.user("auditor").headers,
    )
    assert response.status_code == 200, response.text
    return [payment["id"] for payment in response.json()["items"]]


def _assert_refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_a_replayed_signed_payment_is_refused_not_answered_from_the_idempotency_store(
    test_settings: Settings, pgw_client: httpx.Client, paying: PayingTerminal
) -> None:
    reference = uuid.uuid4().hex
    signed = _signed_payment(test_settings, paying, reference)
    assert pgw_client.send(signed).status_code == 201

    _assert_refused(pgw_client.send(_copy(signed)), "hmac_replayed_nonce")

    assert len(_payments(pgw_client, paying, reference)) == 1


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda signed, other: _copy(
                signed, content=json.dumps({**json.loads(signed.content), "amount": 999}).encode()
            ),
            id="amount",
        ),
        pytest.param(
            lambda signed, other: _copy(signed, headers={MERCHANT_HEADER: other.merchant_id}),
            id="merchant-header",
        ),
        pytest.param(
            lambda signed, other: _copy(signed, headers={STORE_HEADER: other.store_a_id}),
            id="store-header",
        ),
    ],
)
def test_a_signed_payment_changed_on_the_way_is_refused(
    test_settings: Settings,
    pgw_client: httpx.Client,
    paying: PayingTerminal,
    other_paying: PayingTerminal,
    tamper: Callable[..., httpx.Request],
) -> None:
    reference = uuid.uuid4().hex
    signed = _signed_payment(test_settings, paying, reference)
    tampered = tamper(signed, other_paying.tenant)
    assert tampered.content != signed.content or tampered.headers != signed.headers

    _assert_refused(pgw_client.send(tampered), "hmac_bad_signature")

    assert _payments(pgw_client, paying, reference) == []
    # The refusal did not use up the nonce: the genuine request still goes through, once.
    assert pgw_client.send(_copy(signed)).status_code == 201


def test_a_stale_signed_payment_is_refused(
    test_settings: Settings, pgw_client: httpx.Client, paying: PayingTerminal
) -> None:
    reference = uuid.uuid4().hex
    stale = HmacAuth.from_settings(
        test_settings, "smarttab", clock=lambda: time.time() - test_settings.s2s_max_skew_s - 60
    )

    response = pgw_client.send(_signed_payment(test_settings, paying, reference, stale))

    _assert_refused(response, "hmac_clock_skew")
    assert _payments(pgw_client, paying, reference) == []


def test_a_payment_signed_with_a_wrong_secret_is_refused(
    test_settings: Settings, pgw_client: httpx.Client, paying: PayingTerminal
) -> None:
    reference = uuid.uuid4().hex
    genuine = HmacAuth.from_settings(test_settings, "smarttab")
    forged = HmacAuth(genuine.caller, genuine.kid, generate_s2s_secret())

    response = pgw_client.send(_signed_payment(test_settings, paying, reference, forged))

    _assert_refused(response, "hmac_bad_signature")
    assert _payments(pgw_client, paying, reference) == []
