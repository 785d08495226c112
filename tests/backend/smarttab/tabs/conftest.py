from __future__ import annotations

import httpx
import pytest

from backend.core.settings import Settings
from tests.support.pgw import PayingTerminal, paying_terminal
from tests.support.smarttab import Tabs


@pytest.fixture
def terminal(test_settings: Settings, portal_client: httpx.Client) -> PayingTerminal:
    """An enrolled terminal in a fresh tenant's store A, known to pgw, with a device token."""
    return paying_terminal(test_settings, portal_client)


@pytest.fixture
def tabs(terminal: PayingTerminal, smarttab_client: httpx.Client) -> Tabs:
    """The terminal's view of smarttab's tab API."""
    return Tabs(smarttab_client, terminal.headers)
