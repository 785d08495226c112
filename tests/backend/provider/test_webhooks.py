"""Signed webhooks, delivered asynchronously to a real receiver, retried and recorded."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx
import pytest

from backend.core.settings import Settings
from backend.provider.webhooks.signing import verify
from backend.runtime.server import PlatformStartupError
from tests.backend.provider.support import (
    Delivery,
    ProviderServer,
    WebhookReceiver,
    authorization_body,
    provider_server,
    qr_body,
    reference,
    wait_for,
    webhook_receiver,
)
from tests.helpers import free_ports


def _signature_parts(header: str) -> tuple[int, list[str]]:
    timestamp = 0
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.partition("=")
        if key == "t":
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    return timestamp, signatures


def _expected(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _paid_qr(client: httpx.Client, **kwargs: Any) -> dict[str, Any]:
    payment: dict[str, Any] = client.post("/v1/qr-payments", json=qr_body(**kwargs)).json()
    simulated = client.post(f"/v1/qr-payments/{payment['id']}/simulate", json={"outcome": "paid"})
    assert simulated.status_code == 200, simulated.text
    return payment


def _events(client: httpx.Client, ref: str, **params: str) -> list[dict[str, Any]]:
    response = client.get("/v1/_control/webhooks", params={"reference": ref, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


def _settled_event(client: httpx.Client, ref: str, type_: str) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        for event in _events(client, ref, type=type_):
            if event["status"] != "pending":
                return event
        return None

    event: dict[str, Any] = wait_for(settled, timeout_s=15, what=f"{type_} to settle")
    return event


def test_a_delivery_is_signed_with_the_secret(
    fast_provider: ProviderServer, fast_client: httpx.Client, receiver: WebhookReceiver
) -> None:
    payment = _paid_qr(fast_client)
    (delivery,) = wait_for(
        lambda: receiver.of_type(payment["reference"], "qr_payment.succeeded"),
        timeout_s=10,
        what="the webhook",
    )
    assert delivery.headers["content-type"] == "application/json"
    timestamp, signatures = _signature_parts(delivery.headers["provider-signature"])
    assert abs(time.time() - timestamp) < 60
    assert len(signatures) == 1
    secret = fast_provider.settings.provider_webhook_secrets
    assert hmac.compare_digest(signatures[0], _expected(secret, timestamp, delivery.body))
    assert not hmac.compare_digest(
        signatures[0], _expected("whsec_other", timestamp, delivery.body)
    )
    assert verify(
        delivery.headers["provider-signature"], delivery.body, [secret], now=int(time.time())
    )
    assert not verify(
        delivery.headers["provider-signature"], delivery.body + b" ", [secret], now=int(time.time())
    )
    assert not verify(
        delivery.headers["provider-signature"], delivery.body, [secret], now=int(time.time()) + 3600
    )
    event = delivery.event
    assert set(event) == {"id", "type", "created", "data"}
    assert isinstance(event["created"], int)
    assert abs(time.time() - event["created"]) < 60


def test_the_control_api_lists_the_event_as_delivered(
    fast_client: httpx.Client, receiver: WebhookReceiver
) -> None:
    payment = _paid_qr(fast_client)
    event = _settled_event(fast_client, payment["reference"], "qr_payment.succeeded")
    assert event["status"] == "delivered"
    assert event["delivered_at"] is not None
    assert event["reference"] == payment["reference"]
    assert event["data"]["qr_payment_id"] == payment["id"]
    assert [a["status_code"] for a in event["attempts"]] == [200]
    assert event["delivery_count"] == 1
    (delivery,) = receiver.of_type(payment["reference"], "qr_payment.succeeded")
    assert delivery.event["id"] == event["id"]


def test_failed_deliveries_are_retried_on_the_schedule_and_recorded(
    fast_client: httpx.Client, receiver: WebhookReceiver
) -> None:
    ref = reference("qrpay")
    receiver.fail(ref, times=2)
    _paid_qr(fast_client, ref=ref)
    event = _settled_event(fast_client, ref, "qr_payment.succeeded")
    assert event["status"] == "delivered"
    attempts = event["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    assert [a["attempt_no"] for a in attempts] == [1, 2, 3]
    assert not any(a["redelivery"] for a in attempts)
    deliveries = receiver.of_type(ref, "qr_payment.succeeded")
    assert [d.answered for d in deliveries] == [500, 500, 200]
    assert len({d.event["id"] for d in deliveries}) == 1
    # Schedule 0.2 s, then 0.5 s (each plus up to one poll interval).
    assert deliveries[1].at - deliveries[0].at >= 0.15
    assert deliveries[2].at - deliveries[1].at >= 0.45


def test_delivery_gives_up_when_the_schedule_is_exhausted(
    fast_client: httpx.Client, receiver: WebhookReceiver
) -> None:
    ref = reference("qrpay")
    receiver.fail(ref)
    _paid_qr(fast_client, ref=ref)
    event = _settled_event(fast_client, ref, "qr_payment.succeeded")
    assert event["status"] == "failed"
    assert event["next_attempt_at"] is None
    # The first attempt and one per entry of the schedule "0.2,0.5,1".
    assert [a["status_code"] for a in event["attempts"]] == [500, 500, 500, 500]
    time.sleep(1.5)
    assert len(receiver.of_type(ref, "qr_payment.succeeded")) == 4


def test_redeliver_sends_the_same_event_again(
    fast_client: httpx.Client, receiver: WebhookReceiver
) -> None:
    payment = _paid_qr(fast_client)
    event = _settled_event(fast_client, payment["reference"], "qr_payment.succeeded")
    response = fast_client.post(f"/v1/_control/webhooks/{event['id']}/redeliver")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["attempt"]["status_code"] == 200
    assert body["attempt"]["redelivery"] is True
    assert body["event"]["status"] == "delivered"
    assert [a["attempt_no"] for a in body["event"]["attempts"]] == [1, 2]
    deliveries = receiver.of_type(payment["reference"], "qr_payment.succeeded")
    assert len(deliveries) == 2
    assert deliveries[0].body == deliveries[1].body


def test_redeliver_of_an_unknown_event_is_not_found(fast_client: httpx.Client) -> None:
    response = fast_client.post("/v1/_control/webhooks/evt_nope/redeliver")
    assert response.status_code == 404
    assert response.json()["code"] == "webhook_event_not_found"


def test_a_redelivery_rescues_a_failed_event(
    fast_client: httpx.Client, receiver: WebhookReceiver
) -> None:
    ref = reference("qrpay")
    receiver.fail(ref)
    _paid_qr(fast_client, ref=ref)
    event = _settled_event(fast_client, ref, "qr_payment.succeeded")
    assert event["status"] == "failed"
    receiver.fail(ref, times=0)
    response = fast_client.post(f"/v1/_control/webhooks/{event['id']}/redeliver")
    assert response.json()["event"]["status"] == "delivered"
    assert response.json()["attempt"]["attempt_no"] == 5


def test_card_payments_and_refunds_send_signed_events(
    fast_client: httpx.Client, receiver: WebhookReceiver
) -> None:
    approved = fast_client.post("/v1/authorizations", json=authorization_body(capture=True)).json()
    declined = fast_client.post(
        "/v1/authorizations", json=authorization_body("4000000000000002")
    ).json()
    refund_ref = reference("rf")
    refund = fast_client.post(
        f"/v1/authorizations/{approved['id']}/refunds",
        json={"reference": refund_ref, "amount": 300},
    ).json()

    (approval,) = wait_for(
        lambda: receiver.of_type(approved["reference"], "authorization.approved"),
        timeout_s=10,
        what="authorization.approved",
    )
    assert approval.event["data"]["id"] == approved["id"]
    assert approval.event["data"]["status"] == "approved"
    (decline,) = wait_for(
        lambda: receiver.of_type(declined["reference"], "authorization.declined"),
        timeout_s=10,
        what="authorization.declined",
    )
    assert decline.event["data"]["decline_code"] == "generic_decline"

    def refund_deliveries() -> list[Delivery]:
        with receiver.lock:
            return [
                d
                for d in receiver.deliveries
                if d.event["type"] == "refund.succeeded" and d.event["data"]["id"] == refund["id"]
            ]

    (refunded,) = wait_for(refund_deliveries, timeout_s=10, what="refund.succeeded")
    assert refunded.event["data"]["authorization_id"] == approved["id"]
    assert refunded.event["data"]["amount"] == 300
    for delivery in (approval, decline, refunded):
        assert verify(
            delivery.headers["provider-signature"],
            delivery.body,
            ["whsec_test_local"],
            now=int(time.time()),
        )
    # The control API finds the refund's event by either reference.
    by_refund = _events(fast_client, refund_ref)
    by_payment = _events(fast_client, approved["reference"], type="refund.succeeded")
    assert [e["id"] for e in by_refund] == [e["id"] for e in by_payment]
    assert len(by_refund) == 1


def test_during_a_rotation_every_secret_signs(test_settings: Settings) -> None:
    with (
        webhook_receiver() as own_receiver,
        provider_server(
            test_settings,
            provider_webhook_url=own_receiver.url,
            provider_webhook_secrets="whsec_new_one, whsec_old_one",
        ) as server,
        server.client() as client,
    ):
        payment = _paid_qr(client)
        (delivery,) = wait_for(
            lambda: own_receiver.of_type(payment["reference"], "qr_payment.succeeded"),
            timeout_s=10,
            what="the webhook",
        )
    timestamp, signatures = _signature_parts(delivery.headers["provider-signature"])
    assert len(signatures) == 2
    assert hmac.compare_digest(signatures[0], _expected("whsec_new_one", timestamp, delivery.body))
    assert hmac.compare_digest(signatures[1], _expected("whsec_old_one", timestamp, delivery.body))
    # A receiver holding only one of them verifies either way.
    for secret in ("whsec_new_one", "whsec_old_one"):
        assert verify(
            delivery.headers["provider-signature"], delivery.body, [secret], now=int(time.time())
        )


def test_connection_errors_are_recorded_and_retried(test_settings: Settings) -> None:
    (dead_port,) = free_ports(1)
    with (
        provider_server(
            test_settings,
            provider_webhook_url=f"http://127.0.0.1:{dead_port}/hooks",
            provider_webhook_retry_schedule_s="0.1",
        ) as server,
        server.client() as client,
    ):
        payment = _paid_qr(client)
        event = _settled_event(client, payment["reference"], "qr_payment.succeeded")
    assert event["status"] == "failed"
    attempts = event["attempts"]
    assert len(attempts) == 2
    for attempt in attempts:
        assert attempt["status_code"] is None
        assert "Connect" in attempt["error"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("provider_webhook_secrets", ""),
        ("provider_webhook_secrets", " , "),
        ("provider_webhook_retry_schedule_s", "1,x"),
        ("provider_webhook_retry_schedule_s", "1,-2"),
    ],
)
def test_bad_webhook_settings_stop_the_start(
    test_settings: Settings, field: str, value: str
) -> None:
    with (
        pytest.raises(PlatformStartupError, match=f"provider: .*{field}"),
        provider_server(test_settings, **{field: value}),
    ):
        pass


def test_two_processes_share_the_outbox_without_sending_twice(
    fast_provider: ProviderServer, fast_client: httpx.Client, receiver: WebhookReceiver
) -> None:
    """A second provider on the same endpoint competes for the same events (SKIP LOCKED)."""
    with provider_server(fast_provider.settings) as twin, twin.client() as twin_client:
        references = []
        for index in range(30):
            client = fast_client if index % 2 else twin_client
            references.append(_paid_qr(client)["reference"])

        def all_delivered() -> bool:
            return all(receiver.of_type(ref, "qr_payment.succeeded") for ref in references)

        wait_for(all_delivered, timeout_s=20, what="every webhook")
        time.sleep(0.5)  # a duplicate, if any, would arrive by now
    for ref in references:
        deliveries = receiver.of_type(ref, "qr_payment.succeeded")
        assert len(deliveries) == 1, ref
