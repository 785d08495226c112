"""Capture, void and refund arithmetic, and every refusal, on cards and QR payments."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.backend.provider.support import authorization_body, qr_body, reference


def _authorize(client: httpx.Client, **kwargs: Any) -> dict[str, Any]:
    response = client.post("/v1/authorizations", json=authorization_body(**kwargs))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _refund(client: httpx.Client, path: str, amount: int, ref: str | None = None) -> httpx.Response:
    return client.post(
        f"{path}/refunds", json={"reference": ref or reference("rf"), "amount": amount}
    )


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def test_partial_capture_then_partial_refunds_up_to_the_captured_amount(
    provider_client: httpx.Client,
) -> None:
    auth = _authorize(provider_client, amount=10_000)
    path = f"/v1/authorizations/{auth['id']}"
    captured = provider_client.post(f"{path}/capture", json={"amount": 8_000})
    assert captured.status_code == 200, captured.text
    assert captured.json()["captured"] is True
    assert captured.json()["amount_captured"] == 8_000
    assert captured.json()["amount_authorized"] == 10_000

    first = _refund(provider_client, path, 5_000)
    assert first.status_code == 200, first.text
    refund = first.json()
    assert refund["status"] == "succeeded"
    assert refund["authorization_id"] == auth["id"]
    assert refund["qr_payment_id"] is None
    assert refund["amount"] == 5_000
    assert refund["id"].startswith("re_")

    too_much = _problem(_refund(provider_client, path, 3_001), 409, "refund_exceeds_captured")
    assert too_much["refundable_amount"] == 3_000
    assert _refund(provider_client, path, 3_000).status_code == 200
    _problem(_refund(provider_client, path, 1), 409, "refund_exceeds_captured")
    assert provider_client.get(path).json()["amount_refunded"] == 8_000


def test_capture_defaults_to_the_authorized_amount(provider_client: httpx.Client) -> None:
    auth = _authorize(provider_client, amount=1_234)
    captured = provider_client.post(f"/v1/authorizations/{auth['id']}/capture")
    assert captured.status_code == 200, captured.text
    assert captured.json()["amount_captured"] == 1_234


def test_capture_happens_once(provider_client: httpx.Client) -> None:
    auth = _authorize(provider_client, amount=1_000)
    path = f"/v1/authorizations/{auth['id']}/capture"
    assert provider_client.post(path, json={"amount": 500}).status_code == 200
    _problem(provider_client.post(path, json={"amount": 500}), 409, "already_captured")


def test_an_auto_captured_payment_cannot_be_captured_again(provider_client: httpx.Client) -> None:
    auth = _authorize(provider_client, capture=True)
    response = provider_client.post(f"/v1/authorizations/{auth['id']}/capture", json={})
    _problem(response, 409, "already_captured")


def test_capture_cannot_exceed_the_authorized_amount(provider_client: httpx.Client) -> None:
    auth = _authorize(provider_client, amount=1_000)
    response = provider_client.post(
        f"/v1/authorizations/{auth['id']}/capture", json={"amount": 1_001}
    )
    _problem(response, 409, "capture_exceeds_authorized")
    assert provider_client.get(f"/v1/authorizations/{auth['id']}").json()["captured"] is False


@pytest.mark.parametrize("amount", [0, -1, 1.5, "100"])
def test_amounts_must_be_positive_integers(provider_client: httpx.Client, amount: Any) -> None:
    auth = _authorize(provider_client, amount=1_000, capture=True)
    path = f"/v1/authorizations/{auth['id']}"
    _problem(
        provider_client.post(f"{path}/capture", json={"amount": amount}), 422, "validation_failed"
    )
    _problem(_refund(provider_client, path, amount), 422, "validation_failed")


def test_a_declined_authorization_can_be_neither_captured_voided_nor_refunded(
    provider_client: httpx.Client,
) -> None:
    auth = _authorize(provider_client, pan="4000000000000002")
    path = f"/v1/authorizations/{auth['id']}"
    for response in (
        provider_client.post(f"{path}/capture", json={}),
        provider_client.post(f"{path}/void"),
        _refund(provider_client, path, 1),
    ):
        assert _problem(response, 409, "invalid_state")["current_state"] == "declined"


def test_void_releases_an_uncaptured_authorization_once(provider_client: httpx.Client) -> None:
    auth = _authorize(provider_client, amount=3_000)
    path = f"/v1/authorizations/{auth['id']}"
    voided = provider_client.post(f"{path}/void")
    assert voided.status_code == 200, voided.text
    assert voided.json()["voided"] is True
    assert voided.json()["status"] == "approved"
    # Voiding again answers the same; capturing or refunding a voided one is refused.
    again = provider_client.post(f"{path}/void")
    assert again.status_code == 200
    assert again.json() == voided.json()
    assert (
        _problem(provider_client.post(f"{path}/capture", json={}), 409, "invalid_state")[
            "current_state"
        ]
        == "voided"
    )
    _problem(_refund(provider_client, path, 1), 409, "invalid_state")


def test_a_captured_authorization_cannot_be_voided(provider_client: httpx.Client) -> None:
    auth = _authorize(provider_client, capture=True)
    response = provider_client.post(f"/v1/authorizations/{auth['id']}/void")
    assert _problem(response, 409, "invalid_state")["current_state"] == "captured"


def test_an_uncaptured_authorization_cannot_be_refunded(provider_client: httpx.Client) -> None:
    auth = _authorize(provider_client)
    response = _refund(provider_client, f"/v1/authorizations/{auth['id']}", 100)
    assert _problem(response, 409, "invalid_state")["current_state"] == "authorized"


def test_refunds_are_idempotent_by_reference(provider_client: httpx.Client) -> None:
    auth = _authorize(provider_client, amount=1_000, capture=True)
    path = f"/v1/authorizations/{auth['id']}"
    ref = reference("rf")
    first = _refund(provider_client, path, 400, ref)
    second = _refund(provider_client, path, 400, ref)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert provider_client.get(path).json()["amount_refunded"] == 400
    _problem(_refund(provider_client, path, 401, ref), 409, "reference_conflict")
    other = _authorize(provider_client, amount=1_000, capture=True)
    _problem(
        _refund(provider_client, f"/v1/authorizations/{other['id']}", 400, ref),
        409,
        "reference_conflict",
    )


def test_unknown_ids_are_not_found(provider_client: httpx.Client) -> None:
    _problem(
        provider_client.post("/v1/authorizations/auth_nope/capture", json={}),
        404,
        "authorization_not_found",
    )
    _problem(
        provider_client.post("/v1/authorizations/auth_nope/void"), 404, "authorization_not_found"
    )
    _problem(
        _refund(provider_client, "/v1/authorizations/auth_nope", 1), 404, "authorization_not_found"
    )
    _problem(_refund(provider_client, "/v1/qr-payments/qr_nope", 1), 404, "qr_payment_not_found")
    _problem(provider_client.get("/v1/qr-payments/qr_nope"), 404, "qr_payment_not_found")


def test_qr_refunds_need_a_paid_payment_and_stay_within_its_amount(
    provider_client: httpx.Client,
) -> None:
    payment = provider_client.post("/v1/qr-payments", json=qr_body(amount=2_000)).json()
    path = f"/v1/qr-payments/{payment['id']}"
    assert _problem(_refund(provider_client, path, 100), 409, "invalid_state")["current_state"] == (
        "pending"
    )
    paid = provider_client.post(f"{path}/simulate", json={"outcome": "paid"})
    assert paid.status_code == 200, paid.text
    refund = _refund(provider_client, path, 1_500)
    assert refund.status_code == 200, refund.text
    assert refund.json()["qr_payment_id"] == payment["id"]
    assert refund.json()["authorization_id"] is None
    _problem(_refund(provider_client, path, 501), 409, "refund_exceeds_captured")
    assert _refund(provider_client, path, 500).status_code == 200
    assert provider_client.get(path).json()["amount_refunded"] == 2_000


def test_a_declined_qr_payment_cannot_be_refunded(provider_client: httpx.Client) -> None:
    payment = provider_client.post("/v1/qr-payments", json=qr_body()).json()
    path = f"/v1/qr-payments/{payment['id']}"
    provider_client.post(f"{path}/simulate", json={"outcome": "declined"})
    assert _problem(_refund(provider_client, path, 1), 409, "invalid_state")["current_state"] == (
        "declined"
    )
