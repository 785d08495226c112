"""Fixtures of the app tests: the real platform (portal, smarttab, pgw, provider), a tenant per
module, and terminals registered at the portal with an activation code.

Each test runs its scenario with ``asyncio.run``; terminals run on that loop, headless.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from terminal_emulator.apps.common import AppConfig
from terminal_emulator.backend_client import BackendUrls
from terminal_emulator.hardware import CardReader
from terminal_emulator.terminal import EmulatedTerminal, TerminalConfig
from tests.support.portal import Tenant, build_tenant, register_terminal
from tests.support.terminals import SyncedTerminal


@pytest.fixture(scope="module")
def tenant(platform: PlatformThread, test_settings: Settings) -> Iterator[Tenant]:
    with httpx.Client(base_url=platform.portal_url, timeout=10) as portal:
        yield build_tenant(test_settings, portal)


@pytest.fixture
def urls(platform: PlatformThread) -> BackendUrls:
    return BackendUrls(
        portal=platform.portal_url, pgw=platform.pgw_url, smarttab=platform.smarttab_url
    )


@dataclass
class Registered:
    terminal_id: str
    serial: str
    activation_code: str
    store_id: str


@pytest.fixture
def register(platform: PlatformThread, tenant: Tenant) -> Callable[..., Registered]:
    """``register()``: a new terminal of store A at the portal, with its activation code."""

    def make(store_id: str | None = None) -> Registered:
        store = store_id or tenant.store_a_id
        with httpx.Client(base_url=platform.portal_url, timeout=10) as portal:
            terminal_id, serial, code = register_terminal(portal, tenant.admin, store)
        return Registered(terminal_id, serial, code, store)

    return make


@pytest.fixture
def make_terminal(
    tmp_path: Path,
    urls: BackendUrls,
    register: Callable[..., Registered],
    test_settings: Settings,
) -> Callable[..., tuple[EmulatedTerminal, Registered]]:
    """``make_terminal(card_reader=…, enroll=True, **app_config)``: a terminal (not started)
    registered at the portal; with ``enroll`` it enrolls with its activation code at start."""

    def make(
        *,
        card_reader: CardReader | None = None,
        enroll: bool = True,
        registered: Registered | None = None,
        state_dir: Path | None = None,
        token_refresh_margin_s: float | None = None,
        **app_config: Any,
    ) -> tuple[EmulatedTerminal, Registered]:
        reg = registered or register()
        config = TerminalConfig(
            serial=reg.serial,
            state_dir=state_dir or tmp_path / f"terminal-{uuid.uuid4().hex[:6]}",
            urls=urls,
            activation_code=reg.activation_code if enroll else None,
            card_reader=card_reader,
            token_refresh_margin_s=token_refresh_margin_s,
            apps=AppConfig(**{"processing_wait_s": 2.0, "stream": False, **app_config}),
        )
        terminal = SyncedTerminal(config)
        terminal.settings = test_settings
        return terminal, reg

    return make
