"""The ADB link to one device: an interface, the real adapter (adb-shell over TCP or USB) and
the timeouts every call carries.

adb-shell's own defaults wait 10 s per read and forever in total; the bridge never relies on
them: each call has a transport timeout (one socket/USB operation), a read timeout (how long
the device may take to answer) and a total timeout (the whole command). The ``shell:``
service (v1, what adb-shell speaks) carries no exit status, so a transport returns a
command's output only; exit statuses are recovered by
:class:`android_bridge.device.AndroidDevice`.

Why :class:`AdbShellTransport` runs its own streams instead of ``AdbDevice.shell``
--------------------------------------------------------------------------------
The bridge needs several commands at once on one device: a thread waits for ``am
broadcast`` (silent for seconds), another runs ``cardreader tap``, a third follows
``logcat``. adb-shell 0.4.4's ``AdbDevice`` multiplexes streams over one connection
(``_AdbIOManager`` files packets of other streams in a store), but the thread reading holds
the transport lock while it *waits* for a packet, so measured against the emulator:

* a short command issued while a silent one runs waits until the silent one's next packet (a
  ``echo hi`` behind ``sleep 3`` took 2.8 s);
* a command silent for longer than ``transport_timeout_s`` fails (``TcpTimeoutException``
  from ``select``), so a long ``am broadcast`` would need a huge transport timeout, which in
  turn blocks every other thread that long;
* a connection the device closes is not noticed: ``recv`` returns ``b""``, the read loop
  spins at full CPU until ``read_timeout_s`` and raises ``AdbTimeoutError``, the same
  exception as a slow device.

A pool (one ``AdbDevice`` per concurrent call) would avoid the lock but is impossible over
USB (one handle per interface) and, on a device whose user tapped "Allow" without "Always
allow", would show the prompt again for every new connection. So this module keeps ONE
connection per device, like the adb server does, and demultiplexes it itself: a reader thread
takes every packet off the wire and hands it to its stream; any thread may write (one lock
around each packet); each stream acknowledges its data when its consumer takes it (adb's flow
control). adb-shell still provides what it does well: the transports (``BaseTransport``; USB
via ``UsbTransport``), the message codec and constants, the RSA signers and key generation.
The handshake mirrors ``_AdbIOManager.connect`` (CNXN, signatures, then the public key).

Failures, as raised to callers (never library exceptions):

* ``DeviceNotFound``: TCP connect refused, unreachable, unresolvable or timed out; no such
  USB device (or it cannot be opened);
* ``DeviceUnauthorized``: the device asked for a key, none of ours was accepted, and no CNXN
  came within ``auth_s`` after offering the user key (adb-shell would raise
  ``TcpTimeoutException`` there, or ``DeviceAuthError`` with no keys at all);
* ``DeviceOffline``: the device accepted TCP but never completed the handshake; the
  connection was closed, reset, broke mid-packet or spoke garbage; the device did not answer
  an OPEN within ``read_s``. The transport is then disconnected (``connected`` is False) and
  every running call on it fails the same way;
* ``CommandTimeout``: a command did not finish within its total timeout; its stream is
  closed (the device cancels the command) and the connection stays usable.

The fake lives in :mod:`android_bridge.fakes`.
"""

from __future__ import annotations

import codecs
import contextlib
import ipaddress
import logging
import re
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from adb_shell import constants
from adb_shell.adb_message import AdbMessage, checksum
from adb_shell.exceptions import (
    TcpTimeoutException,
    UsbReadFailedError,
    UsbWriteFailedError,
)
from adb_shell.transport.base_transport import BaseTransport

from android_bridge.errors import (
    BridgeError,
    CommandTimeout,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
)
from android_bridge.keys import HostKeys, load_host_keys

_log = logging.getLogger(__name__)

DEFAULT_TCP_PORT = 5555
USB_EXTRA_HINT = "pip install 'adb-shell[usb]' (it brings libusb1)"


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``transport_s``: one send on the socket or USB endpoint, and the TCP connect;
    ``read_s``: how long the device may take to answer (each step of the handshake, opening
    a stream, the rest of a packet once it started) and, for ``stream``, the silence after
    which an empty chunk is yielded; ``auth_s``: how long the device may take to accept the
    key (a device showing the "Allow USB debugging?" prompt waits for a human);
    ``command_s``: a whole short command (getprop, pm, query).

    A command may be silent for as long as its total timeout allows (``am broadcast`` waits
    for a card without a word): silence alone never fails a command. A dead peer is noticed
    by TCP keepalive (about 25 s) or at once when the connection is closed or reset."""

    transport_s: float = 5.0
    read_s: float = 10.0
    auth_s: float = 5.0
    command_s: float = 30.0


@dataclass(frozen=True)
class DeviceBanner:
    """What the device said about itself in its CNXN banner (``device::ro.product.name=…;…``)."""

    state: str  # "device", "recovery", "sideload", …
    properties: dict[str, str]
    features: frozenset[str]

    @property
    def product(self) -> str | None:
        return self.properties.get("ro.product.name")

    @property
    def model(self) -> str | None:
        return self.properties.get("ro.product.model")

    @property
    def device(self) -> str | None:
        return self.properties.get("ro.product.device")


def parse_banner(data: bytes | str) -> DeviceBanner:
    """``device::ro.product.name=x;ro.product.model=y;features=a,b`` (as adbd sends it; older
    devices end it with ``;`` and may send no properties at all)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.rstrip("\0")
    state, _, rest = text.partition(":")
    _serial, _, props = rest.partition(":")
    properties: dict[str, str] = {}
    features: frozenset[str] = frozenset()
    for item in props.split(";"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            continue
        if key == "features":
            features = frozenset(name for name in value.split(",") if name)
        else:
            properties[key] = value
    return DeviceBanner(state=state or "unknown", properties=properties, features=features)


class TextStream(Protocol):
    """What ``DeviceTransport.stream`` returns: text chunks as they arrive; ``close()`` may be
    called from any thread (a reader blocked in ``next`` then stops)."""

    def __iter__(self) -> Iterator[str]: ...

    def __next__(self) -> str: ...

    def close(self) -> None: ...


class DeviceTransport(Protocol):
    """One ADB connection. Implementations raise the :mod:`android_bridge.errors` classes
    (DeviceNotFound, DeviceUnauthorized, DeviceOffline, CommandTimeout), never library
    exceptions. Several threads may call ``shell`` and ``stream`` at once (one stream each)."""

    serial: str

    @property
    def connected(self) -> bool: ...

    def connect(self, timeouts: Timeouts) -> DeviceBanner:
        """Open a new connection (closing the previous one, if any) and return its banner."""
        ...

    def close(self) -> None: ...

    def shell(self, command: str, *, timeout_s: float) -> str:
        """Run ``command`` (one string, as ``adb shell`` sends it) and return its output
        (stdout and stderr merged, decoded as UTF-8 with replacement)."""
        ...

    def stream(self, command: str, *, read_timeout_s: float) -> TextStream:
        """Run ``command`` and yield its output as it arrives (text chunks, not lines); the
        iterator ends when the command ends; closing it closes the stream on the device.

        The command is running on the device when ``stream`` returns (the device accepted
        the stream). A silence of ``read_timeout_s`` yields an empty chunk and the stream
        stays open (logcat may be quiet for minutes): a consumer can look at its clock."""
        ...


# --------------------------------------------------------------------------------------
# Serials


@dataclass(frozen=True)
class Endpoint:
    """Where a serial points: ``tcp`` (host, port) or ``usb`` (a USB serial, None = the only
    device)."""

    kind: Literal["tcp", "usb"]
    serial: str
    host: str = ""
    port: int = 0
    usb_serial: str | None = None


def _looks_like_host(text: str) -> bool:
    if text == "localhost" or "." in text:
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _tcp(host: str, port: int) -> Endpoint:
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    shown = f"[{host}]" if ":" in host else host
    return Endpoint("tcp", f"{shown}:{port}", host=host, port=port)


def parse_serial(serial: str) -> Endpoint:
    """``host:port`` (``[v6]:port``), a bare host or IP (port 5555, as ``adb connect``),
    ``emulator-5554`` (127.0.0.1:5555, adb's name for a local emulator port), ``usb:<serial>``
    (``usb:`` alone: the only USB device) or a bare USB serial (no ``:`` and no ``.``)."""
    text = serial.strip()
    if not text:
        raise ValueError("empty serial")
    if text == "usb" or text.startswith("usb:"):
        usb_serial = text[4:] or None
        return Endpoint("usb", text, usb_serial=usb_serial)
    emulator = re.fullmatch(r"emulator-(\d+)", text)
    if emulator:
        return _tcp("127.0.0.1", int(emulator.group(1)) + 1)
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
    if bracketed:
        return _tcp(bracketed.group(1), int(bracketed.group(2) or DEFAULT_TCP_PORT))
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        if not host or not port.isdigit():
            raise ValueError(f"not host:port: {text!r}")
        return _tcp(host, int(port))
    if text.count(":") > 1:
        ipaddress.IPv6Address(text)  # ValueError when it is not an address
        return _tcp(text, DEFAULT_TCP_PORT)
    if _looks_like_host(text):
        return _tcp(text, DEFAULT_TCP_PORT)
    return Endpoint("usb", text, usb_serial=text)


def normalize_serial(serial: str) -> str:
    """The serial as the bridge shows it (``192.168.1.5`` -> ``192.168.1.5:5555``)."""
    return parse_serial(serial).serial


# --------------------------------------------------------------------------------------
# Byte transports (adb-shell's BaseTransport interface)


class _TcpSocket(BaseTransport):  # adb-shell's interface (untyped)
    """TCP for the link. adb-shell's ``TcpTransport`` sends with a non-blocking ``send`` and
    ignores short writes, and cannot be closed while another thread reads; this one keeps the
    socket blocking, waits with ``select`` and is shut down from any thread."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def connect(self, transport_timeout_s: float | None) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=transport_timeout_s)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A device that vanishes without a FIN (Wi-Fi gone, battery out) is noticed in
        # about 25 s even while every stream is silent.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
        with self._lock:
            self._sock = sock

    def _socket(self) -> socket.socket:
        sock = self._sock
        if sock is None:
            raise ConnectionAbortedError("the connection is closed")
        return sock

    def shutdown(self) -> None:
        """Wake a reader blocked in ``select`` (it then reads end of file)."""
        with self._lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def bulk_read(self, numbytes: int, transport_timeout_s: float | None) -> bytes:
        sock = self._socket()
        readable, _, _ = select.select([sock], [], [], transport_timeout_s)
        if not readable:
            raise TcpTimeoutException(f"no data within {transport_timeout_s} s")
        return sock.recv(numbytes)

    def bulk_write(self, data: bytes, transport_timeout_s: float | None) -> int:
        sock = self._socket()
        _, writable, _ = select.select([], [sock], [], transport_timeout_s)
        if not writable:
            raise TcpTimeoutException(f"could not send within {transport_timeout_s} s")
        return sock.send(data)


def _usb_transport_class() -> Any:
    try:
        from adb_shell.transport.usb_transport import UsbTransport
    except (ImportError, OSError) as error:
        raise BridgeError(
            f"USB devices need the libusb1 package ({error})", hint=USB_EXTRA_HINT
        ) from error
    return UsbTransport


def usb_available() -> bool:
    try:
        _usb_transport_class()
    except BridgeError:
        return False
    return True


def _is_usb_timeout(error: UsbReadFailedError) -> bool:
    return type(getattr(error, "usb_error", None)).__name__ == "USBErrorTimeout"


# --------------------------------------------------------------------------------------
# The link: one connection, many streams

_HEADER = struct.Struct("<6I")
#: How often a reader waiting for the next packet looks whether it should stop (USB; a TCP
#: reader is woken at once by ``shutdown``).
_POLL_S = 0.5
_SILENCE: Any = object()  # what a stream read returns when nothing came in time


class _Timeout(Exception):
    pass


class _Closed(Exception):
    pass


class _ProtocolError(Exception):
    pass


def _fresh(error: BridgeError) -> BridgeError:
    """A new exception like ``error``: one instance raised in several threads would share
    (and grow) one traceback."""
    return type(error)(error.message, serial=error.serial, hint=error.hint)


class _Stream:
    """One ADB stream of the link, from OPEN to CLSE."""

    def __init__(self, link: _Link, local_id: int, service: str) -> None:
        self.link = link
        self.local_id = local_id
        self.service = service
        self.remote_id: int | None = None
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._refused = False
        self._ended = False  # the device closed it
        self._closed = False  # we closed it
        self._error: BridgeError | None = None

    # Reader thread side.

    def on_okay(self, remote_id: int) -> bool:
        """False when the stream is no longer wanted (the caller then closes it remotely)."""
        with self._cond:
            if self.remote_id is None:
                self.remote_id = remote_id
                self._cond.notify_all()
            return not self._closed

    def on_write(self, data: bytes) -> None:
        with self._cond:
            self._chunks.append(data)
            self._cond.notify_all()

    def on_close(self) -> None:
        with self._cond:
            if self.remote_id is None:
                self._refused = True
            self._ended = True
            self._cond.notify_all()

    def fail(self, error: BridgeError) -> None:
        with self._cond:
            if self._error is None:
                self._error = error
            self._cond.notify_all()

    # Consumer side.

    def wait_open(self, timeout_s: float) -> Literal["open", "refused", "timeout"]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.remote_id is None and not self._refused:
                if self._error is not None:
                    raise _fresh(self._error)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "timeout"
                self._cond.wait(remaining)
            return "refused" if self._refused else "open"

    def read(self, timeout_s: float) -> Any:
        """The next chunk (acknowledged to the device as it is taken), None at the end,
        ``_SILENCE`` when nothing came within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._closed:
                    return None  # what is still queued is not wanted any more
                if self._chunks:
                    break
                if self._ended and self._error is None:
                    return None
                if self._error is not None:
                    raise _fresh(self._error)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return _SILENCE
                self._cond.wait(remaining)
            data = self._chunks.popleft()
            acknowledge = not (self._ended or self._closed or self._error)
            remote_id = self.remote_id
        if acknowledge and remote_id is not None:
            # The device sends the next WRTE of this stream only after this OKAY: a slow
            # consumer slows its own stream, never the others.
            try:
                self.link.send(constants.OKAY, self.local_id, remote_id)
            except DeviceOffline as error:
                self.fail(error)
        return data

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            still_open = self.remote_id is not None and not self._ended and self._error is None
            remote_id = self.remote_id
            self._cond.notify_all()
        self.link.forget(self)
        if still_open and remote_id is not None:
            # CLSE makes the device cancel the command (SIGHUP on a real device).
            with contextlib.suppress(DeviceOffline):
                self.link.send(constants.CLSE, self.local_id, remote_id)


class _Link:
    """One authenticated ADB connection and the streams running on it."""

    def __init__(self, serial: str, base: Any, timeouts: Timeouts) -> None:
        self.serial = serial
        self.base = base
        self.timeouts = timeouts
        self.banner: DeviceBanner | None = None
        self.max_payload = constants.MAX_ADB_DATA
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._streams: dict[int, _Stream] = {}
        self._next_id = 0
        self._error: DeviceOffline | None = None
        self._closing = False
        self._reader: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._error is None

    # Reading.

    def _read_exact(self, size: int, first_byte_deadline: float | None) -> bytes:
        """``size`` bytes. Before the first byte, wait until ``first_byte_deadline`` (None:
        as long as the link is up); once a packet has started, the rest must follow within
        ``read_s``."""
        buffer = bytearray()
        started = 0.0
        while len(buffer) < size:
            if self._closing:
                raise _Closed("the connection was closed")
            limit = started + self.timeouts.read_s if buffer else first_byte_deadline
            wait = _POLL_S if limit is None else min(_POLL_S, limit - time.monotonic())
            try:
                chunk = self.base.bulk_read(size - len(buffer), max(wait, 0.001))
            except TcpTimeoutException:
                chunk = None
            except UsbReadFailedError as error:
                if not _is_usb_timeout(error):
                    raise
                # libusb may have moved part of a transfer before the timeout; python-libusb1
                # hands it over on the exception: keep it, or the stream loses sync.
                partial = getattr(error.usb_error, "transferred", None)
                chunk = (
                    bytes(partial) if isinstance(partial, bytes | bytearray) and partial else None
                )
            if chunk is None:
                if limit is not None and time.monotonic() >= limit:
                    if buffer:
                        raise _ProtocolError("the device stopped in the middle of a packet")
                    raise _Timeout()
                continue
            if not chunk:
                raise _Closed("the device closed the connection")
            if not buffer:
                started = time.monotonic()
            buffer += chunk
        return bytes(buffer)

    def _read_packet(self, first_byte_deadline: float | None) -> tuple[bytes, int, int, bytes]:
        header = self._read_exact(_HEADER.size, first_byte_deadline)
        command, arg0, arg1, length, data_check, magic = _HEADER.unpack(header)
        name = constants.WIRE_TO_ID.get(command)
        if name is None or magic != command ^ 0xFFFFFFFF:
            raise _ProtocolError(f"not an ADB packet header: {header.hex()}")
        if length > max(self.max_payload, constants.MAX_ADB_DATA):
            raise _ProtocolError(f"{name.decode()} payload of {length} bytes is too large")
        data = b""
        if length:
            data = self._read_exact(length, time.monotonic() + self.timeouts.read_s)
            # Devices at protocol 0x01000001+ send 0 (no checksum); a non-zero one must match.
            if data_check and checksum(data) != data_check:
                raise _ProtocolError(f"bad checksum on a {name.decode()} packet")
        return name, arg0, arg1, data

    # Writing.

    def send(self, command: bytes, arg0: int, arg1: int, data: bytes = b"") -> None:
        if self._error is not None:
            raise _fresh(self._error)
        header = AdbMessage(command, arg0, arg1, data).pack()
        deadline = time.monotonic() + self.timeouts.transport_s
        try:
            with self._write_lock:
                # Header and payload as two writes: over USB they must be two transfers.
                self._write_all(header, deadline)
                if data:
                    self._write_all(data, deadline)
        except (OSError, TcpTimeoutException, UsbWriteFailedError) as error:
            offline = DeviceOffline(f"sending to the device failed: {error}", serial=self.serial)
            self._fail(offline)
            raise offline from error

    def _write_all(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TcpTimeoutException("the device does not take data")
            sent = self.base.bulk_write(bytes(view), remaining)
            view = view[sent or len(view) :]

    # The handshake (in the connecting thread, before the reader starts).

    def handshake(self, keys: HostKeys, host_name: bytes) -> DeviceBanner:
        t = self.timeouts
        self.send(
            constants.CNXN, constants.VERSION, constants.MAX_ADB_DATA, b"host::" + host_name + b"\0"
        )
        try:
            packet = self._handshake_packet(time.monotonic() + t.read_s)
        except _Timeout:
            raise DeviceOffline(
                f"no answer to the ADB handshake within {t.read_s:g} s",
                serial=self.serial,
                hint="is this an adbd port? is the device still booting?",
            ) from None
        except _Closed:
            raise DeviceOffline(
                "the device closed the connection during the ADB handshake",
                serial=self.serial,
                hint="adbd may be restarting; try again",
            ) from None
        signers = iter(keys.signers)
        while packet[0] == constants.AUTH:
            if packet[1] != constants.AUTH_TOKEN:
                raise DeviceOffline(f"unexpected AUTH type {packet[1]}", serial=self.serial)
            signer = next(signers, None)
            if signer is None:
                break
            self.send(constants.AUTH, constants.AUTH_SIGNATURE, 0, signer.Sign(packet[3]))
            try:
                packet = self._handshake_packet(time.monotonic() + t.read_s)
            except (_Timeout, _Closed) as error:
                raise DeviceOffline(
                    f"the device stopped answering while checking our key ({type(error).__name__})",
                    serial=self.serial,
                ) from None
        if packet[0] == constants.AUTH:
            if not keys.signers:
                raise DeviceUnauthorized(
                    "the device asks for an ADB key and none was given",
                    serial=self.serial,
                    hint=keys.allow_hint(),
                )
            # None of our signatures was accepted: offer the user key, which makes a real
            # device show "Allow USB debugging?", and wait for a human (auth_s).
            self.send(
                constants.AUTH, constants.AUTH_RSAPUBLICKEY, 0, keys.public_line.encode() + b"\0"
            )
            deadline = time.monotonic() + t.auth_s
            try:
                packet = self._handshake_packet(deadline)
                while packet[0] != constants.CNXN:
                    packet = self._handshake_packet(deadline)
            except (_Timeout, _Closed):
                raise DeviceUnauthorized(
                    f"the device did not accept this computer's ADB key within {t.auth_s:g} s",
                    serial=self.serial,
                    hint=keys.allow_hint(),
                ) from None
        _command, _version, max_payload, banner = packet
        self.max_payload = max_payload or constants.MAX_ADB_DATA
        self.banner = parse_banner(banner)
        return self.banner

    def _handshake_packet(self, deadline: float) -> tuple[bytes, int, int, bytes]:
        try:
            while True:
                packet = self._read_packet(deadline)
                if packet[0] in (constants.CNXN, constants.AUTH):
                    return packet
        except _ProtocolError as error:
            raise DeviceOffline(
                f"the device does not speak ADB: {error}", serial=self.serial
            ) from None
        except (OSError, UsbReadFailedError) as error:
            raise DeviceOffline(f"the connection failed: {error}", serial=self.serial) from None

    # Running.

    def start(self) -> None:
        self._reader = threading.Thread(
            target=self._read_loop, name=f"adb-link {self.serial}", daemon=True
        )
        self._reader.start()

    def _read_loop(self) -> None:
        reason: str
        try:
            while True:
                self._dispatch(*self._read_packet(None))
        except _Closed as error:
            reason = str(error)
        except DeviceOffline as error:  # an answer (OKAY, CLSE) could not be sent
            reason = error.message
        except _ProtocolError as error:
            reason = f"the connection broke: {error}"
        except (OSError, ValueError, UsbReadFailedError) as error:
            reason = f"the connection failed: {error}"
        except Exception as error:  # never let a reader die silently
            _log.exception("ADB link reader for %s stopped", self.serial)
            reason = f"the connection failed: {error!r}"
        self._fail(DeviceOffline(reason, serial=self.serial, hint="reconnect when it is back"))
        with contextlib.suppress(Exception):
            self.base.close()

    def _dispatch(self, command: bytes, arg0: int, arg1: int, data: bytes) -> None:
        if command in (constants.CNXN, constants.AUTH):
            raise _ProtocolError("the device restarted the connection")
        with self._lock:
            stream = self._streams.get(arg1)
        if stream is None:
            if command == constants.OKAY and arg0:
                # A stream the device opened after its caller gave up: close it there.
                self.send(constants.CLSE, arg1, arg0)
            return  # WRTE/CLSE of a stream we closed already
        if command == constants.OKAY:
            if not stream.on_okay(arg0):
                self.send(constants.CLSE, arg1, arg0)
        elif command == constants.WRTE:
            stream.on_write(data)
        elif command == constants.CLSE:
            answer = stream.remote_id is not None
            stream.on_close()
            self.forget(stream)
            if answer:
                self.send(constants.CLSE, arg1, arg0)

    def open_stream(self, service: str, answer_within_s: float) -> _Stream:
        payload = service.encode() + b"\0"
        if len(payload) > self.max_payload:
            # adbd drops a connection that sends a larger packet than it agreed to take.
            raise BridgeError(
                f"the command is {len(payload)} bytes; this device takes at most "
                f"{self.max_payload} in one command line",
                serial=self.serial,
                hint="shorten it (long extras such as metadata or a note)",
            )
        with self._lock:
            if self._error is not None:
                raise _fresh(self._error)
            self._next_id += 1
            stream = _Stream(self, self._next_id, service)
            self._streams[stream.local_id] = stream
        try:
            self.send(constants.OPEN, stream.local_id, 0, payload)
            outcome = stream.wait_open(answer_within_s)
        except BaseException:
            stream.close()
            raise
        if outcome == "open":
            return stream
        stream.close()
        if outcome == "refused":
            raise BridgeError(
                f"the device refused the service {service.split(':')[0]}:", serial=self.serial
            )
        raise _Timeout()

    def forget(self, stream: _Stream) -> None:
        with self._lock:
            if self._streams.get(stream.local_id) is stream:
                del self._streams[stream.local_id]

    def _fail(self, error: DeviceOffline) -> None:
        with self._lock:
            if self._error is not None:
                return
            self._error = error
            streams = list(self._streams.values())
            self._streams.clear()
        for stream in streams:
            stream.fail(error)
        # Wake the reader (TCP) so the socket is released now, not at the next packet.
        shutdown = getattr(self.base, "shutdown", None)
        if shutdown is not None:
            shutdown()

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
        self._fail(DeviceOffline("the connection was closed", serial=self.serial))
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=2 * _POLL_S + 0.5)
        with contextlib.suppress(Exception):
            self.base.close()


class _ShellTextStream:
    """``TextStream`` over one ADB stream (UTF-8 decoded across chunk boundaries)."""

    def __init__(self, stream: _Stream, silence_s: float) -> None:
        self._stream = stream
        self._silence_s = silence_s
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._done = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while not self._done:
            data = self._stream.read(self._silence_s)
            if data is _SILENCE:
                return ""
            if data is None:
                self._done = True
                tail = self._decoder.decode(b"", final=True)
                if tail:
                    return tail
                break
            text = self._decoder.decode(data)
            if text:
                return text
        raise StopIteration

    def close(self) -> None:
        self._stream.close()


def _summary(command: str, limit: int = 60) -> str:
    first = command.splitlines()[0] if command else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


class AdbShellTransport:
    """The real ``DeviceTransport``: one ADB connection to ``serial`` (see the module doc).

    The keys to sign with: ``host_keys``, else ``signers`` (adb-shell signers; the first is
    offered for the "Allow" prompt), else this computer's adb keys (:mod:`android_bridge.keys`)
    from ``key_path`` or the default path, created when missing."""

    def __init__(
        self,
        serial: str,
        *,
        key_path: Path | None = None,
        signers: Sequence[Any] | None = None,
        host_keys: HostKeys | None = None,
        host_name: str | None = None,
    ) -> None:
        try:
            self.endpoint = parse_serial(serial)
        except ValueError as error:
            raise BridgeError(
                f"{serial!r} is not a device serial ({error})",
                hint="host:port, host (port 5555), usb:<serial> or a USB serial",
            ) from None
        self.serial = self.endpoint.serial
        self._key_path = key_path
        self._keys: HostKeys | None = host_keys
        if host_keys is None and signers is not None:
            self._keys = HostKeys.from_signers(signers)
        self._host_name = (host_name or socket.gethostname() or "unknown").encode()
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._timeouts = Timeouts()

    @property
    def connected(self) -> bool:
        link = self._link
        return link is not None and link.alive

    @property
    def timeouts(self) -> Timeouts:
        return self._timeouts

    @property
    def host_keys(self) -> HostKeys:
        if self._keys is None:
            self._keys = load_host_keys(self._key_path)
        return self._keys

    def connect(self, timeouts: Timeouts) -> DeviceBanner:
        keys = self.host_keys
        with self._lock:
            previous, self._link = self._link, None
        if previous is not None:
            previous.close()
        link = _Link(self.serial, self._open_base(timeouts), timeouts)
        try:
            banner = link.handshake(keys, self._host_name)
        except BaseException:
            link.close()
            raise
        link.start()
        with self._lock:
            previous, self._link = self._link, link
            self._timeouts = timeouts
        if previous is not None:  # another thread connected meanwhile: the latest wins
            previous.close()
        _log.debug("connected to %s: %s", self.serial, banner)
        return banner

    def _open_base(self, timeouts: Timeouts) -> Any:
        endpoint = self.endpoint
        if endpoint.kind == "tcp":
            base = _TcpSocket(endpoint.host, endpoint.port)
            where = f"{endpoint.host}:{endpoint.port}"
            try:
                base.connect(timeouts.transport_s)
            except socket.gaierror as error:
                raise DeviceNotFound(
                    f"cannot resolve {endpoint.host}: {error.strerror}", serial=self.serial
                ) from None
            except ConnectionRefusedError:
                raise DeviceNotFound(
                    f"nothing listens at {where} (connection refused)",
                    serial=self.serial,
                    hint="is the device on, with ADB over TCP enabled (adb tcpip 5555)?",
                ) from None
            except TimeoutError:
                raise DeviceNotFound(
                    f"no answer from {where} within {timeouts.transport_s:g} s",
                    serial=self.serial,
                    hint="check the address and that the device is on the same network",
                ) from None
            except OSError as error:
                raise DeviceNotFound(
                    f"cannot reach {where}: {error.strerror or error}", serial=self.serial
                ) from None
            return base
        usb_transport = _usb_transport_class()
        try:
            base = usb_transport.find_adb(
                serial=endpoint.usb_serial, default_transport_timeout_s=timeouts.transport_s
            )
            base.connect(timeouts.transport_s)
        except Exception as error:  # UsbDeviceNotFoundError, usb1.USBError* (busy, access)
            raise DeviceNotFound(
                f"cannot open the USB device {endpoint.usb_serial or '(any)'}: {error}",
                serial=self.serial,
                hint="is it plugged in with USB debugging on? an adb server holding it must "
                "be stopped (adb kill-server); on Linux the udev rules must give you access",
            ) from None
        return base

    def close(self) -> None:
        with self._lock:
            link, self._link = self._link, None
        if link is not None:
            link.close()

    def _current(self) -> _Link:
        link = self._link
        if link is None:
            raise DeviceOffline("not connected", serial=self.serial, hint="connect first")
        if not link.alive:
            assert link._error is not None
            raise _fresh(link._error)
        return link

    def _open(self, link: _Link, command: str, answer_within_s: float) -> _Stream:
        try:
            return link.open_stream("shell:" + command, answer_within_s)
        except _Timeout:
            raise DeviceOffline(
                f"the device did not start `{_summary(command)}` within {answer_within_s:g} s",
                serial=self.serial,
                hint="the device is not answering: reconnect",
            ) from None

    def shell(self, command: str, *, timeout_s: float) -> str:
        link = self._current()
        started = time.monotonic()
        deadline = started + timeout_s
        answer_within = min(link.timeouts.read_s, timeout_s)
        try:
            stream = self._open(link, command, answer_within)
        except DeviceOffline:
            if time.monotonic() >= deadline and link.alive:
                raise self._timeout(command, timeout_s) from None
            raise
        chunks: list[bytes] = []
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timeout(command, timeout_s)
                data = stream.read(remaining)
                if data is None:
                    break
                if data is not _SILENCE:
                    chunks.append(data)
        finally:
            stream.close()
        return b"".join(chunks).decode("utf-8", "replace")

    def _timeout(self, command: str, timeout_s: float) -> CommandTimeout:
        return CommandTimeout(
            f"`{_summary(command)}` did not finish within {timeout_s:g} s",
            serial=self.serial,
            hint="the command was stopped; the connection is still usable",
        )

    def stream(self, command: str, *, read_timeout_s: float) -> TextStream:
        link = self._current()
        stream = self._open(link, command, link.timeouts.read_s)
        return _ShellTextStream(stream, read_timeout_s)


__all__ = [
    "AdbShellTransport",
    "DeviceBanner",
    "DeviceTransport",
    "Endpoint",
    "TextStream",
    "Timeouts",
    "normalize_serial",
    "parse_banner",
    "parse_serial",
    "usb_available",
]
