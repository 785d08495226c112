from __future__ import annotations

import httpx
import pytest

from backend.core.settings import Settings
from tests.support.pgw import PayingTerminal, paying_terminal


@pytest.fixture
def other_paying(test_settings: Settings, portal_client: httpx.Client) -> PayingTerminal:
    """The same, in another tenant: nothing of it may be visible to ``paying``."""
    return paying_terminal(test_settings, portal_client)
