from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from backend.core.settings import Settings
from backend.runtime.embedded import derive_settings
from backend.runtime.server import PlatformThread
from tests.backend.portal.auth.support import client_from, random_loopback_address
from tests.helpers import free_ports
from tests.support.portal import create_psp_with_admin


@dataclass
class Account:
    """A PSP with only its admin: the cheapest real account to log in with."""

    psp_id: str
    email: str


@pytest.fixture
def account(test_settings: Settings) -> Account:
    psp_id, email = create_psp_with_admin(test_settings)
    return Account(psp_id, email)


@pytest.fixture
def own_address() -> str:
    return random_loopback_address()


@pytest.fixture
def isolated_client(platform: PlatformThread, own_address: str) -> Iterator[httpx.Client]:
    """A portal client on its own loopback address (see ``client_from``)."""
    with client_from(platform.portal_url, own_address) as client:
        yield client


# The session's portal allows (almost) unlimited failures per address, since every test shares
# 127.0.0.1; the per-address limit is tested on a second portal that enforces a small one.
STRICT_MAX_FAILURES_PER_IP = 4


@pytest.fixture(scope="module")
def strict_portal(test_settings: Settings, platform: PlatformThread) -> Iterator[PlatformThread]:
    """A second portal process on the session's database with a low per-address limit."""
    (port,) = free_ports(1)
    settings = derive_settings(
        test_settings, portal_port=port, login_max_failures_per_ip=STRICT_MAX_FAILURES_PER_IP
    )
    thread = PlatformThread(settings, services=("portal",)).start()
    try:
        yield thread
    finally:
        thread.stop()
