"""Prometheus metrics at every service's /metrics: what operators graph and alert on."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend.core.settings import SERVICE_NAMES, Settings
from backend.pgw.app import create_app as create_pgw_app
from tests.support.pgw import GENERIC_DECLINE, PayingTerminal, card_payment, wait_until
from tests.support.realtime import open_stream, post_notice


def scrape(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_service_exposes_its_own_metrics(
    service: str, test_settings: Settings, platform: object
) -> None:
    with httpx.Client(base_url=test_settings.url_of(service), timeout=10) as client:
        client.get("/healthz")
        samples = scrape(client)
        openapi = client.get("/openapi.json").json()

    services = {dict(labels).get("service") for _, labels in samples if dict(labels).get("service")}
    assert services == {service}  # one registry per service, even with all four in one process
    names = {name for name, _ in samples}
    assert {
        "mpac_http_requests_total",
        "mpac_http_request_duration_seconds_bucket",
        "mpac_http_requests_in_flight",
        "mpac_db_pool_size",
        "mpac_db_pool_connections",
    } <= names
    assert value(samples, "mpac_db_pool_size", service=service) == test_settings.db_pool_size
    assert "/metrics" not in openapi["paths"]


def test_a_payment_is_counted_by_route_status_and_outcome(
    paying: PayingTerminal, pgw_client: httpx.Client
) -> None:
    before = scrape(pgw_client)

    approved = paying.pay(pgw_client, card_payment())
    declined = paying.pay(pgw_client, card_payment(GENERIC_DECLINE))
    invalid = pgw_client.get("/v1/payments/not-an-id", headers=paying.headers)

    assert approved.json()["status"] == "captured"
    assert declined.json()["status"] == "declined"
    assert invalid.status_code == 422
    after = scrape(pgw_client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    created = {"service": "pgw", "method": "POST", "route": "/v1/payments"}
    assert delta("mpac_http_requests_total", **created, status="201") == 2
    assert delta("mpac_http_request_duration_seconds_count", **created) == 2
    assert (
        delta("mpac_payments_total", service="pgw", status="processing", method="card_present") == 2
    )
    assert (
        delta("mpac_payments_total", service="pgw", status="captured", method="card_present") == 1
    )
    assert (
        delta("mpac_payments_total", service="pgw", status="declined", method="card_present") == 1
    )
    # Path ids never become label values: the route template does.
    assert (
        delta(
            "mpac_http_requests_total",
            service="pgw",
            method="GET",
            route="/v1/payments/{payment_id}",
            status="422",
        )
        == 1
    )
    assert delta("mpac_problems_total", service="pgw", status="422", code="validation_failed") == 1


def test_unknown_paths_share_one_series(pgw_client: httpx.Client) -> None:
    probes = [f"/wp-admin/{uuid.uuid4().hex}" for _ in range(3)]
    for path in probes:
        assert pgw_client.get(path).status_code == 404

    samples = scrape(pgw_client)
    routes = {
        dict(labels).get("route") for name, labels in samples if name == "mpac_http_requests_total"
    }
    assert "<unmatched>" in routes
    assert not any(route and route.startswith("/wp-admin") for route in routes)


def test_webhook_deliveries_are_counted_on_both_sides(
    paying: PayingTerminal, test_settings: Settings, pgw_client: httpx.Client
) -> None:
    with httpx.Client(base_url=test_settings.provider_url, timeout=10) as provider:
        before_sent = value(
            scrape(provider),
            "mpac_webhook_deliveries_total",
            service="provider",
            direction="sent",
            outcome="delivered",
        )
        before_received = sum(
            sample
            for (name, labels), sample in scrape(pgw_client).items()
            if name == "mpac_webhook_deliveries_total" and ("direction", "received") in labels
        )

        assert paying.pay(pgw_client, card_payment()).json()["status"] == "captured"

        # The provider reports the capture by webhook, after the answer: delivered and handled.
        wait_until(
            lambda: (
                value(
                    scrape(provider),
                    "mpac_webhook_deliveries_total",
                    service="provider",
                    direction="sent",
                    outcome="delivered",
                )
                > before_sent
            ),
            what="the provider to count a delivered webhook",
        )
    received = sum(
        sample
        for (name, labels), sample in scrape(pgw_client).items()
        if name == "mpac_webhook_deliveries_total" and ("direction", "received") in labels
    )
    assert received > before_received


def test_open_device_websockets_are_a_gauge(
    paying: PayingTerminal,
    test_settings: Settings,
    smarttab_client: httpx.Client,
    portal_client: httpx.Client,
) -> None:
    before = scrape(smarttab_client)
    base = test_settings.url_of("smarttab")
    token = paying.terminal.fresh_token(portal_client)

    with open_stream(base, token) as stream:
        post_notice(base, token, "metrics")
        stream.next("event")
        during = scrape(smarttab_client)
    after = wait_until(
        lambda: (
            (s := scrape(smarttab_client))
            and value(s, "mpac_websocket_connections", service="smarttab")
            == value(before, "mpac_websocket_connections", service="smarttab")
            and s
        ),
        what="the socket to be counted as closed",
    )

    open_now = value(during, "mpac_websocket_connections", service="smarttab")
    assert open_now == value(before, "mpac_websocket_connections", service="smarttab") + 1
    assert value(
        during, "mpac_websocket_events_sent_total", service="smarttab", mode="live"
    ) > value(before, "mpac_websocket_events_sent_total", service="smarttab", mode="live")
    assert (
        value(after, "mpac_websocket_connections_opened_total", service="smarttab")
        == value(before, "mpac_websocket_connections_opened_total", service="smarttab") + 1
    )


def test_a_metrics_token_keeps_strangers_from_scraping(test_settings: Settings) -> None:
    app = create_pgw_app(test_settings.model_copy(update={"metrics_token": "scrape-me"}))
    transport = httpx.ASGITransport(app=app)

    async def scrape_with(headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://pgw") as client:
            return await client.get("/metrics", headers=headers)

    refused = asyncio.run(scrape_with({}))
    wrong = asyncio.run(scrape_with({"Authorization": "Bearer guess"}))
    allowed = asyncio.run(scrape_with({"Authorization": "Bearer scrape-me"}))

    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert wrong.status_code == 401
    assert allowed.status_code == 200
    assert "mpac_http_requests_total" in allowed.text


def test_another_app_of_the_service_stopping_keeps_the_running_ones_gauges(
    test_settings: Settings, pgw_client: httpx.Client
) -> None:
    # What a test, or a restart within the process, does: a second pgw app starts and stops.
    async def start_and_stop_another_pgw() -> None:
        app = create_pgw_app(test_settings)
        async with app.router.lifespan_context(app):
            pass

    asyncio.run(start_and_stop_another_pgw())

    samples = scrape(pgw_client)
    assert value(samples, "mpac_db_pool_size", service="pgw") == test_settings.db_pool_size
