"""One host connection: handshake, authentication and the multiplexed streams over it.

Protocol (AOSP ``protocol.txt``), as this device implements it:

* host ``CNXN(version, maxdata, "host::...")`` -> the connection uses the lower version and the
  smaller maxdata of both sides; with a key store the device answers ``AUTH(TOKEN)`` (see
  auth.py), without one, or once a key is accepted, ``CNXN(version, maxdata, banner)``.
* host ``OPEN(host-id, 0, "service\\0")`` -> ``OKAY(device-id, host-id)``, or
  ``CLSE(0, host-id)`` when the service does not exist.
* ``WRTE(sender-id, receiver-id, data)`` carries at most maxdata bytes and is acknowledged by
  ``OKAY(receiver-id, sender-id)``; a sender has at most one unacknowledged WRTE per stream.
* ``CLSE(sender-id, receiver-id)`` ends a stream from either side; the device answers a host's
  CLSE with its own and ignores CLSE/OKAY/WRTE for streams it no longer has (the host's reply
  to the device's CLSE arrives after the stream is gone).
* A new CNXN at any time restarts the connection: streams are dropped, authentication repeats.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from terminal_emulator.adb.auth import AdbKeyStore, AdbPublicKey, KeyFormatError
from terminal_emulator.adb.constants import (
    A_VERSION,
    A_VERSION_MIN,
    AUTH_RSAPUBLICKEY,
    AUTH_SIGNATURE,
    AUTH_TOKEN,
    DEFAULT_FEATURES,
    HEADER_SIZE,
    MAX_FAILED_AUTH_BEFORE_DELAY,
    MAX_PAYLOAD,
    TOKEN_SIZE,
    Command,
)
from terminal_emulator.adb.message import (
    Message,
    ProtocolError,
    checksum_required,
    decode_header,
    verify_payload,
)
from terminal_emulator.adb.redaction import redact
from terminal_emulator.adb.transport import Transport, TransportClosed

_LOGGER = logging.getLogger(__name__)

#: The smallest maxdata a host may ask for; below it not even a shell packet header fits, and
#: no real host goes under MAX_PAYLOAD_V1 (4096).
MIN_HOST_MAX_PAYLOAD = 256

#: How much host-sent data a stream buffers before it stops acknowledging WRTEs (a pipe's size):
#: the host then waits, which is how a slow reader slows a fast writer in ADB.
INBOUND_BUFFER_LIMIT = 64 * 1024


@dataclass(frozen=True)
class DeviceIdentity:
    """What the CNXN banner says about the device (``device::ro.product.name=...;...``).

    Hosts show these (``adb devices -l``) and switch behaviour on ``features``.
    """

    product_name: str = "mpac_smartpos"
    product_model: str = "MPAC_SmartPOS"
    product_device: str = "mpac_smartpos"
    features: tuple[str, ...] = DEFAULT_FEATURES

    def __post_init__(self) -> None:
        # The host splits the banner on ";", "=" and ","; such a character would corrupt it.
        for value in (self.product_name, self.product_model, self.product_device):
            if any(char in value for char in ";=\0") or not value.isprintable():
                raise ValueError(f"banner value {value!r} may not contain ';', '=' or controls")
        for feature in self.features:
            if not feature or any(char in feature for char in ";=,\0 "):
                raise ValueError(f"bad feature name {feature!r}")

    def banner(self) -> bytes:
        properties = (
            f"ro.product.name={self.product_name}",
            f"ro.product.model={self.product_model}",
            f"ro.product.device={self.product_device}",
            f"features={','.join(self.features)}",
        )
        return ("device::" + ";".join(properties)).encode()


class StreamClosed(ConnectionError):
    """The stream was closed (by either side); nothing more can be written to it."""


class SessionState(enum.Enum):
    AWAITING_CONNECT = "awaiting CNXN"
    UNAUTHORIZED = "unauthorized"  # AUTH TOKEN sent, no accepted key yet
    ONLINE = "online"


class AdbStream:
    """One service stream: what a service reads from and writes to."""

    def __init__(self, session: AdbSession, local_id: int, remote_id: int, service: str) -> None:
        self.session = session
        self.local_id = local_id
        self.remote_id = remote_id
        self.service = service
        self._acknowledged = asyncio.Event()
        self._acknowledged.set()  # nothing sent yet, so nothing to wait for
        self._write_lock = asyncio.Lock()
        self._inbound: collections.deque[bytes] = collections.deque()
        self._inbound_size = 0
        self._inbound_changed = asyncio.Event()
        self._owe_okay = False
        self._closed = False  # we sent CLSE, or the host did
        self._remote_closed = False
        self.task: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def max_payload(self) -> int:
        return self.session.max_payload

    async def write(self, data: bytes) -> None:
        """Send ``data`` as WRTEs of at most maxdata bytes, each only after the host
        acknowledged the previous one (ADB's flow control)."""
        view = memoryview(data)
        for start in range(0, len(view), self.max_payload):
            chunk = bytes(view[start : start + self.max_payload])
            async with self._write_lock:
                await self._acknowledged.wait()
                if self._closed:
                    raise StreamClosed(redact(self.service))
                self._acknowledged.clear()
                await self.session.send(Message(Command.WRTE, self.local_id, self.remote_id, chunk))

    async def read(self) -> bytes | None:
        """The next data the host wrote, or None once the host closed the stream."""
        while not self._inbound:
            if self._remote_closed:
                return None
            self._inbound_changed.clear()
            await self._inbound_changed.wait()
        data = self._inbound.popleft()
        self._inbound_size -= len(data)
        if self._owe_okay and self._inbound_size < INBOUND_BUFFER_LIMIT and not self._closed:
            self._owe_okay = False
            await self._send_okay()
        return data

    async def close(self) -> None:
        """End the stream from the device side (the service finished)."""
        if self._closed:
            return
        # Wait for the last WRTE's OKAY: the host has then taken all the output.
        await self._acknowledged.wait()
        if self._closed:
            return
        self._closed = True
        self._wake_readers()
        self.session.forget(self)
        await self.session.send(Message(Command.CLSE, self.local_id, self.remote_id))

    async def _send_okay(self) -> None:
        await self.session.send(Message(Command.OKAY, self.local_id, self.remote_id))

    def _wake_readers(self) -> None:
        self._inbound_changed.set()
        self._acknowledged.set()  # a writer waiting for an OKAY now sees the stream closed

    # Called by the session for messages addressed to this stream.

    def abort(self) -> None:
        """The connection is gone: stop the service without telling the host anything."""
        self._closed = self._remote_closed = True
        self._wake_readers()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    def on_okay(self) -> None:
        self._acknowledged.set()

    async def on_write(self, data: bytes) -> None:
        if self._remote_closed:
            return
        if data:
            self._inbound.append(data)
            self._inbound_size += len(data)
            self._inbound_changed.set()
        if self._inbound_size < INBOUND_BUFFER_LIMIT:
            await self._send_okay()
        else:
            self._owe_okay = True  # acknowledged by read() once the service caught up

    async def on_remote_close(self) -> None:
        self._remote_closed = True
        was_closed = self._closed
        self._closed = True
        self._wake_readers()
        self.session.forget(self)
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()  # like adbd's SIGHUP to the shell
        if not was_closed:
            await self.session.send(Message(Command.CLSE, self.local_id, self.remote_id))


ServiceHandler = Callable[[AdbStream], Awaitable[None]]
ServiceResolver = Callable[[str], ServiceHandler | None]


class AdbSession:
    """The device side of one host connection, from CNXN until the connection ends."""

    def __init__(
        self,
        transport: Transport,
        *,
        resolve_service: ServiceResolver,
        identity: DeviceIdentity,
        keystore: AdbKeyStore | None,
        max_payload: int = MAX_PAYLOAD,
        version: int = A_VERSION,
        on_unknown_key: Callable[[AdbSession, AdbPublicKey], None] | None = None,
    ) -> None:
        self.transport = transport
        self.identity = identity
        self.keystore = keystore
        self._resolve_service = resolve_service
        self._our_max_payload = max_payload
        self._our_version = version
        self._on_unknown_key = on_unknown_key
        # Before CNXN the oldest version rules (checksums on), as in adbd's atransport.
        self.version = A_VERSION_MIN
        self.max_payload = max_payload
        self.state = SessionState.AWAITING_CONNECT
        self.host_banner = ""
        self.pending_key: AdbPublicKey | None = None  # offered by the host, not (yet) allowed
        self.authorized_key: AdbPublicKey | None = None
        self._token = b""
        self._failed_auth = 0
        self._streams: dict[int, AdbStream] = {}
        self._next_id = 1
        self._send_lock = asyncio.Lock()

    @property
    def peer(self) -> str:
        return self.transport.peer

    @property
    def streams(self) -> tuple[AdbStream, ...]:
        return tuple(self._streams.values())

    async def send(self, message: Message) -> None:
        _LOGGER.debug("%s <- %r", self.peer, message)
        data = message.encode(with_checksum=checksum_required(self.version))
        # One writer at a time, so a header is never separated from its payload.
        async with self._send_lock:
            await self.transport.write(data)

    def forget(self, stream: AdbStream) -> None:
        if self._streams.get(stream.local_id) is stream:
            del self._streams[stream.local_id]

    async def run(self) -> None:
        """Serve the connection until the host leaves or breaks the protocol."""
        try:
            while True:
                message = await self._read_message()
                _LOGGER.debug("%s -> %r", self.peer, message)
                await self._dispatch(message)
        except TransportClosed:
            _LOGGER.debug("%s disconnected", self.peer)
        except ProtocolError as exc:
            # adbd drops a connection whose packets fail its header/checksum checks.
            _LOGGER.warning("%s: protocol error, dropping the connection: %s", self.peer, exc)
        finally:
            await self._drop_streams()
            await self.transport.close()

    async def authorize(self, key: AdbPublicKey) -> None:
        """``key`` was just allowed: let this connection in if it is the one waiting on it."""
        if self.state is SessionState.UNAUTHORIZED and self.pending_key == key:
            await self._go_online(key)

    async def _read_message(self) -> Message:
        raw = await self.transport.read_exactly(HEADER_SIZE)
        limit = self.max_payload if self.state is SessionState.ONLINE else self._our_max_payload
        header = decode_header(raw, max_payload=limit)
        payload = (
            await self.transport.read_exactly(header.data_length) if header.data_length else b""
        )
        version = self.version
        if header.command is Command.CNXN:
            # A (re)connect is judged by the version it announces, not the previous one's.
            version = min(header.arg0, self._our_version)
        return verify_payload(header, payload, with_checksum=checksum_required(version))

    async def _dispatch(self, message: Message) -> None:
        command = message.command
        if command is Command.CNXN:
            await self._on_connect(message)
        elif command is Command.AUTH:
            await self._on_auth(message)
        elif self.state is not SessionState.ONLINE:
            _LOGGER.debug("%s: ignoring %s before authentication", self.peer, command.name)
        elif command is Command.OPEN:
            await self._on_open(message)
        elif command in (Command.OKAY, Command.WRTE, Command.CLSE):
            await self._on_stream_message(message)
        # SYNC is obsolete and STLS is only ever requested by a device: both are ignored.

    async def _on_connect(self, message: Message) -> None:
        if message.arg1 < MIN_HOST_MAX_PAYLOAD:
            raise ProtocolError(f"host maxdata {message.arg1} is too small")
        if self.state is not SessionState.AWAITING_CONNECT:
            _LOGGER.info("%s: reconnect, dropping %d streams", self.peer, len(self._streams))
            await self._drop_streams()
        self.version = min(message.arg0, self._our_version)
        self.max_payload = min(message.arg1, self._our_max_payload)
        self.host_banner = message.payload.rstrip(b"\0").decode("utf-8", errors="replace")
        self.authorized_key = None
        self.pending_key = None
        _LOGGER.info(
            "%s: CNXN %r version %#x maxdata %d",
            self.peer,
            self.host_banner,
            self.version,
            self.max_payload,
        )
        if self.keystore is None:
            await self._go_online(None)
            return
        self.state = SessionState.UNAUTHORIZED
        await self._send_token()

    async def _send_token(self) -> None:
        # A fresh token per request, as adbd: a signature can never be replayed.
        self._token = secrets.token_bytes(TOKEN_SIZE)
        await self.send(Message(Command.AUTH, AUTH_TOKEN, 0, self._token))

    async def _go_online(self, key: AdbPublicKey | None) -> None:
        self.state = SessionState.ONLINE
        self.authorized_key = key
        self.pending_key = None
        self._failed_auth = 0
        await self.send(
            Message(Command.CNXN, self.version, self.max_payload, self.identity.banner())
        )
        _LOGGER.info(
            "%s: online%s", self.peer, f" with key {key.fingerprint}" if key is not None else ""
        )

    async def _on_auth(self, message: Message) -> None:
        if self.state is not SessionState.UNAUTHORIZED or self.keystore is None:
            return  # adbd ignores AUTH outside the handshake
        if message.arg0 == AUTH_SIGNATURE:
            key = self.keystore.find_signer(self._token, message.payload)
            if key is not None:
                await self._go_online(key)
                return
            self._failed_auth += 1
            if self._failed_auth > MAX_FAILED_AUTH_BEFORE_DELAY:
                await asyncio.sleep(1)
            await self._send_token()
        elif message.arg0 == AUTH_RSAPUBLICKEY:
            try:
                key = AdbPublicKey.parse(message.payload)
            except KeyFormatError as exc:
                _LOGGER.warning("%s: unusable public key: %s", self.peer, exc)
                return
            if self.keystore.is_allowed(key) or self.keystore.allow_new_keys:
                # The "Allow" tap: remember the key, as "Always allow from this computer".
                self.keystore.allow(key)
                await self._go_online(key)
                return
            # Never CNXN an unknown key: the host shows "unauthorized" until someone allows it.
            self.pending_key = key
            _LOGGER.warning(
                "%s: ADB key %s (%s) is not allowed; connection stays unauthorized",
                self.peer,
                key.fingerprint,
                key.comment or "no comment",
            )
            if self._on_unknown_key is not None:
                self._on_unknown_key(self, key)

    async def _on_open(self, message: Message) -> None:
        remote_id = message.arg0
        if remote_id == 0:
            return
        name = message.payload.split(b"\0", 1)[0].decode("utf-8", errors="replace")
        handler = self._resolve_service(name)
        if handler is None:
            _LOGGER.info("%s: refusing unknown service %r", self.peer, redact(name))
            await self.send(Message(Command.CLSE, 0, remote_id))
            return
        stream = AdbStream(self, self._allocate_id(), remote_id, name)
        self._streams[stream.local_id] = stream
        await self.send(Message(Command.OKAY, stream.local_id, remote_id))
        stream.task = asyncio.create_task(
            self._serve_stream(stream, handler), name=f"adb:{redact(name)}"
        )

    def _allocate_id(self) -> int:
        while True:
            local_id = self._next_id
            self._next_id = self._next_id % 0xFFFFFFFF + 1  # 1..2**32-1; 0 means "none"
            if local_id not in self._streams:
                return local_id

    async def _serve_stream(self, stream: AdbStream, handler: ServiceHandler) -> None:
        try:
            await handler(stream)
            await stream.close()
        except (StreamClosed, TransportClosed):
            pass
        except Exception:
            _LOGGER.exception("%s: service %r failed", self.peer, redact(stream.service))
            with contextlib.suppress(StreamClosed, TransportClosed):
                await stream.close()

    async def _on_stream_message(self, message: Message) -> None:
        remote_id, local_id = message.arg0, message.arg1
        stream = self._streams.get(local_id)
        # CLSE(0, id) is how old hosts close too; OKAY/WRTE must name the right host stream.
        if stream is None or (
            remote_id != stream.remote_id and message.command is not Command.CLSE
        ):
            return
        if message.command is Command.OKAY:
            stream.on_okay()
        elif message.command is Command.WRTE:
            await stream.on_write(message.payload)
        elif remote_id in (0, stream.remote_id):
            await stream.on_remote_close()

    async def _drop_streams(self) -> None:
        streams = list(self._streams.values())
        self._streams.clear()
        tasks = []
        for stream in streams:
            stream.abort()
            if stream.task is not None:
                tasks.append(stream.task)
        await asyncio.gather(*tasks, return_exceptions=True)
