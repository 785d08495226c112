"""An approval that arrives after pgw failed the payment is reversed, never kept.

pgw fails a payment when the provider had no record of it (or could not be reached on the
first attempt); a request still in flight inside the provider can be approved after that. The
customer must not stay charged for a sale the merchant was told had failed.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from backend.core.settings import Settings
from tests.support.pgw import APPROVED_VISA, PayingTerminal, card_payment, provider_api, wait_until


@pytest.fixture
def failed_payment(
    test_settings: Settings, paying: PayingTerminal, pgw_client: httpx.Client
) -> dict[str, Any]:
    with provider_api(test_settings) as provider:
        assert provider.post("/v1/_control/config", json={"failure_rate": 1.0}).status_code == 200
        try:
            response = paying.pay(pgw_client, card_payment(amount=2300))
        finally:
            provider.post("/v1/_control/config", json={"failure_rate": 0.0})
    payment: dict[str, Any] = response.json()
    assert payment["status"] == "failed", payment
    return payment


def _late_authorization(settings: Settings, payment: dict[str, Any], *, capture: bool) -> str:
    """The provider processing pgw's request for ``payment`` after all (approved)."""
    with provider_api(settings) as provider:
        response = provider.post(
            "/v1/authorizations",
            json={
                "reference": payment["id"],
                "amount": 2300,
                "currency": "JPY",
                "capture": capture,
                "entry_mode": "contactless",
                "card": {"pan": APPROVED_VISA, "exp_month": 12, "exp_year": 2030},
                "merchant_id": payment["merchant_id"],
                "store_id": payment["store_id"],
                "terminal_id": payment["terminal_id"],
            },
        )
    assert response.status_code in (200, 201), response.text
    assert response.json()["status"] == "approved"
    return str(response.json()["id"])


def _authorization(settings: Settings, authorization_id: str) -> dict[str, Any]:
    with provider_api(settings) as provider:
        response = provider.get(f"/v1/authorizations/{authorization_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _events(pgw: httpx.Client, paying: PayingTerminal, payment_id: str) -> list[dict[str, Any]]:
    response = pgw.get(f"/v1/payments/{payment_id}/events", headers=paying.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


@pytest.mark.parametrize(("capture", "reversal"), [(True, "refunded"), (False, "voided")])
def test_a_late_approval_of_a_failed_payment_is_given_back(
    capture: bool,
    reversal: str,
    test_settings: Settings,
    paying: PayingTerminal,
    pgw_client: httpx.Client,
    failed_payment: dict[str, Any],
) -> None:
    authorization_id = _late_authorization(test_settings, failed_payment, capture=capture)

    reversed_event = wait_until(
        lambda: [
            e
            for e in _events(pgw_client, paying, failed_payment["id"])
            if e["event_type"] == "payment.late_approval_reversed"
        ],
        what="pgw to reverse the late approval",
    )

    at_provider = _authorization(test_settings, authorization_id)
    if capture:
        assert at_provider["amount_refunded"] == at_provider["amount_captured"] == 2300
    else:
        assert at_provider["voided"] is True
        assert at_provider["amount_captured"] == 0
    assert reversed_event[0]["data"]["reversal"] == reversal
    payment = pgw_client.get(f"/v1/payments/{failed_payment['id']}", headers=paying.headers).json()
    assert payment["status"] == "failed"
    assert payment["amount_captured"] == 0
