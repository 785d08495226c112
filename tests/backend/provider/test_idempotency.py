"""Same reference, same stored result, one charge: sequentially and under a burst of retries."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from backend.core.settings import Settings
from tests.backend.provider.support import (
    api_headers,
    authorization_body,
    db_fetch,
    qr_body,
    reference,
)


def test_a_repeated_reference_returns_the_stored_result(provider_client: httpx.Client) -> None:
    body = authorization_body(amount=2500, capture=True)
    first = provider_client.post("/v1/authorizations", json=body)
    second = provider_client.post("/v1/authorizations", json=body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()


def test_a_repeated_declined_reference_stays_declined(provider_client: httpx.Client) -> None:
    body = authorization_body("4000000000009995")
    first = provider_client.post("/v1/authorizations", json=body).json()
    again = provider_client.post("/v1/authorizations", json=body).json()
    assert first == again
    assert first["decline_code"] == "insufficient_funds"


def test_a_reference_reused_for_another_payment_is_refused(provider_client: httpx.Client) -> None:
    body = authorization_body(amount=1000)
    assert provider_client.post("/v1/authorizations", json=body).status_code == 200
    for change in (
        {"amount": 1001},
        {"currency": "USD"},
        {"card": {**body["card"], "pan": "5555555555554444"}},
    ):
        response = provider_client.post("/v1/authorizations", json={**body, **change})
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "reference_conflict"


def test_twenty_concurrent_identical_requests_make_one_authorization(
    provider_url: str, test_settings: Settings
) -> None:
    body = authorization_body(amount=4321, capture=True)

    def post(_: int) -> httpx.Response:
        return httpx.post(
            provider_url + "/v1/authorizations",
            json=body,
            headers=api_headers(test_settings),
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(post, range(20)))
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len({r.json()["auth_code"] for r in responses}) == 1
    rows = db_fetch(
        test_settings,
        "SELECT id FROM provider.authorizations WHERE reference = $1",
        body["reference"],
    )
    assert len(rows) == 1
    events = db_fetch(
        test_settings,
        "SELECT type FROM provider.webhook_events WHERE reference = $1",
        body["reference"],
    )
    assert [e["type"] for e in events] == ["authorization.approved"]


def test_by_reference_finds_the_authorization(provider_client: httpx.Client) -> None:
    created = provider_client.post("/v1/authorizations", json=authorization_body()).json()
    found = provider_client.get(f"/v1/authorizations/by-reference/{created['reference']}")
    assert found.status_code == 200
    assert found.json() == created
    by_id = provider_client.get(f"/v1/authorizations/{created['id']}")
    assert by_id.json() == created


def test_an_unknown_reference_is_authorization_not_found(provider_client: httpx.Client) -> None:
    response = provider_client.get(f"/v1/authorizations/by-reference/{reference()}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "authorization_not_found"


def test_qr_payments_are_idempotent_by_reference(provider_client: httpx.Client) -> None:
    body = qr_body()
    first = provider_client.post("/v1/qr-payments", json=body)
    second = provider_client.post("/v1/qr-payments", json=body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    conflict = provider_client.post("/v1/qr-payments", json={**body, "amount": body["amount"] + 1})
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "reference_conflict"


def test_concurrent_identical_refunds_make_one_refund(
    provider_client: httpx.Client, provider_url: str, test_settings: Settings
) -> None:
    auth = provider_client.post(
        "/v1/authorizations", json=authorization_body(amount=1000, capture=True)
    ).json()
    refund = {"reference": reference("rf"), "amount": 600}

    def post(_: int) -> httpx.Response:
        return httpx.post(
            f"{provider_url}/v1/authorizations/{auth['id']}/refunds",
            json=refund,
            headers=api_headers(test_settings),
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(post, range(10)))
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    after = provider_client.get(f"/v1/authorizations/{auth['id']}").json()
    assert after["amount_refunded"] == 600
