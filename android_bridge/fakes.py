"""A scripted ``DeviceTransport`` for unit tests of the layers above the link (parsing,
retries, result recovery): no sockets, no device.

Tests that talk to a device use the emulator's real ADB endpoint instead; this fake is for
logic that only needs "this command answers that". It behaves like a device's shell where
the layers above can tell: it answers the exit-status marker :class:`AndroidDevice.run
<android_bridge.device.AndroidDevice.run>` appends (so scripts give ``exit_code`` and never
see the marker), ``true``/``false`` work without a script, an unknown command gives mksh's
``inaccessible or not found`` and 127, ``connect`` returns a new banner object every time.

::

    fake = FakeTransport()
    fake.reply(["pm", "path"], "package:/data/app/x/base.apk\\n")
    fake.reply(re.compile(r"^am broadcast "), BROADCAST_OUTPUT, delay_s=0.2)
    fake.fail(["am", "force-stop"], DeviceOffline("gone"))
    device = AndroidDevice("fake:5555", transport=fake)
    ...
    logcat = fake.wait_for_stream(["logcat"])
    logcat.feed("01-15 10:23:47.514  1042  1049 I MPAC_RESULT: {...}\\n")
    fake.drop()  # the link is lost: running calls raise DeviceOffline
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from android_bridge.errors import BridgeError, CommandTimeout, DeviceOffline
from android_bridge.transport import DeviceBanner, Timeouts
from terminal_emulator.adb.executor import ShellSyntaxError, parse_command_list

#: What a rule matches: the exact command line (str), a regex searched in it, the first
#: words of it (list/tuple, as the device's shell splits it), or any predicate.
Pattern = str | re.Pattern[str] | Sequence[str] | Callable[[str], bool]

_MARKER_LINE = re.compile(r'\necho "(?P<marker>[^"\n]+):\$\?"\Z')


@dataclass(frozen=True)
class Reply:
    """A scripted answer: ``output`` and ``exit_code`` (None: the exit status never comes
    back, as when output is cut short), after ``delay_s``; or ``error`` raised instead."""

    output: str = ""
    exit_code: int | None = 0
    delay_s: float = 0.0
    error: BridgeError | None = None


Responder = Reply | Callable[[str], Reply]


def default_banner() -> DeviceBanner:
    return DeviceBanner(
        state="device",
        properties={
            "ro.product.name": "fake_smartpos",
            "ro.product.model": "Fake_SmartPOS",
            "ro.product.device": "fake_smartpos",
        },
        features=frozenset({"shell_v2", "cmd"}),
    )


def _words(command: str) -> list[str] | None:
    try:
        commands = parse_command_list(command)
    except ShellSyntaxError:
        return None
    return commands[0].argv() if len(commands) == 1 else None


def _matches(pattern: Pattern, command: str) -> bool:
    if isinstance(pattern, str):
        return pattern == command
    if isinstance(pattern, re.Pattern):
        return pattern.search(command) is not None
    if callable(pattern):
        return bool(pattern(command))
    words = _words(command)
    prefix = list(pattern)
    return words is not None and words[: len(prefix)] == prefix


def _copy(error: BridgeError) -> BridgeError:
    """A fresh exception per raise (one instance raised twice keeps growing its traceback)."""
    clone = type(error).__new__(type(error))
    clone.__dict__.update(error.__dict__)
    clone.args = error.args
    return clone


@dataclass
class _Rule:
    pattern: Pattern
    responder: Responder
    times: int | None


@dataclass
class _StreamRule:
    pattern: Pattern
    chunks: tuple[str, ...]
    end: bool


class FakeStream:
    """A running ``stream`` of the fake: the test feeds it; the code under test reads it."""

    def __init__(self, command: str, read_timeout_s: float) -> None:
        self.command = command
        self.read_timeout_s = read_timeout_s
        self._cond = threading.Condition()
        self._chunks: deque[str] = deque()
        self._ended = False
        self._closed = False
        self._error: BridgeError | None = None

    @property
    def closed(self) -> bool:
        """Closed by the code under test (the device would have stopped the command)."""
        return self._closed

    def feed(self, text: str) -> None:
        with self._cond:
            self._chunks.append(text)
            self._cond.notify_all()

    def end(self) -> None:
        """The command ended on the device."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def fail(self, error: BridgeError | None = None) -> None:
        with self._cond:
            self._error = error or DeviceOffline("the connection was lost")
            self._cond.notify_all()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        deadline = time.monotonic() + self.read_timeout_s
        with self._cond:
            while True:
                if self._closed:
                    raise StopIteration
                if self._chunks:
                    return self._chunks.popleft()
                if self._ended and self._error is None:
                    raise StopIteration
                if self._error is not None:
                    raise _copy(self._error)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return ""  # a silence: the stream stays open
                self._cond.wait(remaining)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@dataclass
class FakeTransport:
    """A ``DeviceTransport`` answering from scripts; records every command it was given
    (``commands``, without the exit-status marker) and every stream (``streams``)."""

    serial: str = "fake:5555"
    banner: DeviceBanner = field(default_factory=default_banner)
    commands: list[str] = field(default_factory=list)
    streams: list[FakeStream] = field(default_factory=list)
    connects: int = 0
    timeouts: Timeouts | None = None
    #: How long ``connect`` takes (a device slow to answer, or a human tapping "Allow").
    connect_delay_s: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._rules: list[_Rule] = []
        self._stream_rules: list[_StreamRule] = []
        self._connect_errors: deque[BridgeError] = deque()
        self._connected = False
        self._dropped = threading.Event()
        self._drop_error: BridgeError | None = None

    # Scripting.

    def on(self, pattern: Pattern, responder: Responder, *, times: int | None = None) -> None:
        """Answer commands matching ``pattern`` with ``responder`` (a Reply, or a function of
        the command line returning one), ``times`` times (None: always). The newest rule
        that matches wins."""
        with self._lock:
            self._rules.insert(0, _Rule(pattern, responder, times))

    def reply(
        self,
        pattern: Pattern,
        output: str = "",
        *,
        exit_code: int | None = 0,
        delay_s: float = 0.0,
        times: int | None = None,
    ) -> None:
        self.on(pattern, Reply(output, exit_code, delay_s), times=times)

    def fail(
        self,
        pattern: Pattern,
        error: BridgeError,
        *,
        delay_s: float = 0.0,
        times: int | None = None,
    ) -> None:
        self.on(pattern, Reply(delay_s=delay_s, error=error), times=times)

    def reply_stream(self, pattern: Pattern, *chunks: str, end: bool = False) -> None:
        """Streams matching ``pattern`` start with ``chunks`` (then end, if ``end``)."""
        with self._lock:
            self._stream_rules.insert(0, _StreamRule(pattern, chunks, end))

    def fail_connect(self, *errors: BridgeError) -> None:
        """The next ``connect`` calls raise these, in order."""
        with self._lock:
            self._connect_errors.extend(errors)

    def drop(self, error: BridgeError | None = None) -> None:
        """The link is lost: waiting and later calls raise DeviceOffline (or ``error``)
        until the next ``connect``."""
        failure = error or DeviceOffline("the connection was lost", serial=self.serial)
        with self._lock:
            self._connected = False
            self._drop_error = failure
            self._dropped.set()
            streams = list(self.streams)
        for stream in streams:
            stream.fail(failure)

    # Test-side synchronisation.

    def wait_for_command(self, pattern: Pattern, *, timeout_s: float = 5.0) -> str:
        """The first recorded command matching ``pattern``, waiting for it if needed."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                for command in self.commands:
                    if _matches(pattern, command):
                        return command
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no command matching {pattern!r}: {self.commands}")
                self._lock.wait(remaining)

    def wait_for_stream(self, pattern: Pattern, *, timeout_s: float = 5.0) -> FakeStream:
        """The newest stream whose command matches ``pattern``, waiting for one if needed."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                for stream in reversed(self.streams):
                    if _matches(pattern, stream.command):
                        return stream
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no stream matching {pattern!r}")
                self._lock.wait(remaining)

    # DeviceTransport.

    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self, timeouts: Timeouts) -> DeviceBanner:
        if self.connect_delay_s:
            time.sleep(self.connect_delay_s)
        with self._lock:
            self.timeouts = timeouts
            if self._connect_errors:
                raise _copy(self._connect_errors.popleft())
            self._connected = True
            self._dropped = threading.Event()
            self._drop_error = None
            self.connects += 1
        # A new object per connection, as the real transport: callers compare identities.
        return dataclasses.replace(self.banner, properties=dict(self.banner.properties))

    def close(self) -> None:
        with self._lock:
            self._connected = False
            streams = list(self.streams)
        for stream in streams:
            stream.close()

    def _offline(self) -> BridgeError:
        if self._drop_error is not None:
            return _copy(self._drop_error)
        return DeviceOffline("not connected", serial=self.serial)

    def shell(self, command: str, *, timeout_s: float) -> str:
        marker_line = _MARKER_LINE.search(command)
        user_command = command[: marker_line.start()] if marker_line else command
        with self._lock:
            if not self._connected:
                raise self._offline()
            self.commands.append(user_command)
            self._lock.notify_all()
            reply = self._answer(user_command)
            dropped = self._dropped
        if reply.delay_s:
            # Waits like a running command: a drop ends it, a timeout stops it.
            if dropped.wait(min(reply.delay_s, timeout_s)):
                raise self._offline()
            if reply.delay_s > timeout_s:
                raise CommandTimeout(
                    f"`{user_command}` did not finish within {timeout_s:g} s", serial=self.serial
                )
        if reply.error is not None:
            raise _copy(reply.error)
        output = reply.output
        if marker_line and reply.exit_code is not None:
            output += f"{marker_line['marker']}:{reply.exit_code}\n"
        return output

    def _answer(self, command: str) -> Reply:
        for rule in self._rules:
            if not _matches(rule.pattern, command):
                continue
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self._rules.remove(rule)
            responder = rule.responder
            return responder if isinstance(responder, Reply) else responder(command)
        words = _words(command) or [""]
        if words[0] in ("true", ":"):
            return Reply()
        if words[0] == "false":
            return Reply(exit_code=1)
        return Reply(f"/system/bin/sh: {words[0]}: inaccessible or not found\n", exit_code=127)

    def stream(self, command: str, *, read_timeout_s: float) -> FakeStream:
        stream = FakeStream(command, read_timeout_s)
        with self._lock:
            if not self._connected:
                raise self._offline()
            for rule in self._stream_rules:
                if _matches(rule.pattern, command):
                    for chunk in rule.chunks:
                        stream.feed(chunk)
                    if rule.end:
                        stream.end()
                    break
            self.streams.append(stream)
            self._lock.notify_all()
        return stream
