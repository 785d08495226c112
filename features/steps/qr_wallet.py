"""QR wallet payments: the terminal shows a QR code, the customer pays in their wallet app, and
the provider's webhook completes the payment at the gateway — once, whatever the provider sends
again or late.

The emulated Credit Card App takes cards only, so a QR payment is started by a device enrolled
at the HTTP level (``features/support/devices.py``); the customer's wallet is the simulated
provider's own API (``provider_control``).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pytest_bdd import then, when

from backend.provider.webhooks.signing import signature_header
from features.support.backoffice import Backoffice
from features.support.deployment import Deployment
from features.support.devices import Device
from features.support.terminals import Payment
from features.support.vocabulary import step_text, yen
from tests.support.pgw import qr_payment, simulate_qr_with

# What a QR event says the wallet did (docs/provider.md, "Webhooks").
QR_STATUSES = {
    "qr_payment.succeeded": "paid",
    "qr_payment.failed": "declined",
    "qr_payment.expired": "expired",
}


@dataclass
class Webhook:
    """A webhook sent to the gateway again, and what the payment looked like before."""

    outcome: str | None
    status_code: int | None
    events_before: int


def _events(backoffice: Backoffice, payment_id: str) -> list[dict[str, Any]]:
    response = backoffice.deployment.pgw.get(
        f"/v1/payments/{payment_id}/events", headers=backoffice.deployment.admin.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return list(body["items"] if isinstance(body, dict) else body)


@when(step_text("the device starts a QR wallet payment of {amount:Yen}"), target_fixture="payment")
def device_starts_qr_payment(device: Device, amount: int) -> Payment:
    """``POST /v1/payments`` with ``method: qr_wallet``: pgw asks the provider for a QR code."""
    response = device.pay(qr_payment(amount=amount))
    assert response.status_code in (200, 201), f"pgw refused: {response.text[:300]}"
    return Payment(str(response.json()["id"]), amount)


@then(step_text("the customer is shown a QR code to scan"))
def customer_shown_qr(backoffice: Backoffice, payment: Payment) -> None:
    """pgw holds the payment waiting for the customer, with the QR code's payload."""
    record = backoffice.payment(payment.payment_id)
    assert record["status"] == "requires_action", f"pgw shows the payment {record['status']}"
    assert str(record.get("qr_payload") or "").startswith("mpacqr://"), record.get("qr_payload")


@when(step_text("the customer pays with their wallet app"))
def wallet_pays(deployment: Deployment, payment: Payment) -> None:
    """The wallet app completes the payment at the provider, which then sends its webhook."""
    simulate_qr_with(deployment.provider, payment.payment_id, "paid")


@when(step_text("the customer's wallet app declines the payment"))
def wallet_declines(deployment: Deployment, payment: Payment) -> None:
    """The wallet app refuses at the provider, which sends a failure webhook."""
    simulate_qr_with(deployment.provider, payment.payment_id, "declined")


@then(step_text("the gateway shows the payment captured for {amount:Yen} once the webhook came"))
def gateway_captured_by_webhook(backoffice: Backoffice, payment: Payment, amount: int) -> None:
    """The provider's webhook moved the payment to captured (waited for: webhooks are
    asynchronous)."""
    record = backoffice.payment_when(payment.payment_id, {"captured"})
    assert record["status"] == "captured", f"pgw shows the payment {record['status']}"
    assert record["amount_captured"] == amount, f"pgw captured {yen(record['amount_captured'])}"


@when(step_text("the provider sends the same webhook again"), target_fixture="webhook")
def provider_redelivers(
    deployment: Deployment, backoffice: Backoffice, payment: Payment
) -> Webhook:
    """The provider redelivers its last event of the payment (at-least-once delivery)."""
    before = len(_events(backoffice, payment.payment_id))
    events = deployment.provider.get(
        "/v1/_control/webhooks", params={"reference": payment.payment_id}
    )
    assert events.status_code == 200, events.text
    sent = [event for event in events.json() if event["status"] == "delivered"]
    assert sent, f"the provider delivered no webhook for payment {payment.payment_id}"
    answer = deployment.provider.post(f"/v1/_control/webhooks/{sent[-1]['id']}/redeliver")
    assert answer.status_code == 200, answer.text
    attempt = answer.json()["attempt"]
    return Webhook(None, attempt.get("status_code"), before)


@when(
    step_text('a late "{event_type:Name}" webhook for the payment reaches the gateway'),
    target_fixture="webhook",
)
def late_webhook(
    deployment: Deployment, backoffice: Backoffice, payment: Payment, event_type: str
) -> Webhook:
    """An event the provider signed, arriving after the payment was settled (operator: the
    webhook secret)."""
    settings = deployment.operator_settings
    before = len(_events(backoffice, payment.payment_id))
    record = backoffice.payment(payment.payment_id)
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "created": int(time.time()),
        "data": {
            "qr_payment_id": "qr_late",
            "reference": payment.payment_id,
            "amount": record["amount"],
            "currency": record["currency"],
            "status": QR_STATUSES[event_type],
            "wallet": "paypay",
        },
    }
    body = json.dumps(event).encode()
    secrets = [secret for secret in settings.provider_webhook_secrets.split(",") if secret]
    answer = deployment.pgw.post(
        "/v1/provider/webhooks",
        content=body,
        headers={
            "content-type": "application/json",
            "Provider-Signature": signature_header(secrets, int(time.time()), body),
        },
    )
    outcome = answer.json().get("outcome") if answer.status_code == 200 else None
    return Webhook(outcome, answer.status_code, before)


@then(step_text("the gateway acknowledges it and leaves the payment as it was"))
def gateway_ignores_webhook(backoffice: Backoffice, payment: Payment, webhook: Webhook) -> None:
    """Answered 2xx (so the provider stops sending), and no new event on the payment."""
    assert webhook.status_code is not None, "the webhook got no answer"
    assert 200 <= webhook.status_code < 300, f"pgw answered the webhook with {webhook.status_code}"
    if webhook.outcome is not None:
        assert webhook.outcome == "duplicate" or webhook.outcome.startswith("ignored_in_"), (
            f"pgw applied the webhook: {webhook.outcome}"
        )
    after = len(_events(backoffice, payment.payment_id))
    assert after == webhook.events_before, (
        f"the payment has {after - webhook.events_before} new event(s) after the webhook"
    )
