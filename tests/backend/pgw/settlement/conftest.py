"""Fixtures for settlement: the platform with the provider, and shops (tenant + terminal).

Settlement needs the provider (payments) and the portal -> pgw directory sync (an s2s key for
``portal``). Once the session's platform runs both, these fixtures use it; until then they start
their own portal, pgw and provider on the session's database and Redis.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend.core.hmac_signing import generate_s2s_key_entry, parse_s2s_keys
from backend.core.migrations import upgrade
from backend.core.settings import SERVICE_NAMES, Settings
from backend.runtime.embedded import derive_settings
from backend.runtime.server import PlatformThread
from tests.helpers import free_ports
from tests.support.pgw import PayingTerminal, paying_terminal

_NEEDED = ("portal", "pgw", "provider")


def _platform_is_enough(settings: Settings) -> bool:
    if not set(_NEEDED) <= set(SERVICE_NAMES):
        return False
    keys = parse_s2s_keys(settings.s2s_keys)
    try:
        keys.signing_key("portal")
        keys.signing_key("smarttab")
    except LookupError:
        return False
    return True


@pytest.fixture(scope="session")
def settlement_settings(
    request: pytest.FixtureRequest, test_settings: Settings
) -> Iterator[Settings]:
    """Settings of a running portal + pgw + provider on the session's database."""
    if _platform_is_enough(test_settings):
        request.getfixturevalue("platform")
        yield test_settings
        return
    ports = dict(zip((f"{name}_port" for name in _NEEDED), free_ports(len(_NEEDED)), strict=True))
    settings = derive_settings(
        test_settings,
        **ports,
        portal_url="",
        issuer="",
        s2s_keys=",".join(generate_s2s_key_entry(caller) for caller in ("portal", "smarttab")),
        outbox_relay_interval_s=0.1,
    )
    upgrade("provider", settings.database_url)
    with PlatformThread(settings, services=_NEEDED):
        yield settings


@pytest.fixture
def portal(settlement_settings: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=settlement_settings.url_of("portal"), timeout=20) as client:
        yield client


@pytest.fixture
def pgw(settlement_settings: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=settlement_settings.url_of("pgw"), timeout=20) as client:
        yield client


@pytest.fixture
def shop(settlement_settings: Settings, portal: httpx.Client) -> PayingTerminal:
    """A fresh tenant whose store A has an enrolled terminal pgw knows, with its token."""
    return paying_terminal(settlement_settings, portal)


@pytest.fixture
def other_shop(settlement_settings: Settings, portal: httpx.Client) -> PayingTerminal:
    """The same in an unrelated tenant: none of its batches may be visible to ``shop``."""
    return paying_terminal(settlement_settings, portal)
