"""QR wallet payments: created pending, completed by the wallet later, announced by webhook."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx
import pytest

from backend.core.settings import Settings
from tests.backend.provider.support import (
    ProviderServer,
    WebhookReceiver,
    db_fetch,
    provider_server,
    qr_body,
    reference,
    wait_for,
)


def _create(client: httpx.Client, **kwargs: Any) -> dict[str, Any]:
    response = client.post("/v1/qr-payments", json=qr_body(**kwargs))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_new_qr_payment_is_pending_with_a_payload_and_an_expiry(
    provider_client: httpx.Client,
) -> None:
    before = dt.datetime.now(dt.UTC)
    payment = _create(provider_client, amount=1_980)
    assert payment["status"] == "pending"
    assert payment["id"].startswith("qr_")
    assert payment["qr_payload"] == f"mpacqr://pay/{payment['id']}"
    assert payment["amount"] == 1_980
    assert payment["wallet"] == "paypay"
    expires_at = dt.datetime.fromisoformat(payment["expires_at"])
    assert before + dt.timedelta(seconds=60) < expires_at < before + dt.timedelta(hours=1)
    found = provider_client.get(f"/v1/qr-payments/by-reference/{payment['reference']}")
    assert found.status_code == 200
    assert found.json() == payment


def test_an_unknown_qr_reference_is_not_found(provider_client: httpx.Client) -> None:
    response = provider_client.get(f"/v1/qr-payments/by-reference/{reference()}")
    assert response.status_code == 404
    assert response.json()["code"] == "qr_payment_not_found"


@pytest.mark.parametrize(
    ("outcome", "status", "event_type"),
    [
        ("paid", "paid", "qr_payment.succeeded"),
        ("declined", "declined", "qr_payment.failed"),
        ("expired", "expired", "qr_payment.expired"),
    ],
)
def test_the_wallet_outcome_sets_the_state_and_sends_its_webhook(
    fast_client: httpx.Client,
    receiver: WebhookReceiver,
    outcome: str,
    status: str,
    event_type: str,
) -> None:
    payment = _create(fast_client, amount=2_500, wallet="rakutenpay")
    simulated = fast_client.post(
        f"/v1/qr-payments/{payment['id']}/simulate", json={"outcome": outcome}
    )
    assert simulated.status_code == 200, simulated.text
    assert simulated.json()["status"] == status
    assert simulated.json()["completed_at"] is not None

    deliveries = wait_for(
        lambda: receiver.of_type(payment["reference"], event_type), timeout_s=10, what=event_type
    )
    assert len(deliveries) == 1
    event = deliveries[0].event
    assert event["id"].startswith("evt_")
    assert event["data"] == {
        "qr_payment_id": payment["id"],
        "reference": payment["reference"],
        "amount": 2_500,
        "currency": "JPY",
        "status": status,
        "wallet": "rakutenpay",
    }
    # Nothing else was announced for this payment.
    assert [d.event["type"] for d in receiver.for_reference(payment["reference"])] == [event_type]


def test_a_completed_qr_payment_cannot_be_completed_again(fast_client: httpx.Client) -> None:
    payment = _create(fast_client)
    path = f"/v1/qr-payments/{payment['id']}/simulate"
    assert fast_client.post(path, json={"outcome": "paid"}).status_code == 200
    for outcome in ("paid", "declined", "expired"):
        response = fast_client.post(path, json={"outcome": outcome})
        assert response.status_code == 409
        assert response.json()["code"] == "invalid_state"
        assert response.json()["current_state"] == "paid"


def test_simulate_refuses_an_unknown_outcome(fast_client: httpx.Client) -> None:
    payment = _create(fast_client)
    response = fast_client.post(
        f"/v1/qr-payments/{payment['id']}/simulate", json={"outcome": "maybe"}
    )
    assert response.status_code == 422


def test_paying_after_the_expiry_is_refused_and_the_payment_expires_once(
    fast_client: httpx.Client, receiver: WebhookReceiver, test_settings: Settings
) -> None:
    payment = _create(fast_client)
    db_fetch(
        test_settings,
        "UPDATE provider.qr_payments SET expires_at = now() - interval '1 second' WHERE id = $1",
        payment["id"],
    )
    response = fast_client.post(
        f"/v1/qr-payments/{payment['id']}/simulate", json={"outcome": "paid"}
    )
    assert response.status_code == 409
    # The sweep may have expired it a moment earlier; either way it is expired, not paid.
    assert response.json()["code"] in ("qr_payment_expired", "invalid_state")
    assert response.json()["current_state"] == "expired"
    assert fast_client.get(f"/v1/qr-payments/{payment['id']}").json()["status"] == "expired"
    wait_for(
        lambda: receiver.of_type(payment["reference"], "qr_payment.expired"),
        timeout_s=10,
        what="the expiry webhook",
    )
    events = db_fetch(
        test_settings,
        "SELECT type FROM provider.webhook_events WHERE reference = $1",
        payment["reference"],
    )
    assert [e["type"] for e in events] == ["qr_payment.expired"]


def test_unpaid_qr_codes_expire_by_themselves(
    test_settings: Settings, receiver: WebhookReceiver
) -> None:
    with (
        provider_server(
            test_settings,
            provider_webhook_url=receiver.url,
            provider_qr_ttl_s=1,
        ) as server,
        server.client() as client,
    ):
        payment = _create(client)
        wait_for(
            lambda: client.get(f"/v1/qr-payments/{payment['id']}").json()["status"] == "expired",
            timeout_s=10,
            what="the QR payment to expire",
        )
        deliveries = wait_for(
            lambda: receiver.of_type(payment["reference"], "qr_payment.expired"),
            timeout_s=10,
            what="the expiry webhook",
        )
        assert deliveries[0].event["data"]["status"] == "expired"


def test_expiry_of_another_endpoints_payment_is_left_to_its_own_provider(
    fast_provider: ProviderServer, test_settings: Settings, receiver: WebhookReceiver
) -> None:
    """A provider only sweeps (and delivers) what belongs to its own webhook endpoint."""
    with fast_provider.client() as client:
        payment = _create(client)
    db_fetch(
        test_settings,
        "UPDATE provider.qr_payments SET expires_at = now() - interval '1 second', "
        "webhook_url = 'http://127.0.0.1:9/nobody' WHERE id = $1",
        payment["id"],
    )
    time.sleep(2.5)  # two sweeps' worth
    with fast_provider.client() as client:
        assert client.get(f"/v1/qr-payments/{payment['id']}").json()["status"] == "pending"
