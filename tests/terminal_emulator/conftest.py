"""Fixtures of the terminal emulator tests: devices on a fixed clock, in a temporary state dir.

The tests are synchronous like the rest of the suite; each runs its scenario with
``asyncio.run`` (one fresh event loop per test).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from terminal_emulator.android import Device, DeviceConfig, ManualClock

# 2026-01-15 10:23:45.123 in Tokyo, the devices' default timezone.
START = dt.datetime(2026, 1, 15, 1, 23, 45, 123000, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_device(tmp_path: Path, clock: ManualClock) -> Callable[..., Device]:
    """``make_device(serial="EMU-1", **config)``: a device (not started) in its own dir."""

    def make(serial: str = "EMU-0001", **config: Any) -> Device:
        return Device(
            DeviceConfig(serial=serial, state_dir=tmp_path / serial, **config), clock=clock
        )

    return make
