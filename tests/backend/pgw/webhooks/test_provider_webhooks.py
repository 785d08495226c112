"""The provider's webhooks: signed, fresh, applied exactly once, in any order."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from backend.core.settings import Settings
from backend.pgw.webhooks.signature import signature_header
from tests.support.pgw import (
    PayingTerminal,
    provider_api,
    qr_payment,
    simulate_qr,
    wait_for_status,
    wait_until,
)


def _secrets(settings: Settings) -> list[str]:
    return [s.strip() for s in settings.provider_webhook_secrets.split(",") if s.strip()]


def post_event(
    pgw: httpx.Client,
    settings: Settings,
    event: dict[str, Any],
    *,
    timestamp: int | None = None,
    secrets: list[str] | None = None,
) -> httpx.Response:
    body = json.dumps(event).encode()
    header = signature_header(secrets or _secrets(settings), timestamp or int(time.time()), body)
    return pgw.post(
        "/v1/provider/webhooks",
        content=body,
        headers={"content-type": "application/json", "Provider-Signature": header},
    )


def qr_event(
    payment_id: str, kind: str = "succeeded", event_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": f"qr_payment.{kind}",
        "created": int(time.time()),
        "data": {"reference": payment_id, "status": kind, "amount": 800, "currency": "JPY"},
    }


@pytest.fixture
def waiting_qr(paying: PayingTerminal, pgw_client: httpx.Client) -> dict[str, Any]:
    response = paying.pay(pgw_client, qr_payment(amount=800))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "requires_action"
    return dict(response.json())


def test_the_wallet_paying_completes_the_payment_through_the_real_webhook(
    test_settings: Settings,
    paying: PayingTerminal,
    pgw_client: httpx.Client,
    waiting_qr: dict[str, Any],
) -> None:
    simulate_qr(test_settings, waiting_qr["id"], "paid")

    payment = wait_for_status(pgw_client, paying.headers, waiting_qr["id"], {"captured"})

    assert payment["amount_captured"] == 800
    events = pgw_client.get(
        f"/v1/payments/{waiting_qr['id']}/events", headers=paying.headers
    ).json()
    assert events[-1]["data"]["via"] == "webhook"


def test_a_redelivered_event_applies_once(
    test_settings: Settings,
    paying: PayingTerminal,
    pgw_client: httpx.Client,
    waiting_qr: dict[str, Any],
) -> None:
    simulate_qr(test_settings, waiting_qr["id"], "paid")
    wait_for_status(pgw_client, paying.headers, waiting_qr["id"], {"captured"})
    with provider_api(test_settings) as provider:
        events = provider.get(
            "/v1/_control/webhooks", params={"reference": waiting_qr["id"]}
        ).json()
        paid = next(e for e in events if e["type"] == "qr_payment.succeeded")
        assert provider.post(f"/v1/_control/webhooks/{paid['id']}/redeliver").status_code in (
            200,
            202,
        )

        def redelivered() -> bool:
            listed = provider.get(
                "/v1/_control/webhooks", params={"reference": waiting_qr["id"]}
            ).json()
            event = next(e for e in listed if e["id"] == paid["id"])
            return len(event["attempts"]) >= 2

        wait_until(redelivered, what="the provider to redeliver")

    history = pgw_client.get(
        f"/v1/payments/{waiting_qr['id']}/events", headers=paying.headers
    ).json()
    assert [e["to_status"] for e in history].count("captured") == 1


def test_a_duplicate_event_id_is_acknowledged_but_not_applied(
    test_settings: Settings,
    paying: PayingTerminal,
    pgw_client: httpx.Client,
    waiting_qr: dict[str, Any],
) -> None:
    event = qr_event(waiting_qr["id"])

    first = post_event(pgw_client, test_settings, event)
    second = post_event(pgw_client, test_settings, event)

    assert first.status_code == second.status_code == 200
    assert first.json()["outcome"] == "applied_captured"
    assert second.json()["outcome"] == "duplicate"
    history = pgw_client.get(
        f"/v1/payments/{waiting_qr['id']}/events", headers=paying.headers
    ).json()
    assert len(history) == 3  # created, requires_action, captured


def test_a_late_expiry_cannot_undo_a_payment(
    test_settings: Settings,
    paying: PayingTerminal,
    pgw_client: httpx.Client,
    waiting_qr: dict[str, Any],
) -> None:
    assert (
        post_event(pgw_client, test_settings, qr_event(waiting_qr["id"], "succeeded")).status_code
        == 200
    )

    late = post_event(pgw_client, test_settings, qr_event(waiting_qr["id"], "expired"))

    assert late.status_code == 200
    assert late.json()["outcome"] == "ignored_in_captured"
    assert (
        pgw_client.get(f"/v1/payments/{waiting_qr['id']}", headers=paying.headers).json()["status"]
        == "captured"
    )


def test_an_expiry_then_a_late_payment_keeps_the_expiry(
    test_settings: Settings,
    paying: PayingTerminal,
    pgw_client: httpx.Client,
    waiting_qr: dict[str, Any],
) -> None:
    post_event(pgw_client, test_settings, qr_event(waiting_qr["id"], "expired"))

    late = post_event(pgw_client, test_settings, qr_event(waiting_qr["id"], "succeeded"))

    assert late.json()["outcome"] == "ignored_in_expired"
    payment = pgw_client.get(f"/v1/payments/{waiting_qr['id']}", headers=paying.headers).json()
    assert payment["status"] == "expired"
    assert payment["failure_code"] == "qr_expired"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda e, s: {"secrets": ["whsec_wrong"]}, "webhook_signature_invalid"),
        (lambda e, s: {"timestamp": int(time.time()) - 301}, "webhook_timestamp_out_of_range"),
        (lambda e, s: {"timestamp": int(time.time()) + 301}, "webhook_timestamp_out_of_range"),
    ],
)
def test_forged_or_stale_webhooks_are_refused(
    test_settings: Settings,
    paying: PayingTerminal,
    pgw_client: httpx.Client,
    waiting_qr: dict[str, Any],
    mutate: Any,
    code: str,
) -> None:
    event = qr_event(waiting_qr["id"])

    response = post_event(pgw_client, test_settings, event, **mutate(event, test_settings))

    assert response.status_code == 400
    assert response.json()["code"] == code
    status = pgw_client.get(f"/v1/payments/{waiting_qr['id']}", headers=paying.headers).json()[
        "status"
    ]
    assert status == "requires_action"
    # Refused events are not remembered: the genuine one still applies.
    assert post_event(pgw_client, test_settings, event).json()["outcome"] == "applied_captured"


def test_a_tampered_body_is_refused(
    test_settings: Settings, pgw_client: httpx.Client, waiting_qr: dict[str, Any]
) -> None:
    event = qr_event(waiting_qr["id"])
    signed = signature_header(_secrets(test_settings), int(time.time()), json.dumps(event).encode())
    event["data"]["amount"] = 1

    response = pgw_client.post(
        "/v1/provider/webhooks",
        content=json.dumps(event).encode(),
        headers={"content-type": "application/json", "Provider-Signature": signed},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "webhook_signature_invalid"


def test_a_missing_or_malformed_signature_header_is_refused(pgw_client: httpx.Client) -> None:
    missing = pgw_client.post("/v1/provider/webhooks", content=b"{}")
    malformed = pgw_client.post(
        "/v1/provider/webhooks", content=b"{}", headers={"Provider-Signature": "v1=abc"}
    )

    assert missing.json()["code"] == "webhook_signature_missing"
    assert malformed.json()["code"] == "webhook_signature_malformed"


def test_any_of_several_secrets_verifies_during_rotation(
    test_settings: Settings, pgw_client: httpx.Client, waiting_qr: dict[str, Any]
) -> None:
    response = post_event(
        pgw_client,
        test_settings,
        qr_event(waiting_qr["id"]),
        secrets=["whsec_next", *_secrets(test_settings)],
    )
    assert response.status_code == 200


def test_an_event_for_an_unknown_payment_is_acknowledged(
    test_settings: Settings, pgw_client: httpx.Client
) -> None:
    response = post_event(pgw_client, test_settings, qr_event(str(uuid.uuid4())))

    assert response.status_code == 200
    assert response.json()["outcome"] == "unknown_payment"


def test_a_signed_body_that_is_not_an_event_is_a_clear_400(
    test_settings: Settings, pgw_client: httpx.Client
) -> None:
    body = b"[1, 2, 3]"
    header = signature_header(_secrets(test_settings), int(time.time()), body)

    response = pgw_client.post(
        "/v1/provider/webhooks", content=body, headers={"Provider-Signature": header}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "webhook_body_invalid"
