"""The timeout card, simulated latency and outages, and the runtime control of both."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from backend.core.settings import Settings
from tests.backend.provider.conftest import TIMEOUT_DELAY_S
from tests.backend.provider.support import (
    ProviderServer,
    authorization_body,
    provider_server,
    qr_body,
)

TIMEOUT_CARD = "4000000000001034"


@pytest.fixture
def control(fast_client: httpx.Client) -> Iterator[httpx.Client]:
    """The fast provider's control API; its knobs go back to the settings afterwards."""
    try:
        yield fast_client
    finally:
        fast_client.delete("/v1/_control/config").raise_for_status()


def test_the_timeout_card_is_approved_although_the_caller_times_out(
    fast_provider: ProviderServer,
) -> None:
    body = authorization_body(TIMEOUT_CARD, amount=5_000, capture=True)
    with fast_provider.client(timeout_s=0.5) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/v1/authorizations", json=body)
    with fast_provider.client() as client:
        started = time.monotonic()
        found = client.get(f"/v1/authorizations/by-reference/{body['reference']}")
        assert found.status_code == 200, found.text
        assert found.json()["status"] == "approved"
        assert found.json()["amount_captured"] == 5_000
        # A retry of the same reference answers the stored approval without stalling again.
        retried = client.post("/v1/authorizations", json=body)
        assert retried.json() == found.json()
        assert time.monotonic() - started < TIMEOUT_DELAY_S


def test_the_timeout_card_answers_after_the_delay(fast_client: httpx.Client) -> None:
    started = time.monotonic()
    response = fast_client.post("/v1/authorizations", json=authorization_body(TIMEOUT_CARD))
    assert time.monotonic() - started >= TIMEOUT_DELAY_S - 0.1
    assert response.json()["status"] == "approved"


def test_config_reports_the_settings(control: httpx.Client) -> None:
    assert control.get("/v1/_control/config").json() == {
        "latency_ms": 0,
        "failure_rate": 0.0,
        "timeout_delay_s": TIMEOUT_DELAY_S,
    }


def test_a_failure_rate_of_one_refuses_everything_before_storing(control: httpx.Client) -> None:
    changed = control.post("/v1/_control/config", json={"failure_rate": 1.0})
    assert changed.json()["failure_rate"] == 1.0
    body = authorization_body()
    qr = qr_body()
    for path, payload in (("/v1/authorizations", body), ("/v1/qr-payments", qr)):
        response = control.post(path, json=payload)
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["retry-after"] == "1"
        assert response.json()["code"] == "provider_unavailable"
    control.post("/v1/_control/config", json={"failure_rate": 0})
    missing = control.get(f"/v1/authorizations/by-reference/{body['reference']}")
    assert missing.status_code == 404
    assert control.get(f"/v1/qr-payments/by-reference/{qr['reference']}").status_code == 404
    # The caller's retry then goes through.
    assert control.post("/v1/authorizations", json=body).json()["status"] == "approved"


def test_a_partial_failure_rate_fails_some_requests(control: httpx.Client) -> None:
    control.post("/v1/_control/config", json={"failure_rate": 0.5})
    statuses = {
        control.post("/v1/authorizations", json=authorization_body()).status_code for _ in range(40)
    }
    assert statuses == {200, 503}


def test_latency_slows_every_answer(control: httpx.Client) -> None:
    control.post("/v1/_control/config", json={"latency_ms": 400})
    started = time.monotonic()
    assert control.post("/v1/authorizations", json=authorization_body()).status_code == 200
    assert time.monotonic() - started >= 0.4
    control.delete("/v1/_control/config")
    started = time.monotonic()
    assert control.post("/v1/authorizations", json=authorization_body()).status_code == 200
    assert time.monotonic() - started < 0.4


def test_the_timeout_delay_can_be_changed_at_runtime(control: httpx.Client) -> None:
    control.post("/v1/_control/config", json={"timeout_delay_s": 0})
    started = time.monotonic()
    control.post("/v1/authorizations", json=authorization_body(TIMEOUT_CARD))
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    "body",
    [
        {"failure_rate": 1.5},
        {"failure_rate": -0.1},
        {"latency_ms": -1},
        {"latency_ms": 1.5},
        {"x": 1},
    ],
)
def test_bad_config_is_refused(control: httpx.Client, body: dict[str, object]) -> None:
    response = control.post("/v1/_control/config", json=body)
    assert response.status_code == 422
    assert control.get("/v1/_control/config").json()["failure_rate"] == 0.0


def test_latency_and_failure_rate_come_from_the_settings(test_settings: Settings) -> None:
    with (
        provider_server(
            test_settings, provider_failure_rate=1.0, provider_latency_ms=200
        ) as server,
        server.client() as client,
    ):
        started = time.monotonic()
        response = client.post("/v1/authorizations", json=authorization_body())
        assert time.monotonic() - started >= 0.2
        assert response.status_code == 503
        assert client.get("/v1/_control/config").json()["failure_rate"] == 1.0


def test_settings_derive_the_provider_urls() -> None:
    settings = Settings(
        host="127.0.0.1", pgw_port=8030, provider_port=8040, provider_webhook_url=""
    )
    assert settings.provider_url == "http://127.0.0.1:8040"
    assert settings.port_of("provider") == 8040
    assert settings.resolved_provider_webhook_url == "http://127.0.0.1:8030/v1/provider/webhooks"
    explicit = Settings(provider_webhook_url="http://example.test/hook")
    assert explicit.resolved_provider_webhook_url == "http://example.test/hook"
