"""Fixtures of the bridge tests: enrolled emulated terminals whose ADB endpoint listens on a
real TCP port, driven from the test's thread through ``android_bridge`` (adb-shell).

The terminals run on a background event loop (``device_loop``), as ``mpac terminal`` runs
them; the tests stay synchronous.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from terminal_emulator.adb import AdbDeviceServer, AdbKeyStore, ShellExecutor
from terminal_emulator.terminal import EmulatedTerminal
from tests.terminal_emulator.adb.conftest import (  # noqa: F401  (fixtures)
    HostKey,
    LoopThread,
    allowed_keystore,
    device_loop,
    host_key,
    start_device,
    stranger_key,
    tracker,
)
from tests.terminal_emulator.adb.fakes import Tracker, fake_shell
from tests.terminal_emulator.apps.conftest import (  # noqa: F401  (fixtures)
    Registered,
    make_terminal,
    register,
    tenant,
    urls,
)

StartTerminal = Callable[..., EmulatedTerminal]


@pytest.fixture
def start_adb_terminal(
    device_loop: LoopThread,  # noqa: F811
    host_key: HostKey,  # noqa: F811
    make_terminal: Callable[..., tuple[EmulatedTerminal, Registered]],  # noqa: F811
) -> Iterator[StartTerminal]:
    """``start_adb_terminal(**make_terminal options)``: an enrolled terminal of store A, started
    on ``device_loop`` with its ADB endpoint on a free port; ``host_key`` is in its
    ``adb_keys``. Stopped after the test."""
    started: list[EmulatedTerminal] = []

    def start(**options: Any) -> EmulatedTerminal:
        terminal, _registered = make_terminal(**options)
        terminal.config = dataclasses.replace(terminal.config, adb_port=0)
        terminal.config.state_dir.mkdir(parents=True, exist_ok=True)
        (terminal.config.state_dir / "adb_keys").write_text(host_key.public.to_line() + "\n")
        device_loop.call(terminal.start(), timeout=60)
        started.append(terminal)
        return terminal

    yield start
    for terminal in started:
        device_loop.call(terminal.stop(), timeout=60)


@pytest.fixture
def adb_terminal(start_adb_terminal: StartTerminal) -> EmulatedTerminal:
    """One enrolled terminal on ADB with the emulator's simulated card reader."""
    return start_adb_terminal()


def serial_of(terminal: EmulatedTerminal) -> str:
    """The ADB serial a host uses for the terminal's endpoint (``adb connect`` style)."""
    assert terminal.adb_port is not None
    return f"127.0.0.1:{terminal.adb_port}"


@pytest.fixture
def emulated_terminal_factory(start_adb_terminal: StartTerminal) -> StartTerminal:
    """What ``android_bridge.pytest_plugin``'s ``terminal_driver`` builds an emulator or
    emulator-adb driver on: ``factory()`` -> an enrolled terminal with its ADB endpoint on and
    the simulated card reader, stopped after the test."""
    return start_adb_terminal


@pytest.fixture
def start_device_at(
    device_loop: LoopThread,  # noqa: F811
    tracker: Tracker,  # noqa: F811
) -> Iterator[Callable[..., AdbDeviceServer]]:
    """``start_device_at(port, keystore=..., executor=None)``: like ``start_device`` but on
    a chosen port (0: a free one), so a test can stop a device and bring it back where it was
    (the device "rebooting"). Every device started is stopped after the test."""
    started: list[AdbDeviceServer] = []

    def start(
        port: int = 0, *, keystore: AdbKeyStore | None, executor: ShellExecutor | None = None
    ) -> AdbDeviceServer:
        async def create() -> AdbDeviceServer:
            server = AdbDeviceServer(
                port=port, executor=executor or fake_shell(tracker), keystore=keystore
            )
            await server.start()
            return server

        server = device_loop.call(create())
        started.append(server)
        return server

    yield start
    for server in started:
        device_loop.call(server.stop())
