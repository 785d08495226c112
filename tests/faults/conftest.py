"""Fixtures of the fault tests: a platform of OS processes that a test may kill and restart.

``fault_platform`` is one platform for the whole package (embedded PostgreSQL and Redis, every
service an ``mpac serve`` process: ``tests/support/fault_platform.py``): starting one costs
seconds, and the tests tell their payments apart by a merchant of their own. Before each test
every service is running and ready again and the provider's runtime knobs are back to the
settings, whatever the previous test killed. The provider's webhooks reach pgw through a proxy
a test can cut (``webhooks``).

``test_infrastructure_restart.py`` keeps a platform of its own: it stops PostgreSQL and Redis.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadtest.bench_platform import free_ports
from tests.support.fault_platform import FaultPlatform, FaultTerminal, run_fault_platform
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture(scope="package")
def webhook_link() -> Iterator[TcpProxy]:
    (pgw_port,) = free_ports(1)
    with TcpProxy(pgw_port) as proxy:
        yield proxy


@pytest.fixture(scope="package")
def package_fault_platform(webhook_link: TcpProxy) -> Iterator[FaultPlatform]:
    with run_fault_platform(
        pgw_port=webhook_link.target[1],
        provider_webhook_url=f"http://{webhook_link.address}/v1/provider/webhooks",
        # test_provider_faults.py's retry-vs-reconciler test restarts the provider before the
        # reconciler may look at the payment: 4 s leaves room for a slow restart on a busy
        # machine.
        reconciler_min_age_s=4.0,
    ) as platform:
        yield platform


@pytest.fixture
def fault_platform(package_fault_platform: FaultPlatform) -> FaultPlatform:
    """The package's platform, every service up and the provider's knobs reset."""
    package_fault_platform.heal()
    return package_fault_platform


@pytest.fixture
def webhooks(webhook_link: TcpProxy) -> Iterator[TcpProxy]:
    """The provider-to-pgw webhook path, open again after the test whatever it did."""
    yield webhook_link
    webhook_link.restore()


@pytest.fixture
def fault_terminal(fault_platform: FaultPlatform) -> FaultTerminal:
    """A fresh merchant's enrolled terminal, known to pgw, with a device token."""
    return fault_platform.paying_terminal()
