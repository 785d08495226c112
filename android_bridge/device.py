"""One Android device as the bridge sees it: commands with their exit status, properties,
installed packages, logcat, and a connection that comes back after a drop.

Serials: ``host:port`` (TCP, as ``adb connect``), ``usb:<serial>`` or a bare USB serial
(needs ``pip install 'adb-shell[usb]'``). Thread-safe: one thread may wait for a payment's
broadcast while another presents a card or follows logcat (the transport runs them on one
connection, independently: see :mod:`android_bridge.transport`).

Exit statuses: the ``shell:`` service has none, so ``run`` sends the command followed by a
second line, ``echo "<nonce>:$?"`` (a random nonce per call), and takes the status from that
last line. A newline rather than ``;`` ends the caller's command, so a command ending in
``;``, ``&`` or a ``# comment`` still reaches the marker. Both Android's mksh and the
emulator's shell (``terminal_emulator/adb/executor.py``: newlines, double quotes, ``$?``) run
it. A command that ends the shell itself (``exit 3``, ``exec …``) or that the shell cannot
parse never prints the marker: that is a MalformedResult, like output cut short.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from android_bridge.errors import (
    BridgeError,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
    MalformedResult,
)
from android_bridge.intents import command_line
from android_bridge.transport import (
    AdbShellTransport,
    DeviceBanner,
    DeviceTransport,
    TextStream,
    Timeouts,
)

_log = logging.getLogger(__name__)

#: What ``reconnect`` retries (a device rebooting is refused, then offline, then asks for
#: the key again before it is back).
RETRIED_ON_RECONNECT = (DeviceNotFound, DeviceOffline, DeviceUnauthorized)
_BACKOFF_FIRST_S = 0.1
_BACKOFF_MAX_S = 2.0
_MARKER_PREFIX = "mpac-exit-"


@dataclass(frozen=True)
class ShellResult:
    output: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def exit_marker_command(command: str, marker: str) -> str:
    """``command`` followed by the line that prints ``<marker>:<its exit status>``."""
    return f'{command}\necho "{marker}:$?"'


def split_exit_marker(raw: str, marker: str) -> tuple[str, int] | None:
    """(output, exit status) from what ``exit_marker_command`` printed; None when the marker
    line is missing (output cut short, or the shell never reached it)."""
    index = raw.rfind(marker + ":")
    if index < 0:
        return None
    status = re.fullmatch(r"(\d{1,3})\s*", raw[index + len(marker) + 1 :])
    if status is None:
        return None
    return raw[:index], int(status.group(1))


_GETPROP_LINE = re.compile(
    r"^\[(?P<key>[^\]\n]+)\]: \[(?P<value>.*?)\]\r?$(?=\n\[|\s*\Z)", re.M | re.S
)


def parse_getprop(output: str) -> dict[str, str]:
    """``getprop``'s ``[name]: [value]`` lines (a value may span lines)."""
    return {match["key"]: match["value"] for match in _GETPROP_LINE.finditer(output)}


class AndroidDevice:
    """``AndroidDevice.open("127.0.0.1:5555")`` connects; ``run([...])`` quotes the words and
    returns output and exit status; on a dropped link ``reconnect()`` (called by the
    operations that know they may retry) opens a new connection within a deadline.

    A device that was never connected connects on first use; after a drop, calls raise
    DeviceOffline until someone reconnects. ``banner`` is a new object for every connection,
    so ``device.banner is banner_seen_before`` tells whether the link was replaced."""

    def __init__(
        self,
        serial: str,
        *,
        transport: DeviceTransport | None = None,
        key_path: Path | None = None,
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        self.transport: DeviceTransport = transport or AdbShellTransport(serial, key_path=key_path)
        self.serial = self.transport.serial
        self.timeouts = timeouts
        self._banner: DeviceBanner | None = None
        self._connect_lock = threading.Lock()
        self._generation = 0
        self._followers: weakref.WeakSet[LogcatFollower] = weakref.WeakSet()

    @classmethod
    def open(
        cls,
        serial: str,
        *,
        transport: DeviceTransport | None = None,
        key_path: Path | None = None,
        timeouts: Timeouts = Timeouts(),
    ) -> AndroidDevice:
        device = cls(serial, transport=transport, key_path=key_path, timeouts=timeouts)
        device.connect()
        return device

    @property
    def banner(self) -> DeviceBanner | None:
        """The banner of the current (or last) connection; None before the first."""
        return self._banner

    @property
    def connected(self) -> bool:
        return self.transport.connected

    def connect(self) -> DeviceBanner:
        with self._connect_lock:
            return self._connect_locked()

    def _connect_locked(self) -> DeviceBanner:
        banner = self.transport.connect(self.timeouts)
        self._banner = banner
        self._generation += 1
        return banner

    def reconnect(self, *, deadline_s: float) -> DeviceBanner:
        """Close and connect again, retrying with back-off until ``deadline_s`` (seconds from
        now); raises the last error.

        Attempts start until the deadline; the last one may end later by its own timeouts
        (``transport_s``, ``read_s``, ``auth_s``). Threads calling this at once for the same
        drop share one new connection."""
        generation = self._generation
        deadline = time.monotonic() + deadline_s
        pause = _BACKOFF_FIRST_S
        with self._connect_lock:
            if self._generation != generation and self.transport.connected:
                assert self._banner is not None
                return self._banner  # another thread reconnected while this one waited
            while True:
                self.transport.close()
                try:
                    banner = self._connect_locked()
                except RETRIED_ON_RECONNECT as error:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise
                    _log.debug(
                        "%s: reconnect failed (%s); again in %.1f s", self.serial, error, pause
                    )
                    time.sleep(min(pause, remaining))
                    pause = min(pause * 2, _BACKOFF_MAX_S)
                    continue
                _log.info("%s: reconnected", self.serial)
                return banner

    def close(self) -> None:
        for follower in list(self._followers):
            follower.close()
        self.transport.close()

    def __enter__(self) -> AndroidDevice:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _ensure_connected(self) -> None:
        if self._banner is None and not self.transport.connected:
            with self._connect_lock:
                if self._banner is None and not self.transport.connected:
                    self._connect_locked()

    def run(self, command: str | Sequence[str], *, timeout_s: float | None = None) -> ShellResult:
        """A list is quoted word by word (:func:`android_bridge.intents.shell_quote`); a string
        is sent as it is. The exit status comes back through a per-call marker (see the
        module doc) since the ``shell:`` service has none."""
        line = command if isinstance(command, str) else command_line(command)
        marker = _MARKER_PREFIX + secrets.token_hex(8)
        self._ensure_connected()
        raw = self.transport.shell(
            exit_marker_command(line, marker),
            timeout_s=self.timeouts.command_s if timeout_s is None else timeout_s,
        )
        parsed = split_exit_marker(raw, marker)
        if parsed is None:
            reason = "the output was cut short, or the shell ended before reporting its exit status"
            if "syntax error" in raw:
                reason = "the device's shell could not parse the command"
            raise MalformedResult(
                f"no exit status for `{line[:80]}`: {reason}", raw=raw, serial=self.serial
            )
        output, exit_code = parsed
        return ShellResult(output=output, exit_code=exit_code)

    def getprop(self, name: str) -> str | None:
        """The property's value; None when it is not set (getprop prints an empty line)."""
        value = self.run(["getprop", name]).output.rstrip("\r\n")
        return value or None

    def properties(self) -> dict[str, str]:
        return parse_getprop(self.run(["getprop"]).output)

    def is_installed(self, package: str) -> bool:
        """``pm path <package>``: ``package:/data/app/…`` when installed; nothing when not
        (exit 1 on Android 7+ and on the emulator, 0 on older releases)."""
        result = self.run(["pm", "path", package])
        lines = [line.strip() for line in result.output.splitlines() if line.strip()]
        if any(line.startswith("package:") for line in lines):
            return True
        if not lines:
            return False
        raise MalformedResult(
            f"`pm path {package}` answered neither a path nor nothing (exit {result.exit_code})",
            raw=result.output,
            serial=self.serial,
        )

    def logcat_dump(self, *args: str, max_lines: int = 2000) -> list[str]:
        """``logcat -d <args>``: the buffer as it is now, the last ``max_lines`` lines."""
        result = self.run(["logcat", "-d", *args])
        if not result.ok:
            first = result.output.strip().splitlines()[:1]
            raise BridgeError(
                f"logcat -d {' '.join(args)} failed (exit {result.exit_code})"
                + (f": {first[0]}" if first else ""),
                serial=self.serial,
            )
        lines = [line.rstrip("\r") for line in result.output.splitlines()]
        return lines[-max_lines:] if max_lines > 0 else []

    def follow_logcat(self, *args: str, max_lines: int = 10_000) -> LogcatFollower:
        """Start ``logcat <args>`` (e.g. ``-T 1 -s MPAC_RESULT``) in the background *now*, so
        a line written after this call cannot be missed; read it with ``wait_for``.

        Before returning: the device has accepted the stream (logcat is started), then one
        more command (``true``) made a round trip on the same connection. The emulator runs
        commands in the order they were opened, so logcat is subscribed to the log by then;
        on a real device the round trip leaves logcat the few milliseconds it needs to attach
        to logd. (For lines written long before, ``-T <count>`` or ``-T '<time>'`` reach back
        into the buffer.)"""
        self._ensure_connected()
        stream = self.transport.stream(
            command_line(["logcat", *args]), read_timeout_s=self.timeouts.read_s
        )
        try:
            self.transport.shell("true", timeout_s=self.timeouts.read_s)
        except BaseException:
            stream.close()
            raise
        follower = LogcatFollower(stream, max_lines=max_lines, serial=self.serial)
        self._followers.add(follower)
        return follower


class LogcatFollower:
    """Lines of a running ``logcat``, kept in a bounded buffer by a background thread.

    ``wait_for`` and iteration see every line still in the buffer (the oldest are dropped
    past ``max_lines``); a broken stream raises DeviceOffline once the buffered lines are
    consumed (iteration) or when no buffered line matches (``wait_for``)."""

    def __init__(
        self, stream: TextStream, *, max_lines: int = 10_000, serial: str | None = None
    ) -> None:
        self.serial = serial
        self._stream = stream
        self._lines: deque[str] = deque(maxlen=max(1, max_lines))
        self._dropped = 0  # lines that fell out of the buffer: absolute index of _lines[0]
        self._partial = ""
        self._cond = threading.Condition()
        self._ended = False
        self._closed = False
        self._error: BridgeError | None = None
        self._thread = threading.Thread(target=self._pump, name=f"logcat {serial}", daemon=True)
        self._thread.start()

    @property
    def error(self) -> BridgeError | None:
        """Why the stream broke (None while it runs, or when it ended or was closed)."""
        return self._error

    @property
    def running(self) -> bool:
        return not self._ended

    def _pump(self) -> None:
        try:
            for chunk in self._stream:
                if chunk:
                    self._feed(chunk)
        except BridgeError as error:
            self._fail(error)
        except Exception as error:  # the stream is the device's: report, never crash
            self._fail(DeviceOffline(f"the logcat stream failed: {error!r}", serial=self.serial))
        finally:
            with self._cond:
                if self._partial:
                    self._append(self._partial.rstrip("\r"))
                    self._partial = ""
                self._ended = True
                self._cond.notify_all()

    def _fail(self, error: BridgeError) -> None:
        with self._cond:
            if not self._closed:
                self._error = error

    def _feed(self, text: str) -> None:
        with self._cond:
            pieces = (self._partial + text).split("\n")
            self._partial = pieces.pop()
            for line in pieces:
                self._append(line.rstrip("\r"))
            self._cond.notify_all()

    def _append(self, line: str) -> None:
        if len(self._lines) == self._lines.maxlen:
            self._dropped += 1
        self._lines.append(line)

    def _raise_if_broken(self) -> None:
        if self._error is not None:
            error = self._error
            raise type(error)(error.message, serial=error.serial, hint=error.hint)

    def wait_for(self, predicate: Callable[[str], bool], *, timeout_s: float) -> str | None:
        """The first line (buffered or to come) for which ``predicate`` is true, or None at
        the deadline (at once when logcat ended). Raises DeviceOffline if the stream broke."""
        deadline = time.monotonic() + timeout_s
        position = 0  # absolute index of the next line to look at
        with self._cond:
            while True:
                position = max(position, self._dropped)
                while position < self._dropped + len(self._lines):
                    line = self._lines[position - self._dropped]
                    position += 1
                    if predicate(line):
                        return line
                self._raise_if_broken()
                if self._ended:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._error = None
            self._cond.notify_all()
        self._stream.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def __enter__(self) -> LogcatFollower:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[str]:
        """Every line from the oldest still buffered on, as they come; ends when logcat ends
        or the follower is closed; raises DeviceOffline when the stream broke."""
        position = 0
        while True:
            with self._cond:
                while True:
                    position = max(position, self._dropped)
                    if position < self._dropped + len(self._lines):
                        line = self._lines[position - self._dropped]
                        position += 1
                        break
                    self._raise_if_broken()
                    if self._ended or self._closed:
                        return
                    self._cond.wait()
            yield line
