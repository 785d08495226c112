"""Fixtures of the WebView tests: the session's platform, a shop issuing payment tokens, and a
second pgw with a fast stream and its own SDK folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.core.settings import Settings
from backend.runtime.embedded import derive_settings
from backend.runtime.server import PlatformThread
from tests.backend.pgw.payment_tokens.support import Shop
from tests.backend.pgw.webview.support import FakeSdkTree
from tests.helpers import free_ports
from tests.support.pgw import paying_terminal

# The fast pgw: what takes seconds in production takes a fraction of one here.
FAST_STREAM = {
    "pgw_stream_poll_interval_s": 0.05,
    "pgw_stream_heartbeat_s": 0.2,
    "pgw_stream_max_s": 1.0,
}


@pytest.fixture(scope="session")
def settings(platform: PlatformThread) -> Settings:
    return platform.settings


def _client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=20.0)


@pytest.fixture(scope="session")
def portal(settings: Settings) -> Iterator[httpx.Client]:
    with _client(settings.url_of("portal")) as client:
        yield client


@pytest.fixture(scope="session")
def pgw(settings: Settings) -> Iterator[httpx.Client]:
    with _client(settings.url_of("pgw")) as client:
        yield client


@pytest.fixture(scope="module")
def shop(settings: Settings, portal: httpx.Client, pgw: httpx.Client) -> Shop:
    return Shop(paying_terminal(settings, portal), portal, pgw)


@pytest.fixture(scope="module")
def other_shop(settings: Settings, portal: httpx.Client, pgw: httpx.Client) -> Shop:
    """Another tenant's terminal: nothing of ``shop`` may be visible to it."""
    return Shop(paying_terminal(settings, portal), portal, pgw)


@pytest.fixture(scope="package")
def fake_sdk_tree(tmp_path_factory: pytest.TempPathFactory) -> FakeSdkTree:
    return FakeSdkTree.create(Path(tmp_path_factory.mktemp("webview_sdk")))


@pytest.fixture(scope="package")
def fast_pgw(
    platform: PlatformThread, settings: Settings, fake_sdk_tree: FakeSdkTree
) -> Iterator[httpx.Client]:
    """A second pgw on the session's database and provider, with a stream that polls every
    50 ms, beats every 200 ms and lasts 1 s, serving ``fake_sdk_tree``."""
    (port,) = free_ports(1)
    fast = derive_settings(
        settings, pgw_port=port, webview_sdk_dir=str(fake_sdk_tree.root), **FAST_STREAM
    )
    thread = PlatformThread(fast, services=("pgw",)).start()
    try:
        with _client(fast.url_of("pgw")) as client:
            yield client
    finally:
        thread.stop()
