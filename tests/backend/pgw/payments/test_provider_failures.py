"""Capture, void and refund when the provider is down or too slow: pgw answers 503
``provider_unavailable`` / 504 ``provider_timeout``, writes nothing, and a retry with the same
Idempotency-Key once the provider is back moves the money exactly once.

The failures are real: the simulated provider's control API refuses every call (``failure_rate``
1.0, before it touches anything) or delays every call past pgw's provider timeout (2 s in the
test settings). A delayed call is still carried out by the provider after pgw stopped waiting,
which is the case that matters: pgw said "timeout" but the money did move.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from backend.core.settings import Settings
from tests.support.pgw import PayingTerminal, card_payment, provider_api, wait_until

PROBLEM = "application/problem+json"
# Longer than pgw waits for the provider (pgw_provider_timeout_s = 2.0 in the test settings).
SLOW_MS = 2_500

# failure -> pgw's answer while it lasts
FAILURES = {
    "provider_down": (503, "provider_unavailable"),
    "provider_too_slow": (504, "provider_timeout"),
}


@pytest.fixture
def provider(test_settings: Settings) -> Iterator[httpx.Client]:
    """The session's provider with its API key; its latency and failure rate are reset after."""
    with provider_api(test_settings) as client:
        try:
            yield client
        finally:
            client.delete("/v1/_control/config").raise_for_status()


def break_provider(provider: httpx.Client, failure: str) -> None:
    config = {"failure_rate": 1.0} if failure == "provider_down" else {"latency_ms": SLOW_MS}
    provider.post("/v1/_control/config", json=config).raise_for_status()


def mend_provider(provider: httpx.Client) -> None:
    provider.delete("/v1/_control/config").raise_for_status()


def at_provider(provider: httpx.Client, payment_id: str) -> dict[str, Any]:
    """The provider's authorization of a pgw payment (pgw sends the payment id as reference)."""
    response = provider.get(f"/v1/authorizations/by-reference/{payment_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def provider_refunds(provider: httpx.Client, payment_id: str) -> list[dict[str, Any]]:
    """One ``refund.succeeded`` event per refund the provider made for the payment."""
    response = provider.get(
        "/v1/_control/webhooks", params={"reference": payment_id, "type": "refund.succeeded"}
    )
    assert response.status_code == 200, response.text
    return [event["data"] for event in response.json()]


def pgw_view(pgw: httpx.Client, paying: PayingTerminal, payment_id: str) -> dict[str, Any]:
    """Everything pgw holds about a payment: the payment, its events and its refunds."""
    views = {
        name: pgw.get(f"/v1/payments/{payment_id}{suffix}", headers=paying.headers)
        for name, suffix in (("payment", ""), ("events", "/events"), ("refunds", "/refunds"))
    }
    for response in views.values():
        assert response.status_code == 200, response.text
    return {name: response.json() for name, response in views.items()}


def fail_while_broken(
    provider: httpx.Client, failure: str, send: Callable[[], httpx.Response]
) -> httpx.Response:
    """``send()`` while the provider fails as ``failure``; checks pgw's problem answer."""
    break_provider(provider, failure)
    try:
        response = send()
    finally:
        mend_provider(provider)
    status, code = FAILURES[failure]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == code
    assert response.json()["status"] == status
    assert int(response.headers["retry-after"]) > 0  # the terminal's cue to retry the same key
    return response


def authorized(paying: PayingTerminal, pgw: httpx.Client, amount: int) -> str:
    response = paying.pay(pgw, card_payment(amount=amount, capture_method="manual"))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "authorized"
    return str(response.json()["id"])


def captured(paying: PayingTerminal, pgw: httpx.Client, amount: int) -> str:
    response = paying.pay(pgw, card_payment(amount=amount))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "captured"
    return str(response.json()["id"])


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failed_capture_writes_nothing_and_its_retry_captures_once(
    failure: str, paying: PayingTerminal, pgw_client: httpx.Client, provider: httpx.Client
) -> None:
    payment_id = authorized(paying, pgw_client, 5000)
    before = pgw_view(pgw_client, paying, payment_id)
    path, key = f"/v1/payments/{payment_id}/capture", uuid.uuid4().hex

    fail_while_broken(
        provider, failure, lambda: paying.post(pgw_client, path, {"amount": 4200}, key=key)
    )

    assert pgw_view(pgw_client, paying, payment_id) == before
    if failure == "provider_down":
        assert at_provider(provider, payment_id)["captured"] is False
    else:
        # The capture pgw stopped waiting for still lands at the provider.
        wait_until(
            lambda: at_provider(provider, payment_id)["captured"],
            what="the slow capture to land at the provider",
        )

    retry = paying.post(pgw_client, path, {"amount": 4200}, key=key)

    assert retry.status_code == 200, retry.text
    assert (retry.json()["status"], retry.json()["amount_captured"]) == ("captured", 4200)
    replay = paying.post(pgw_client, path, {"amount": 4200}, key=key)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == retry.json()
    charge = at_provider(provider, payment_id)
    assert (charge["captured"], charge["amount_captured"]) == (True, 4200)
    events = pgw_view(pgw_client, paying, payment_id)["events"]
    assert [e["to_status"] for e in events] == ["processing", "authorized", "captured"]
    assert events[-1]["amount"] == 4200


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failed_void_writes_nothing_and_its_retry_voids_once(
    failure: str, paying: PayingTerminal, pgw_client: httpx.Client, provider: httpx.Client
) -> None:
    payment_id = authorized(paying, pgw_client, 3000)
    before = pgw_view(pgw_client, paying, payment_id)
    path, key = f"/v1/payments/{payment_id}/void", uuid.uuid4().hex

    fail_while_broken(provider, failure, lambda: paying.post(pgw_client, path, key=key))

    assert pgw_view(pgw_client, paying, payment_id) == before
    if failure == "provider_down":
        assert at_provider(provider, payment_id)["voided"] is False
    else:
        wait_until(
            lambda: at_provider(provider, payment_id)["voided"],
            what="the slow void to land at the provider",
        )

    retry = paying.post(pgw_client, path, key=key)

    assert retry.status_code == 200, retry.text
    assert (retry.json()["status"], retry.json()["amount_captured"]) == ("voided", 0)
    assert paying.post(pgw_client, path, key=key).headers["idempotent-replayed"] == "true"
    release = at_provider(provider, payment_id)
    assert (release["voided"], release["captured"]) == (True, False)
    events = pgw_view(pgw_client, paying, payment_id)["events"]
    assert [e["to_status"] for e in events] == ["processing", "authorized", "voided"]


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failed_refund_writes_nothing_and_its_retry_refunds_once(
    failure: str, paying: PayingTerminal, pgw_client: httpx.Client, provider: httpx.Client
) -> None:
    payment_id = captured(paying, pgw_client, 2000)
    before = pgw_view(pgw_client, paying, payment_id)
    path, key = f"/v1/payments/{payment_id}/refunds", uuid.uuid4().hex

    fail_while_broken(
        provider, failure, lambda: paying.post(pgw_client, path, {"amount": 700}, key=key)
    )

    # pgw keeps no pending refund: a refund row exists only once the provider confirmed it.
    assert pgw_view(pgw_client, paying, payment_id) == before
    if failure == "provider_down":
        assert provider_refunds(provider, payment_id) == []
    else:
        wait_until(
            lambda: provider_refunds(provider, payment_id),
            what="the slow refund to land at the provider",
        )

    retry = paying.post(pgw_client, path, {"amount": 700}, key=key)

    assert retry.status_code == 201, retry.text
    refund, payment = retry.json()["refund"], retry.json()["payment"]
    assert (refund["amount"], refund["status"]) == (700, "succeeded")
    assert (payment["status"], payment["amount_refunded"]) == ("partially_refunded", 700)
    assert paying.post(pgw_client, path, {"amount": 700}, key=key).json() == retry.json()
    # One refund at each end, and they are the same one (pgw's refund id is the reference).
    [made] = provider_refunds(provider, payment_id)
    assert (made["reference"], made["amount"]) == (refund["id"], 700)
    assert at_provider(provider, payment_id)["amount_refunded"] == 700
    assert [r["id"] for r in pgw_view(pgw_client, paying, payment_id)["refunds"]] == [refund["id"]]
