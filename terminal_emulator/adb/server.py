"""``AdbDeviceServer``: one emulated terminal's adbd, listening on TCP.

Each emulated terminal runs its own server on its own port, all in one process and event loop:

    server = AdbDeviceServer(port=default_port(0), executor=shell, keystore=keys)
    await server.start()          # then: adb connect 127.0.0.1:5555
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from terminal_emulator.adb.auth import AdbKeyStore, AdbPublicKey
from terminal_emulator.adb.constants import A_VERSION, DEFAULT_PORT, MAX_PAYLOAD, MAX_PAYLOAD_V1
from terminal_emulator.adb.executor import ShellExecutor
from terminal_emulator.adb.services import DeviceServices
from terminal_emulator.adb.session import AdbSession, DeviceIdentity, SessionState
from terminal_emulator.adb.transport import Transport, start_tcp_server

_LOGGER = logging.getLogger(__name__)

#: How long ``stop()`` waits for connections to wind down before cancelling them.
_STOP_TIMEOUT_S = 5.0


def default_port(index: int) -> int:
    """The port of the ``index``-th emulated terminal: 5555, 5557, 5559, ...

    Odd ports from 5555 up are where Android emulators put adbd; an adb server that starts
    while a terminal listens on one of 5555-5585 lists it by itself as ``emulator-<port-1>``
    (``adb connect`` works on any port).
    """
    if index < 0:
        raise ValueError("index must be >= 0")
    return DEFAULT_PORT + 2 * index


class AdbDeviceServer:
    """adbd for one emulated terminal.

    ``keystore`` None turns authentication off (like ``ro.adb.secure=0`` on an emulator image):
    any host gets in. With a key store, hosts must sign with an allowed key, or offer their
    key and have it allowed (``keystore.allow_new_keys``, or ``allow_key`` later, which also
    lets in a connection already waiting on that key).

    ``host`` defaults to 127.0.0.1: ADB is a remote shell, expose it on purpose only.
    ``port`` 0 takes a free port (see ``port`` after ``start``). ``on_unknown_key`` is called
    when a host offers a key that is not allowed: where the emulator shows its prompt.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        executor: ShellExecutor,
        keystore: AdbKeyStore | None,
        identity: DeviceIdentity | None = None,
        max_payload: int = MAX_PAYLOAD,
        version: int = A_VERSION,
        on_unknown_key: Callable[[AdbPublicKey], None] | None = None,
    ) -> None:
        if not MAX_PAYLOAD_V1 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload must be within {MAX_PAYLOAD_V1}..{MAX_PAYLOAD}")
        self.host = host
        self._requested_port = port
        self.executor = executor
        self.keystore = keystore
        self.identity = identity or DeviceIdentity()
        self.max_payload = max_payload
        self.version = version
        self.on_unknown_key = on_unknown_key
        self.services = DeviceServices(executor, self.identity)
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._sessions: dict[AdbSession, asyncio.Task[None]] = {}

    @property
    def port(self) -> int:
        """The listening port (the chosen one if constructed with 0); needs ``start()``."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def serial(self) -> str:
        """What ``adb devices`` calls this device after ``adb connect``."""
        return f"{self.host}:{self.port}"

    @property
    def sessions(self) -> tuple[AdbSession, ...]:
        return tuple(self._sessions)

    def pending_keys(self) -> list[AdbPublicKey]:
        """Keys that hosts offered and nobody allowed yet (the "Allow USB debugging?" queue)."""
        keys: list[AdbPublicKey] = []
        for session in self._sessions:
            key = session.pending_key
            if session.state is SessionState.UNAUTHORIZED and key is not None and key not in keys:
                keys.append(key)
        return keys

    async def allow_key(self, key: AdbPublicKey) -> None:
        """Allow ``key`` (persisted if the key store has a file) and admit connections
        waiting on it: the user tapping "Allow"."""
        if self.keystore is None:
            return
        self.keystore.allow(key)
        for session in list(self._sessions):
            await session.authorize(key)

    def _unknown_key(self, session: AdbSession, key: AdbPublicKey) -> None:
        if self.on_unknown_key is not None:
            self.on_unknown_key(key)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the server is already started")
        self._server = await start_tcp_server(self.host, self._requested_port, self.serve)
        self._port = self._server.sockets[0].getsockname()[1]
        _LOGGER.info(
            "adbd for %s listening on %s:%d", self.identity.product_model, self.host, self._port
        )

    async def stop(self) -> None:
        """Stop listening and drop every connection (hosts see the device go offline)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Closing the connections ends each session's read loop, which stops its streams.
        # (Cancelling the connection tasks instead makes asyncio's stream callback log them.)
        sessions = dict(self._sessions)
        for session in sessions:
            await session.transport.close()
        if sessions:
            _done, stuck = await asyncio.wait(sessions.values(), timeout=_STOP_TIMEOUT_S)
            for task in stuck:
                task.cancel()
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> AdbDeviceServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def serve(self, transport: Transport) -> None:
        """Run one host connection over ``transport`` (TCP, or an in-memory pipe in tests)."""
        session = AdbSession(
            transport,
            resolve_service=self.services.resolve,
            identity=self.identity,
            keystore=self.keystore,
            max_payload=self.max_payload,
            version=self.version,
            on_unknown_key=self._unknown_key,
        )
        task = asyncio.current_task()
        assert task is not None
        self._sessions[session] = task
        try:
            await session.run()
        finally:
            del self._sessions[session]
