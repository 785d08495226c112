"""Fixtures of the fault tests: a platform of OS processes that a test may kill and restart.

``fault_platform`` is one platform per test module (embedded PostgreSQL and Redis, every
service an ``mpac serve`` process: ``tests/support/fault_platform.py``). A module changes its
settings by defining its own module-scoped ``fault_overrides`` fixture. Before each test every
service is running and ready again and the provider's runtime knobs are back to the settings,
whatever the previous test of the module killed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.fault_platform import FaultPlatform, FaultTerminal, run_fault_platform


@pytest.fixture(scope="module")
def fault_overrides() -> dict[str, Any]:
    """Settings on top of ``FAULT_SETTINGS`` for this module's platform (none by default)."""
    return {}


@pytest.fixture(scope="module")
def module_fault_platform(fault_overrides: dict[str, Any]) -> Iterator[FaultPlatform]:
    with run_fault_platform(**fault_overrides) as platform:
        yield platform


@pytest.fixture
def fault_platform(module_fault_platform: FaultPlatform) -> FaultPlatform:
    """The module's platform, every service up and the provider's knobs reset."""
    module_fault_platform.heal()
    return module_fault_platform


@pytest.fixture
def fault_terminal(fault_platform: FaultPlatform) -> FaultTerminal:
    """A fresh merchant's enrolled terminal, known to pgw, with a device token."""
    return fault_platform.paying_terminal()
