"""Fixtures of the load-test tests: a fleet provisioned on the session platform.

Nothing here imports locust: it monkey-patches the standard library with gevent on import,
which the in-process platform cannot live with. locust itself only runs in subprocesses.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from loadtest.fleet import Fleet
from loadtest.provision import ProvisionPlan, provision, write_fleet
from tests.support.portal import PASSWORD, create_psp_with_admin


@pytest.fixture(scope="module")
def psp_admin(test_settings: Settings, platform: PlatformThread) -> str:
    """A PSP admin's e-mail (password ``tests.support.portal.PASSWORD``) on the platform."""
    return create_psp_with_admin(test_settings)[1]


def plan_for(platform: PlatformThread, admin_email: str, **sizes: int) -> ProvisionPlan:
    return ProvisionPlan(
        merchants=sizes.get("merchants", 1),
        stores_per_merchant=sizes.get("stores_per_merchant", 2),
        terminals_per_store=sizes.get("terminals_per_store", 2),
        portal_url=platform.portal_url,
        smarttab_url=platform.smarttab_url,
        pgw_url=platform.pgw_url,
        admin_email=admin_email,
        admin_password=PASSWORD,
        wait_timeout_s=30,
    )


@pytest.fixture(scope="module")
def fleet_file(
    platform: PlatformThread, psp_admin: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A small fleet (1 merchant, 2 stores, 2 terminals each) written to a fleet file."""
    path = tmp_path_factory.mktemp("fleet") / "fleet.json"
    fleet: Fleet = asyncio.run(provision(plan_for(platform, psp_admin)))
    write_fleet(fleet, path)
    return path
