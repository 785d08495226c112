"""Idempotency-Key: replay, mismatch, concurrency, and retry after a lost response."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from backend.core.settings import Settings
from tests.support.pgw import (
    PayingTerminal,
    card_payment,
    provider_api,
    wait_for_directory,
    wait_for_status,
)
from tests.support.portal import bearer, enroll_terminal


def test_the_same_key_and_body_replays_the_first_response(
    paying: PayingTerminal, pgw_client: httpx.Client
) -> None:
    first = paying.pay(pgw_client, card_payment(), key="order-1")
    again = paying.pay(pgw_client, card_payment(), key="order-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


def test_the_same_key_with_another_body_is_refused(
    paying: PayingTerminal, pgw_client: httpx.Client
) -> None:
    paying.pay(pgw_client, card_payment(amount=1200), key="order-2")

    response = paying.pay(pgw_client, card_payment(amount=1300), key="order-2")

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"


def test_keys_are_scoped_to_the_operation_and_its_target(
    paying: PayingTerminal, pgw_client: httpx.Client
) -> None:
    a = paying.pay(pgw_client, card_payment()).json()
    b = paying.pay(pgw_client, card_payment()).json()

    refund_a = paying.post(
        pgw_client, f"/v1/payments/{a['id']}/refunds", {"amount": 100}, key="refund-key"
    )
    refund_b = paying.post(
        pgw_client, f"/v1/payments/{b['id']}/refunds", {"amount": 100}, key="refund-key"
    )

    assert refund_a.status_code == 201
    assert refund_b.status_code == 422
    assert refund_b.json()["code"] == "idempotency_key_reused"


def test_keys_are_scoped_to_the_merchant(
    paying: PayingTerminal, other_paying: PayingTerminal, pgw_client: httpx.Client
) -> None:
    mine = paying.pay(pgw_client, card_payment(), key="shared-key")
    theirs = other_paying.pay(pgw_client, card_payment(), key="shared-key")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_fifty_concurrent_identical_requests_create_exactly_one_payment(
    paying: PayingTerminal, pgw_client: httpx.Client
) -> None:
    reference = f"concurrent-{uuid.uuid4().hex[:8]}"
    body = card_payment(reference=reference)
    key = uuid.uuid4().hex

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=str(pgw_client.base_url), timeout=30) as client:
            return paying.pay(client, body, key=key)

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(send, range(50)))

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, statuses
    assert statuses.count(201) >= 1
    assert all(
        r.json()["code"] == "idempotency_request_in_progress"
        for r in responses
        if r.status_code == 409
    )
    assert all(r.headers.get("retry-after") == "1" for r in responses if r.status_code == 409)
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1
    payments = pgw_client.get(
        "/v1/payments", params={"reference": reference}, headers=paying.headers
    ).json()
    assert len(payments["items"]) == 1
    # After the race, the key replays the one result.
    assert paying.pay(pgw_client, body, key=key).json()["id"] == payments["items"][0]["id"]


def test_a_retry_after_a_lost_response_charges_once(
    test_settings: Settings, paying: PayingTerminal, pgw_client: httpx.Client
) -> None:
    # The timeout card: the provider charges, but answers after pgw stopped waiting.
    body = card_payment("4000000000001034", reference=f"lost-{uuid.uuid4().hex[:8]}")
    first = paying.pay(pgw_client, body, key="lost-response")
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "processing"

    retry = paying.pay(pgw_client, body, key="lost-response")

    assert retry.status_code == 201, retry.text
    assert retry.json()["id"] == first.json()["id"]
    assert retry.json()["status"] == "captured"
    with provider_api(test_settings) as provider:
        charge = provider.get(f"/v1/authorizations/by-reference/{first.json()['id']}")
    assert charge.status_code == 200
    assert charge.json()["amount_captured"] == 1200
    listed = pgw_client.get(
        "/v1/payments", params={"reference": body["reference"]}, headers=paying.headers
    )
    assert len(listed.json()["items"]) == 1


def test_a_provider_timeout_is_resolved_later_never_failed(
    paying: PayingTerminal, pgw_client: httpx.Client
) -> None:
    first = paying.pay(pgw_client, card_payment("4000000000001034", amount=2500))
    assert first.status_code == 202
    payment_id = first.json()["id"]

    settled = wait_for_status(
        pgw_client, paying.headers, payment_id, {"captured", "failed"}, timeout_s=15
    )

    assert settled["status"] == "captured"
    assert settled["amount_captured"] == 2500
    events = pgw_client.get(f"/v1/payments/{payment_id}/events", headers=paying.headers).json()
    # Whichever learns first settles it: the provider's webhook or the reconciler's query.
    assert events[-1]["actor"] in {"system:reconciler", "system:provider"}
    assert events[-1]["to_status"] == "captured"


def test_a_provider_outage_fails_the_payment_cleanly(
    test_settings: Settings, paying: PayingTerminal, pgw_client: httpx.Client
) -> None:
    with provider_api(test_settings) as provider:
        assert provider.post("/v1/_control/config", json={"failure_rate": 1.0}).status_code == 200
        try:
            response = paying.pay(pgw_client, card_payment())
        finally:
            provider.post("/v1/_control/config", json={"failure_rate": 0.0})

    assert response.status_code == 201
    assert response.json()["status"] == "failed"
    assert response.json()["failure_code"] == "provider_unavailable"
    assert response.json()["amount_captured"] == 0


def test_another_caller_of_the_same_merchant_never_gets_my_replay(
    test_settings: Settings,
    paying: PayingTerminal,
    portal_client: httpx.Client,
    pgw_client: httpx.Client,
) -> None:
    second = enroll_terminal(portal_client, paying.tenant.admin, paying.tenant.store_a_id)
    wait_for_directory(
        test_settings, store_id=paying.tenant.store_a_id, terminal_id=second.terminal_id
    )
    body = card_payment(amount=4321)
    mine = paying.pay(pgw_client, body, key="order-7")

    theirs = pgw_client.post(
        "/v1/payments",
        json=body,
        headers={**bearer(second.fresh_token(portal_client)), "Idempotency-Key": "order-7"},
    )

    assert mine.status_code == 201
    assert theirs.status_code == 422
    assert theirs.json()["code"] == "idempotency_key_reused"
    assert mine.json()["id"] not in theirs.text
