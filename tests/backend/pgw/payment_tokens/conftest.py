"""Terminals that issue payment tokens, on the session's platform."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.backend.pgw.payment_tokens.support import Shop
from tests.support.pgw import paying_terminal


@pytest.fixture(scope="session")
def settings(platform: PlatformThread) -> Settings:
    """The session platform's settings (portal, smarttab, pgw and the provider all run)."""
    return platform.settings


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
