"""A platform with the simulated provider, and terminals that issue payment tokens."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend.core.migrations import upgrade
from backend.core.settings import SERVICE_NAMES, Settings
from backend.runtime.embedded import derive_settings
from backend.runtime.server import PlatformThread
from tests.backend.pgw.payment_tokens.support import Shop
from tests.helpers import free_ports
from tests.support.pgw import paying_terminal


@pytest.fixture(scope="session")
def token_platform(
    request: pytest.FixtureRequest, test_settings: Settings
) -> Iterator[PlatformThread]:
    """The session's platform once it runs the provider; until then one of our own with it."""
    if "provider" in SERVICE_NAMES:
        yield request.getfixturevalue("platform")
        return
    names = [*SERVICE_NAMES, "provider"]
    ports = {f"{name}_port": port for name, port in zip(names, free_ports(len(names)), strict=True)}
    settings = derive_settings(test_settings, **ports)
    upgrade("provider", settings.database_url)
    thread = PlatformThread(settings, services=names).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="session")
def settings(token_platform: PlatformThread) -> Settings:
    return token_platform.settings


def _client(settings: Settings, service: str) -> httpx.Client:
    return httpx.Client(base_url=settings.url_of(service), timeout=20.0)


@pytest.fixture(scope="session")
def portal(settings: Settings) -> Iterator[httpx.Client]:
    with _client(settings, "portal") as client:
        yield client


@pytest.fixture(scope="session")
def pgw(settings: Settings) -> Iterator[httpx.Client]:
    with _client(settings, "pgw") as client:
        yield client


@pytest.fixture(scope="session")
def smarttab(settings: Settings) -> Iterator[httpx.Client]:
    with _client(settings, "smarttab") as client:
        yield client


@pytest.fixture(scope="module")
def shop(settings: Settings, portal: httpx.Client, pgw: httpx.Client) -> Shop:
    return Shop(paying_terminal(settings, portal), portal, pgw)


@pytest.fixture(scope="module")
def other_shop(settings: Settings, portal: httpx.Client, pgw: httpx.Client) -> Shop:
    """Another tenant's terminal."""
    return Shop(paying_terminal(settings, portal), portal, pgw)
