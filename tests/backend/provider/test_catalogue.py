"""Every test card and rule of docs/provider.md, over HTTP, plus the pure decision function."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any

import httpx
import pytest

from backend.core.settings import Settings
from backend.provider import catalogue
from tests.backend.provider.support import authorization_body

DECLINING_CARDS = [
    ("4000000000000002", "generic_decline"),
    ("4000000000009995", "insufficient_funds"),
    ("4000000000009987", "lost_card"),
    ("4000000000009979", "stolen_card"),
    ("4000000000000069", "expired_card"),
    ("4000000000000119", "processing_error"),
    ("4000000000001026", "do_not_honor"),
]

APPROVING_CARDS = [
    ("4242424242424242", "visa"),
    ("5555555555554444", "mastercard"),
    ("3566002020360505", "jcb"),
    ("378282246310005", "amex"),
]


def _authorize(client: httpx.Client, pan: str, **kwargs: Any) -> dict[str, Any]:
    response = client.post("/v1/authorizations", json=authorization_body(pan, **kwargs))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(("pan", "brand"), APPROVING_CARDS)
def test_approving_cards(provider_client: httpx.Client, pan: str, brand: str) -> None:
    body = _authorize(provider_client, pan, amount=1234)
    assert body["status"] == "approved"
    assert body["decline_code"] is None
    assert isinstance(body["auth_code"], str)
    assert len(body["auth_code"]) == 6
    assert body["brand"] == brand
    assert body["last4"] == pan[-4:]
    assert body["amount_authorized"] == 1234
    assert body["amount_captured"] == 0
    assert body["captured"] is False


@pytest.mark.parametrize(("pan", "code"), DECLINING_CARDS)
def test_declining_cards(provider_client: httpx.Client, pan: str, code: str) -> None:
    body = _authorize(provider_client, pan, capture=True)
    assert body["status"] == "declined"
    assert body["decline_code"] == code
    assert body["auth_code"] is None
    assert body["amount_authorized"] == 0
    assert body["amount_captured"] == 0
    assert body["captured"] is False


@pytest.mark.parametrize(
    ("pin", "status", "code"),
    [
        (None, "declined", "pin_required"),
        ("1234", "approved", None),
        ("9999", "declined", "incorrect_pin"),
    ],
)
def test_pin_required_card(
    provider_client: httpx.Client, pin: str | None, status: str, code: str | None
) -> None:
    overrides = {"pin": pin} if pin else {}
    body = _authorize(
        provider_client, "4000000000001000", entry_mode="chip", card_overrides=overrides
    )
    assert (body["status"], body["decline_code"]) == (status, code)


@pytest.mark.parametrize(
    ("pin", "code"), [(None, "pin_required"), ("1234", "incorrect_pin"), ("0000", "incorrect_pin")]
)
def test_incorrect_pin_card(provider_client: httpx.Client, pin: str | None, code: str) -> None:
    overrides = {"pin": pin} if pin else {}
    body = _authorize(
        provider_client, "4000000000001018", entry_mode="chip", card_overrides=overrides
    )
    assert (body["status"], body["decline_code"]) == ("declined", code)


UNKNOWN_VISA = "4111111111111111"


@pytest.mark.parametrize(
    ("amount", "status", "code"),
    [
        (1000, "approved", None),
        (1051, "declined", "insufficient_funds"),
        (2005, "declined", "do_not_honor"),
        (341, "declined", "lost_card"),
        (443, "declined", "stolen_card"),
        (554, "declined", "expired_card"),
        (114, "declined", "invalid_number"),
        (96, "declined", "processing_error"),
        (1099, "approved", None),
    ],
)
def test_unknown_card_outcome_follows_the_amount(
    provider_client: httpx.Client, amount: int, status: str, code: str | None
) -> None:
    body = _authorize(provider_client, UNKNOWN_VISA, amount=amount)
    assert (body["status"], body["decline_code"]) == (status, code)
    assert body["brand"] == "visa"


def test_amount_rules_do_not_apply_to_catalogue_cards(provider_client: httpx.Client) -> None:
    assert _authorize(provider_client, "4242424242424242", amount=1051)["status"] == "approved"


def test_luhn_invalid_number_is_declined(provider_client: httpx.Client) -> None:
    body = _authorize(provider_client, "4242424242424241")
    assert (body["status"], body["decline_code"]) == ("declined", "invalid_number")


def test_past_expiry_is_declined(provider_client: httpx.Client) -> None:
    body = _authorize(provider_client, "4242424242424242", card_overrides={"exp_year": 2020})
    assert (body["status"], body["decline_code"]) == ("declined", "expired_card")


def test_two_digit_expiry_year_is_normalised(provider_client: httpx.Client) -> None:
    body = _authorize(provider_client, "4242424242424242", card_overrides={"exp_year": 41})
    assert body["status"] == "approved"
    assert body["exp_year"] == 2041


def test_capture_true_captures_at_once(provider_client: httpx.Client) -> None:
    body = _authorize(provider_client, "5555555555554444", amount=700, capture=True)
    assert body["captured"] is True
    assert body["amount_captured"] == 700


def test_fingerprint_is_a_keyed_hash_of_the_pan_and_stable(
    provider_client: httpx.Client, test_settings: Settings
) -> None:
    first = _authorize(provider_client, "4242424242424242")
    second = _authorize(provider_client, "4242424242424242", amount=99)
    other = _authorize(provider_client, "5555555555554444")
    expected = hmac.new(
        test_settings.provider_fingerprint_key.encode(), b"4242424242424242", hashlib.sha256
    ).hexdigest()
    assert first["fingerprint"] == second["fingerprint"] == expected
    assert other["fingerprint"] != expected


def test_the_answer_never_contains_card_secrets(provider_client: httpx.Client) -> None:
    response = provider_client.post(
        "/v1/authorizations",
        json=authorization_body("4000000000001000", card_overrides={"pin": "1234"}),
    )
    assert "4000000000001000" not in response.text
    assert '"cvv"' not in response.text
    assert '"pin"' not in response.text


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 10.5},
        {"amount": 10.0},
        {"amount": "1000"},
        {"amount": 0},
        {"amount": -5},
        {"currency": "jpy"},
        {"currency": "JPYY"},
        {"entry_mode": "magic"},
        {"capture": "yes"},
        {"reference": ""},
        {"reference": "has space"},
        {"card": {"pan": "4242-4242-4242-4242", "exp_month": 1, "exp_year": 2030}},
        {"card": {"pan": "4242424242424242", "exp_month": 13, "exp_year": 2030}},
        {"card": {"pan": "4242424242424242", "exp_month": 1, "exp_year": 330}},
        {"card": {"pan": "4242424242424242", "exp_month": 1, "exp_year": 2030, "track": "x"}},
        {"surprise": True},
    ],
)
def test_malformed_requests_are_refused_without_echoing_input(
    provider_client: httpx.Client, change: dict[str, object]
) -> None:
    body = authorization_body()
    body.update(change)
    response = provider_client.post("/v1/authorizations", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "validation_failed"
    assert "4242424242424242" not in response.text
    assert "4242-4242" not in response.text


# Pure catalogue rules ------------------------------------------------------------------------

TODAY = dt.date(2030, 6, 15)


def test_catalogue_numbers_are_luhn_valid_and_unique() -> None:
    assert len(catalogue.CATALOGUE) == 14
    for pan in catalogue.CATALOGUE:
        assert catalogue.luhn_valid(pan), pan


def test_card_valid_through_its_expiry_month() -> None:
    assert not catalogue.is_expired(6, 2030, TODAY)
    assert not catalogue.is_expired(6, 30, TODAY)
    assert catalogue.is_expired(5, 2030, TODAY)
    assert catalogue.is_expired(12, 2029, TODAY)


def test_precedence_invalid_number_then_expiry_then_card() -> None:
    def decide(pan: str, *, exp_year: int, pin: str | None = None) -> catalogue.Decision:
        return catalogue.decide(
            pan=pan, exp_month=1, exp_year=exp_year, pin=pin, amount=100, today=TODAY
        )

    assert decide("4242424242424241", exp_year=2020).decline_code == "invalid_number"
    assert decide("4000000000001000", exp_year=2020, pin="1234").decline_code == "expired_card"
    stall = decide("4000000000001034", exp_year=2031)
    assert stall.approved
    assert stall.stall
    assert not decide("4242424242424242", exp_year=2031).stall


@pytest.mark.parametrize(
    ("pan", "brand"),
    [
        ("4111111111111111", "visa"),
        ("5105105105105100", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("371449635398431", "amex"),
        ("3530111333300000", "jcb"),
        ("6011111111111117", "discover"),
        ("30569309025904", "diners"),
        ("6200000000000005", "unionpay"),
        ("9999999999999995", "unknown"),
    ],
)
def test_brand_by_number_range(pan: str, brand: str) -> None:
    assert catalogue.brand_of(pan) == brand
