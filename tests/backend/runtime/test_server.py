from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from backend.core.settings import SERVICE_NAMES, Settings
from backend.runtime.embedded import derive_settings
from backend.runtime.server import PlatformStartupError, PlatformThread
from tests.helpers import free_ports


def _settings_on_fresh_ports(settings: Settings) -> Settings:
    ports = free_ports(len(SERVICE_NAMES))
    return derive_settings(
        settings, **{f"{name}_port": port for name, port in zip(SERVICE_NAMES, ports, strict=True)}
    )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize("service", SERVICE_NAMES)
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_every_service_is_live_and_ready(platform: PlatformThread, service: str, path: str) -> None:
    response = httpx.get(platform.url_of(service) + path, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["service"] == service


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_unknown_route_is_a_problem_document(platform: PlatformThread, service: str) -> None:
    response = httpx.get(platform.url_of(service) + "/no/such/route", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 404
    assert isinstance(body["code"], str)
    assert body["code"]


def test_the_client_fixtures_point_at_their_services(
    portal_client: httpx.Client,
    smarttab_client: httpx.Client,
    pgw_client: httpx.Client,
    provider_client: httpx.Client,
) -> None:
    for client, service in zip(
        (portal_client, smarttab_client, pgw_client, provider_client), SERVICE_NAMES, strict=True
    ):
        assert client.get("/healthz").json()["service"] == service


def test_a_port_in_use_fails_startup_quickly_and_names_it(test_settings: Settings) -> None:
    settings = _settings_on_fresh_ports(test_settings)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", settings.smarttab_port))
        squatter.listen()
        started = time.monotonic()
        with pytest.raises(PlatformStartupError) as failure:
            PlatformThread(settings, startup_timeout_s=30).start()
        assert time.monotonic() - started < 10
    message = str(failure.value)
    assert "smarttab" in message
    assert str(settings.smarttab_port) in message
    assert "already in use" in message
    # The ports bound before the failing one are released again.
    for service in SERVICE_NAMES:
        if service != "smarttab":
            assert _port_is_free(settings.port_of(service)), f"{service} still bound"


def _app_whose_startup_fails() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("cannot reach the card network")
        yield

    return FastAPI(lifespan=lifespan)


def test_a_failing_lifespan_stops_the_others_and_reports_why(test_settings: Settings) -> None:
    settings = _settings_on_fresh_ports(test_settings)
    thread = PlatformThread(settings, apps={"pgw": _app_whose_startup_fails()})
    with pytest.raises(PlatformStartupError) as failure:
        thread.start()
    message = str(failure.value)
    assert message.startswith("pgw:")
    assert "cannot reach the card network" in message
    for service in SERVICE_NAMES:
        assert _port_is_free(settings.port_of(service)), f"{service} still listens"


def test_a_second_platform_starts_and_stops_cleanly(test_settings: Settings) -> None:
    settings = _settings_on_fresh_ports(test_settings)
    with PlatformThread(settings) as thread:
        assert httpx.get(thread.pgw_url + "/readyz", timeout=10).status_code == 200
    for service in SERVICE_NAMES:
        assert _port_is_free(settings.port_of(service))
