"""Fixtures of the real-time channel tests: devices, a fast-ticking smarttab, two processes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from backend.core.settings import Settings
from backend.runtime.embedded import derive_settings
from backend.runtime.server import PlatformThread
from tests.helpers import free_ports
from tests.support.portal import EnrolledTerminal, Tenant, enroll_terminal
from tests.support.realtime import ServiceProcess

# The fast server: everything that is seconds in production is a fraction of one here.
FAST = {
    "ws_heartbeat_interval_s": 0.3,
    "ws_idle_timeout_s": 1.5,
    "ws_auth_timeout_s": 0.5,
    "ws_resume_wait_s": 0.5,
    "ws_replay_limit": 5,
    # The session closes at the token's exp plus this leeway; short-lived test tokens need a
    # small one to expire within the test.
    "clock_skew_leeway_s": 1,
}


@dataclass
class StoreDevices:
    """``tenant`` with two enrolled terminals in store A and one in store B."""

    tenant: Tenant
    a1: EnrolledTerminal
    a2: EnrolledTerminal
    b1: EnrolledTerminal


@pytest.fixture
def devices(tenant: Tenant, portal_client: httpx.Client) -> StoreDevices:
    return StoreDevices(
        tenant,
        enroll_terminal(portal_client, tenant.admin, tenant.store_a_id),
        enroll_terminal(portal_client, tenant.admin, tenant.store_a_id),
        enroll_terminal(portal_client, tenant.admin, tenant.store_b_id),
    )


@pytest.fixture(scope="module")
def fast_smarttab(platform: PlatformThread, test_settings: Settings) -> Iterator[str]:
    """A second smarttab (in this process) with tiny heartbeat, idle, auth and replay settings,
    on the session's database, Redis and portal; yields its base URL."""
    (port,) = free_ports(1)
    settings = derive_settings(test_settings, smarttab_port=port, **FAST)
    thread = PlatformThread(settings, services=("smarttab",)).start()
    try:
        yield settings.url_of("smarttab")
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def smarttab_processes(
    platform: PlatformThread, test_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Two ``mpac serve --service smarttab`` OS processes on the session's infrastructure."""
    log_dir = tmp_path_factory.mktemp("smarttab-processes")
    processes = [ServiceProcess(test_settings, "smarttab", port, log_dir) for port in free_ports(2)]
    try:
        for process in processes:
            process.wait_ready()
        yield processes[0], processes[1]
    finally:
        codes = [process.stop() for process in processes]
    # Ctrl-C is a clean stop.
    assert codes == [0, 0], [process.output() for process in processes]
