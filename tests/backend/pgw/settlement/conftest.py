"""Settlement fixtures: short names over the session's platform (portal, pgw and provider)."""

from __future__ import annotations

import httpx
import pytest

from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.support.pgw import PayingTerminal


@pytest.fixture(scope="session")
def settlement_settings(platform: PlatformThread, test_settings: Settings) -> Settings:
    """Settings of the running platform (the provider and the directory sync included)."""
    return test_settings


@pytest.fixture
def portal(portal_client: httpx.Client) -> httpx.Client:
    return portal_client


@pytest.fixture
def pgw(pgw_client: httpx.Client) -> httpx.Client:
    return pgw_client


@pytest.fixture
def shop(paying: PayingTerminal) -> PayingTerminal:
    """A fresh tenant whose store A has an enrolled terminal pgw knows, with its token."""
    return paying


@pytest.fixture
def other_shop(other_paying: PayingTerminal) -> PayingTerminal:
    """The same in an unrelated tenant: none of its batches may be visible to ``shop``."""
    return other_paying
