"""The device log: ring buffers, Android's line formats, filter specs and ``logcat`` options.

Line formats follow AOSP ``liblog/logprint.cpp`` (``threadtime`` is
``"%s %5d %5d %c %-8s: "``: date, pid, tid, priority letter, tag padded to eight), a message
with newlines prints one line per message line, and each buffer announces itself once with
``--------- beginning of main`` before its first printed entry, as ``logcat`` does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from terminal_emulator.android.clock import Clock

# liblog's LOGGER_ENTRY_MAX_PAYLOAD: tag, priority and message of one entry fit in it.
MAX_PAYLOAD_BYTES = 4068
ALL_BUFFERS = ("main", "system", "radio", "events", "crash")
DEFAULT_BUFFERS = ("main", "system", "crash")
FORMATS = ("threadtime", "brief", "tag", "process", "raw", "time")


class Priority(IntEnum):
    VERBOSE = 2
    DEBUG = 3
    INFO = 4
    WARN = 5
    ERROR = 6
    FATAL = 7
    SILENT = 8

    @property
    def letter(self) -> str:
        return "VDIWEFS"[self - 2]

    @classmethod
    def from_letter(cls, letter: str) -> Priority:
        index = "VDIWEFS".find(letter.upper()) if len(letter) == 1 else -1
        if letter == "*":
            return cls.VERBOSE
        if index < 0:
            raise ValueError(f"unknown log priority {letter!r}")
        return cls(index + 2)


@dataclass(frozen=True)
class LogEntry:
    seq: int
    time: dt.datetime
    pid: int
    tid: int
    priority: Priority
    tag: str
    message: str
    buffer: str = "main"
    uid: int = 0


class LogcatUsageError(ValueError):
    """Bad ``logcat`` arguments; the message is what ``logcat`` would print."""


@dataclass(frozen=True)
class LogFilter:
    """Filter specs like ``MPAC_RESULT:I *:S``: a minimum priority per tag and a default."""

    tags: tuple[tuple[str, Priority], ...] = ()
    default: Priority = Priority.VERBOSE

    @classmethod
    def parse(cls, specs: Iterable[str], *, silent_default: bool = False) -> LogFilter:
        """``silent_default`` is ``logcat -s``: tags not named are silenced."""
        tags: dict[str, Priority] = {}
        default = Priority.SILENT if silent_default else Priority.VERBOSE
        for spec in specs:
            for word in spec.split():
                tag, sep, level = word.rpartition(":")
                if not sep:
                    tag, level = word, "V"
                if not tag:
                    raise LogcatUsageError(f"Invalid filter expression '{word}'")
                try:
                    priority = Priority.from_letter(level) if level else Priority.VERBOSE
                except ValueError:
                    raise LogcatUsageError(f"Invalid filter expression '{word}'") from None
                if tag == "*":
                    default = priority
                else:
                    tags[tag] = priority
        return cls(tuple(tags.items()), default)

    def allows(self, entry: LogEntry) -> bool:
        for tag, priority in self.tags:
            if tag == entry.tag:
                return entry.priority >= priority
        return entry.priority >= self.default


def format_entry(entry: LogEntry, fmt: str = "threadtime", tz: dt.tzinfo = dt.UTC) -> list[str]:
    """The lines ``logcat -v <fmt>`` prints for ``entry`` (one per line of its message)."""
    local = entry.time.astimezone(tz)
    stamp = f"{local:%m-%d %H:%M:%S}.{local.microsecond // 1000:03d}"
    letter = entry.priority.letter
    if fmt == "threadtime":
        prefix = f"{stamp} {entry.pid:5d} {entry.tid:5d} {letter} {entry.tag:<8}: "
    elif fmt == "brief":
        prefix = f"{letter}/{entry.tag:<8}({entry.pid:5d}): "
    elif fmt == "time":
        prefix = f"{stamp} {letter}/{entry.tag:<8}({entry.pid:5d}): "
    elif fmt == "tag":
        prefix = f"{letter}/{entry.tag:<8}: "
    elif fmt == "process":
        return [f"{letter}({entry.pid:5d}) {line}  ({entry.tag})" for line in _lines(entry.message)]
    elif fmt == "raw":
        prefix = ""
    else:
        raise LogcatUsageError(f"Unknown format '{fmt}'")
    return [prefix + line for line in _lines(entry.message)]


def _lines(message: str) -> list[str]:
    return message.split("\n") if message else [""]


def _truncate(tag: str, message: str) -> str:
    budget = MAX_PAYLOAD_BYTES - len(tag.encode()) - 3  # priority byte and two NULs
    encoded = message.encode("utf-8", "surrogatepass")
    if len(encoded) <= budget:
        return message
    return encoded[: max(budget, 0)].decode("utf-8", "ignore")


@dataclass
class LogcatOptions:
    """What a ``logcat`` command line asks for (the subset the emulator supports)."""

    dump: bool = False
    clear: bool = False
    tail: int | None = None
    max_count: int | None = None
    fmt: str = "threadtime"
    buffers: tuple[str, ...] = DEFAULT_BUFFERS
    regex: re.Pattern[str] | None = None
    pid: int | None = None
    filter: LogFilter = field(default_factory=LogFilter)

    @classmethod
    def parse(cls, argv: Sequence[str]) -> LogcatOptions:
        """Parse ``logcat`` arguments: ``-d -c -s -t N -T N -m N -v FMT -b BUF -e RE --pid N``
        and filter specs. ``-t N`` implies ``-d``, as on Android."""
        options = cls()
        silent = False
        specs: list[str] = []
        buffers: list[str] = []
        args = list(argv)
        index = 0

        def value(flag: str, arg: str) -> str:
            nonlocal index
            if len(arg) > len(flag) and not arg.startswith("--"):
                return arg[len(flag) :]
            if arg.startswith("--") and "=" in arg:
                return arg.split("=", 1)[1]
            index += 1
            if index >= len(args):
                raise LogcatUsageError(f"option requires an argument -- '{flag.lstrip('-')}'")
            return args[index]

        def count(flag: str, arg: str) -> int:
            text = value(flag, arg)
            if not text.isdigit():
                raise LogcatUsageError(
                    f'{flag} "{text}" invalid integer (time formats are not supported)'
                )
            return int(text)

        while index < len(args):
            arg = args[index]
            if arg == "-d":
                options.dump = True
            elif arg == "-c":
                options.clear = True
            elif arg == "-s":
                silent = True
            elif arg.startswith("-t"):
                options.tail = count("-t", arg)
                options.dump = True
            elif arg.startswith("-T"):
                options.tail = count("-T", arg)
            elif arg.startswith("-m") or arg.startswith("--max-count"):
                options.max_count = count("-m" if arg.startswith("-m") else "--max-count", arg)
            elif arg.startswith("-v") or arg.startswith("--format"):
                fmt = value("-v" if arg.startswith("-v") else "--format", arg)
                if fmt not in FORMATS:
                    raise LogcatUsageError(f'Invalid parameter "{fmt}" to -v')
                options.fmt = fmt
            elif arg.startswith("-b") or arg.startswith("--buffer"):
                for name in value("-b" if arg.startswith("-b") else "--buffer", arg).split(","):
                    if name == "all":
                        buffers.extend(ALL_BUFFERS)
                    elif name == "default":
                        buffers.extend(DEFAULT_BUFFERS)
                    elif name in ALL_BUFFERS:
                        buffers.append(name)
                    else:
                        raise LogcatUsageError(f"unknown buffer {name}")
            elif arg.startswith("-e") or arg.startswith("--regex"):
                pattern = value("-e" if arg.startswith("-e") else "--regex", arg)
                try:
                    options.regex = re.compile(pattern)
                except re.error as exc:
                    raise LogcatUsageError(f"invalid regex {pattern!r}: {exc}") from None
            elif arg.startswith("--pid"):
                text = value("--pid", arg)
                if not text.isdigit():
                    raise LogcatUsageError(f'--pid "{text}" invalid integer')
                options.pid = int(text)
            elif arg.startswith("-") and len(arg) > 1:
                raise LogcatUsageError(f"Unknown option '{arg}'")
            else:
                specs.append(arg)
            index += 1
        if buffers:
            options.buffers = tuple(dict.fromkeys(buffers))
        options.filter = LogFilter.parse(specs, silent_default=silent)
        return options


class _Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop, buffers: Sequence[str]) -> None:
        self.loop = loop
        self.buffers = frozenset(buffers)
        self.queue: asyncio.Queue[LogEntry] = asyncio.Queue()


class Logcat:
    """One device's log buffers. Thread-safe writes; readers are asyncio (one loop or several)."""

    def __init__(self, *, clock: Clock, timezone: dt.tzinfo = dt.UTC, capacity: int = 5000) -> None:
        self._clock = clock
        self.timezone = timezone
        self._buffers: dict[str, deque[LogEntry]] = {
            name: deque(maxlen=capacity) for name in ALL_BUFFERS
        }
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._subscribers: list[_Subscriber] = []

    def write(
        self,
        priority: Priority,
        tag: str,
        message: str,
        *,
        pid: int,
        tid: int | None = None,
        uid: int = 0,
        buffer: str = "main",
    ) -> LogEntry:
        if buffer not in self._buffers:
            raise ValueError(f"unknown log buffer {buffer!r}")
        with self._lock:
            entry = LogEntry(
                seq=next(self._seq),
                time=self._clock.now(),
                pid=pid,
                tid=pid if tid is None else tid,
                priority=Priority(priority),
                tag=tag,
                message=_truncate(tag, message),
                buffer=buffer,
                uid=uid,
            )
            self._buffers[buffer].append(entry)
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            if buffer in subscriber.buffers:
                _deliver(subscriber, entry)
        return entry

    def entries(self, buffers: Iterable[str] = DEFAULT_BUFFERS) -> list[LogEntry]:
        """The buffered entries of ``buffers``, oldest first (merged by write order)."""
        with self._lock:
            merged = [entry for name in buffers for entry in self._buffers[name]]
        return sorted(merged, key=lambda entry: entry.seq)

    def clear(self, buffers: Iterable[str] = DEFAULT_BUFFERS) -> None:
        with self._lock:
            for name in buffers:
                self._buffers[name].clear()

    def format(self, entry: LogEntry, fmt: str = "threadtime") -> list[str]:
        return format_entry(entry, fmt, self.timezone)

    def select(
        self,
        log_filter: LogFilter | None = None,
        *,
        buffers: Iterable[str] = DEFAULT_BUFFERS,
        tail: int | None = None,
        regex: re.Pattern[str] | None = None,
        pid: int | None = None,
    ) -> list[LogEntry]:
        """Buffered entries that pass the filter; ``tail`` keeps the last N of those."""
        chosen = [
            entry for entry in self.entries(buffers) if _passes(entry, log_filter, regex, pid)
        ]
        if tail is not None:
            chosen = chosen[-tail:] if tail else []
        return chosen

    def dump(
        self,
        log_filter: LogFilter | None = None,
        *,
        fmt: str = "threadtime",
        buffers: Iterable[str] = DEFAULT_BUFFERS,
        tail: int | None = None,
    ) -> list[str]:
        """``logcat -d`` (with ``tail``: ``logcat -t N``) as lines, without buffer dividers."""
        lines: list[str] = []
        for entry in self.select(log_filter, buffers=buffers, tail=tail):
            lines.extend(self.format(entry, fmt))
        return lines

    async def follow(
        self,
        log_filter: LogFilter | None = None,
        *,
        buffers: Iterable[str] = DEFAULT_BUFFERS,
        tail: int | None = None,
        regex: re.Pattern[str] | None = None,
        pid: int | None = None,
    ) -> AsyncGenerator[LogEntry, None]:
        """Entries as they are written, after the buffered ones (``tail``: only the last N).

        Subscribing happens before the buffered entries are read, under the same lock as
        writes, so nothing written meanwhile is missed or repeated.
        """
        buffer_names = tuple(buffers)
        subscriber = _Subscriber(asyncio.get_running_loop(), buffer_names)
        with self._lock:
            backlog = sorted(
                (entry for name in buffer_names for entry in self._buffers[name]),
                key=lambda entry: entry.seq,
            )
            self._subscribers.append(subscriber)
        try:
            backlog = [entry for entry in backlog if _passes(entry, log_filter, regex, pid)]
            if tail is not None:
                backlog = backlog[-tail:] if tail else []
            for entry in backlog:
                yield entry
            while True:
                entry = await subscriber.queue.get()
                if _passes(entry, log_filter, regex, pid):
                    yield entry
        finally:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

    async def run(self, options: LogcatOptions) -> AsyncIterator[str]:
        """The output of one ``logcat`` command, line by line; ends unless following."""
        if options.clear:
            self.clear(options.buffers)
            return
        announced: set[str] = set()
        printed = 0

        def render(entry: LogEntry) -> list[str]:
            lines = []
            if entry.buffer not in announced:
                announced.add(entry.buffer)
                lines.append(f"--------- beginning of {entry.buffer}")
            return lines + self.format(entry, options.fmt)

        if options.dump:
            for entry in self.select(
                options.filter,
                buffers=options.buffers,
                tail=options.tail,
                regex=options.regex,
                pid=options.pid,
            ):
                if options.max_count is not None and printed >= options.max_count:
                    return
                printed += 1
                for line in render(entry):
                    yield line
            return
        stream = self.follow(
            options.filter,
            buffers=options.buffers,
            tail=options.tail,
            regex=options.regex,
            pid=options.pid,
        )
        try:
            async for entry in stream:
                if options.max_count is not None and printed >= options.max_count:
                    return
                printed += 1
                for line in render(entry):
                    yield line
                if options.max_count is not None and printed >= options.max_count:
                    return
        finally:
            await stream.aclose()


def _passes(
    entry: LogEntry,
    log_filter: LogFilter | None,
    regex: re.Pattern[str] | None,
    pid: int | None,
) -> bool:
    if log_filter is not None and not log_filter.allows(entry):
        return False
    if pid is not None and entry.pid != pid:
        return False
    return regex is None or regex.search(entry.message) is not None


def _deliver(subscriber: _Subscriber, entry: LogEntry) -> None:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is subscriber.loop:
        subscriber.queue.put_nowait(entry)
    elif not subscriber.loop.is_closed():
        subscriber.loop.call_soon_threadsafe(subscriber.queue.put_nowait, entry)
