"""Fixtures: emulated devices served from a background event loop, and host keys.

Tests stay synchronous (docs/development.md): the devices run in their own loop thread, like
the emulator runs them, and the tests drive them over real TCP with real clients.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from adb_shell.auth.keygen import keygen
from adb_shell.auth.sign_pythonrsa import PythonRSASigner

from terminal_emulator.adb import AdbDeviceServer, AdbKeyStore, AdbPublicKey, ShellExecutor
from tests.terminal_emulator.adb.fakes import Tracker, fake_shell

T = TypeVar("T")
LOOP_TIMEOUT_S = 30.0


class LoopThread:
    """An asyncio loop in a daemon thread; ``call`` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="adb-devices", daemon=True
        )
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = LOOP_TIMEOUT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="session")
def device_loop() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


@dataclass(frozen=True)
class HostKey:
    """A host's key pair as adb keeps it: ``path`` (PKCS#8 PEM) and ``path.pub``."""

    path: Path

    @property
    def public(self) -> AdbPublicKey:
        return AdbPublicKey.parse(self.path.with_name(self.path.name + ".pub").read_text())

    @property
    def signer(self) -> PythonRSASigner:
        return PythonRSASigner.FromRSAKeyPath(str(self.path))


def _make_key(directory: Path, name: str) -> HostKey:
    directory.mkdir(parents=True, exist_ok=True)
    keygen(str(directory / name))
    return HostKey(directory / name)


@pytest.fixture(scope="session")
def host_key(tmp_path_factory: pytest.TempPathFactory) -> HostKey:
    """The key the tests' host is allowed with."""
    return _make_key(tmp_path_factory.mktemp("host-key"), "adbkey")


@pytest.fixture(scope="session")
def stranger_key(tmp_path_factory: pytest.TempPathFactory) -> HostKey:
    """A key no device allows."""
    return _make_key(tmp_path_factory.mktemp("stranger-key"), "adbkey")


StartDevice = Callable[..., AdbDeviceServer]


@pytest.fixture
def tracker() -> Tracker:
    return Tracker()


@pytest.fixture
def start_device(device_loop: LoopThread, tracker: Tracker) -> Iterator[StartDevice]:
    """Starts an AdbDeviceServer on a free port (fake shell unless given an executor); every
    device started is stopped after the test."""
    started: list[AdbDeviceServer] = []

    def start(
        *,
        keystore: AdbKeyStore | None,
        executor: ShellExecutor | None = None,
        **options: Any,
    ) -> AdbDeviceServer:
        async def create() -> AdbDeviceServer:
            # Created in the loop: the server's asyncio objects belong to it.
            server = AdbDeviceServer(
                port=0, executor=executor or fake_shell(tracker), keystore=keystore, **options
            )
            await server.start()
            return server

        server = device_loop.call(create())
        started.append(server)
        return server

    yield start
    for server in started:
        device_loop.call(server.stop())


@pytest.fixture
def allowed_keystore(host_key: HostKey) -> AdbKeyStore:
    return AdbKeyStore([host_key.public])
