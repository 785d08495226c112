from __future__ import annotations

import httpx
import pytest

from backend.core.settings import Settings
from tests.support.pgw import PayingTerminal, paying_terminal
from tests.support.portal import Tenant, build_tenant


@pytest.fixture
def tenant(test_settings: Settings, portal_client: httpx.Client) -> Tenant:
    """A fresh PSP -> merchant -> two stores, with a logged-in user of every role."""
    return build_tenant(test_settings, portal_client)


@pytest.fixture
def other_tenant(test_settings: Settings, portal_client: httpx.Client) -> Tenant:
    """A second, unrelated PSP: everything of it must be invisible to ``tenant``."""
    return build_tenant(test_settings, portal_client)


@pytest.fixture
def paying(test_settings: Settings, portal_client: httpx.Client) -> PayingTerminal:
    """An enrolled terminal in a fresh tenant's store A, known to pgw, with a device token."""
    return paying_terminal(test_settings, portal_client)
