from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend.core.settings import SERVICE_NAMES, Settings
from tests.backend.provider.support import (
    ProviderServer,
    WebhookReceiver,
    api_headers,
    provider_server,
    webhook_receiver,
)

FAST_RETRY_SCHEDULE = "0.2,0.5,1"
TIMEOUT_DELAY_S = 2.0


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture(scope="session")
def fast_provider(test_settings: Settings, receiver: WebhookReceiver) -> Iterator[ProviderServer]:
    """A provider whose webhooks reach ``receiver``, retried quickly, with a short stall."""
    with provider_server(
        test_settings,
        provider_webhook_url=receiver.url,
        provider_webhook_retry_schedule_s=FAST_RETRY_SCHEDULE,
        provider_timeout_delay_s=TIMEOUT_DELAY_S,
    ) as server:
        yield server


@pytest.fixture(scope="session")
def provider_url(request: pytest.FixtureRequest) -> str:
    """The platform's provider once it runs there; before that, a provider of our own."""
    if "provider" in SERVICE_NAMES:
        platform = request.getfixturevalue("platform")
        return str(platform.url_of("provider"))
    server: ProviderServer = request.getfixturevalue("fast_provider")
    return server.url


@pytest.fixture
def provider_client(provider_url: str, test_settings: Settings) -> Iterator[httpx.Client]:
    """An authenticated client of the provider pgw talks to."""
    with httpx.Client(
        base_url=provider_url, headers=api_headers(test_settings), timeout=10.0
    ) as client:
        yield client


@pytest.fixture
def fast_client(fast_provider: ProviderServer) -> Iterator[httpx.Client]:
    with fast_provider.client() as client:
        yield client
