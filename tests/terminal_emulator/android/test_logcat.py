"""Logcat: Android's line formats, filter specs, command-line options, ring buffers, follow."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest

from terminal_emulator.android import ManualClock
from terminal_emulator.android.logcat import (
    MAX_PAYLOAD_BYTES,
    Logcat,
    LogcatOptions,
    LogcatUsageError,
    LogEntry,
    LogFilter,
    Priority,
    format_entry,
)

TOKYO = ZoneInfo("Asia/Tokyo")
T0 = dt.datetime(2026, 1, 15, 1, 23, 45, 123456, tzinfo=dt.UTC)  # 10:23:45.123 in Tokyo


def _entry(
    message: str = "hello", tag: str = "Tag", priority: Priority = Priority.INFO
) -> LogEntry:
    return LogEntry(seq=1, time=T0, pid=1234, tid=1256, priority=priority, tag=tag, message=message)


def _logcat(capacity: int = 100) -> Logcat:
    return Logcat(clock=ManualClock(T0), timezone=TOKYO, capacity=capacity)


class TestFormats:
    @pytest.mark.parametrize(
        ("fmt", "line"),
        [
            ("threadtime", "01-15 10:23:45.123  1234  1256 I Tag     : hello"),
            ("brief", "I/Tag     ( 1234): hello"),
            ("time", "01-15 10:23:45.123 I/Tag     ( 1234): hello"),
            ("tag", "I/Tag     : hello"),
            ("process", "I( 1234) hello  (Tag)"),
            ("raw", "hello"),
        ],
    )
    def test_formats(self, fmt: str, line: str) -> None:
        assert format_entry(_entry(), fmt, TOKYO) == [line]

    def test_long_tags_are_not_cut_and_each_message_line_gets_a_prefix(self) -> None:
        lines = format_entry(
            _entry("one\ntwo", tag="ActivityManager", priority=Priority.WARN), "threadtime", TOKYO
        )
        assert lines == [
            "01-15 10:23:45.123  1234  1256 W ActivityManager: one",
            "01-15 10:23:45.123  1234  1256 W ActivityManager: two",
        ]

    def test_priority_letters(self) -> None:
        assert [p.letter for p in Priority] == list("VDIWEFS")
        assert Priority.from_letter("e") is Priority.ERROR
        assert Priority.from_letter("*") is Priority.VERBOSE
        with pytest.raises(ValueError, match="unknown log priority"):
            Priority.from_letter("X")

    def test_unknown_format(self) -> None:
        with pytest.raises(LogcatUsageError):
            format_entry(_entry(), "json", TOKYO)


class TestFilters:
    def test_tag_levels_and_default(self) -> None:
        spec = LogFilter.parse(["MPAC_RESULT:I", "*:S"])
        assert spec.allows(_entry(tag="MPAC_RESULT"))
        assert not spec.allows(_entry(tag="MPAC_RESULT", priority=Priority.DEBUG))
        assert not spec.allows(_entry(tag="Other", priority=Priority.FATAL))

    def test_default_is_verbose_and_s_silences(self) -> None:
        assert LogFilter.parse([]).allows(_entry(priority=Priority.VERBOSE))
        silent = LogFilter.parse(["MPAC_RESULT"], silent_default=True)
        assert silent.allows(_entry(tag="MPAC_RESULT", priority=Priority.VERBOSE))
        assert not silent.allows(_entry(tag="Other"))
        assert LogFilter.parse(["*:W"]).allows(_entry(priority=Priority.ERROR))
        assert not LogFilter.parse(["*:W"]).allows(_entry())
        # one argument holding several specs, as a quoted shell word
        assert LogFilter.parse(["Tag:E *:S"]).tags == (("Tag", Priority.ERROR),)

    @pytest.mark.parametrize("spec", [":I", "Tag:X"])
    def test_invalid_specs(self, spec: str) -> None:
        with pytest.raises(LogcatUsageError, match="Invalid filter expression"):
            LogFilter.parse([spec])


class TestOptions:
    def test_parse(self) -> None:
        options = LogcatOptions.parse(
            ["-d", "-v", "brief", "-b", "main,crash", "-s", "MPAC_RESULT:I"]
        )
        assert options.dump
        assert options.fmt == "brief"
        assert options.buffers == ("main", "crash")
        assert options.filter == LogFilter((("MPAC_RESULT", Priority.INFO),), Priority.SILENT)

    def test_tail_counts_and_attached_values(self) -> None:
        assert LogcatOptions.parse(["-t", "5"]).tail == 5
        assert LogcatOptions.parse(["-t", "5"]).dump  # -t implies -d
        follow = LogcatOptions.parse(["-T5", "-vtag", "-m", "2", "--pid=77", "-e", "r-1"])
        assert (follow.tail, follow.dump, follow.fmt, follow.max_count, follow.pid) == (
            5,
            False,
            "tag",
            2,
            77,
        )
        assert follow.regex is not None
        assert LogcatOptions.parse(["-b", "all"]).buffers == (
            "main",
            "system",
            "radio",
            "events",
            "crash",
        )
        assert LogcatOptions.parse(["-c"]).clear

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["-x"], "Unknown option '-x'"),
            (["-v", "json"], 'Invalid parameter "json" to -v'),
            (["-t"], "option requires an argument"),
            (["-t", "01-01 00:00:00.000"], "invalid integer"),
            (["-b", "kernel"], "unknown buffer kernel"),
            (["-e", "("], "invalid regex"),
        ],
    )
    def test_errors(self, argv: list[str], message: str) -> None:
        with pytest.raises(LogcatUsageError, match=message):
            LogcatOptions.parse(argv)


class TestBuffers:
    def test_ring_buffer_drops_the_oldest(self) -> None:
        log = _logcat(capacity=3)
        for n in range(5):
            log.write(Priority.INFO, "T", str(n), pid=1)
        assert [e.message for e in log.entries()] == ["2", "3", "4"]

    def test_buffers_are_separate_and_merged_in_order(self) -> None:
        log = _logcat()
        log.write(Priority.INFO, "A", "main 1", pid=1)
        log.write(Priority.INFO, "S", "system", pid=2, buffer="system")
        log.write(Priority.INFO, "A", "main 2", pid=1)
        assert [e.message for e in log.entries()] == ["main 1", "system", "main 2"]
        assert [e.message for e in log.entries(["system"])] == ["system"]
        log.clear(["main"])
        assert [e.message for e in log.entries()] == ["system"]
        with pytest.raises(ValueError, match="unknown log buffer"):
            log.write(Priority.INFO, "A", "x", pid=1, buffer="nope")

    def test_dump_and_tail(self) -> None:
        log = _logcat()
        for n in range(4):
            log.write(Priority.INFO, "T", f"m{n}", pid=1, tid=2)
        assert log.dump(fmt="raw", tail=2) == ["m2", "m3"]
        assert log.dump(fmt="raw", tail=0) == []
        assert log.dump(LogFilter.parse(["*:E"])) == []
        assert log.dump(tail=1) == ["01-15 10:23:45.123     1     2 I T       : m3"]

    def test_messages_are_cut_at_the_payload_limit(self) -> None:
        log = _logcat()
        entry = log.write(Priority.INFO, "Tag", "é" * 5000, pid=1)
        assert len(entry.message.encode()) <= MAX_PAYLOAD_BYTES - len("Tag") - 3
        assert entry.message == "é" * len(entry.message)


async def _collect(log: Logcat, options: LogcatOptions) -> list[str]:
    return [line async for line in log.run(options)]


class TestRun:
    def test_dump_prints_buffer_dividers(self) -> None:
        log = _logcat()
        log.write(Priority.INFO, "A", "main", pid=1)
        log.write(Priority.INFO, "S", "sys", pid=2, buffer="system")
        log.write(Priority.DEBUG, "A", "main again", pid=1)
        lines = asyncio.run(_collect(log, LogcatOptions.parse(["-d", "-v", "tag"])))
        assert lines == [
            "--------- beginning of main",
            "I/A       : main",
            "--------- beginning of system",
            "I/S       : sys",
            "D/A       : main again",
        ]
        only = asyncio.run(_collect(log, LogcatOptions.parse(["-d", "-s", "S", "-v", "tag"])))
        assert only == ["--------- beginning of system", "I/S       : sys"]
        counted = asyncio.run(_collect(log, LogcatOptions.parse(["-d", "-m", "1", "-v", "raw"])))
        assert counted == ["--------- beginning of main", "main"]
        by_regex = asyncio.run(
            _collect(log, LogcatOptions.parse(["-d", "-e", "again$", "-v", "raw"]))
        )
        assert by_regex == ["--------- beginning of main", "main again"]
        by_pid = asyncio.run(_collect(log, LogcatOptions.parse(["-d", "--pid", "2", "-v", "raw"])))
        assert by_pid == ["--------- beginning of system", "sys"]

    def test_clear(self) -> None:
        log = _logcat()
        log.write(Priority.INFO, "A", "x", pid=1)
        assert asyncio.run(_collect(log, LogcatOptions.parse(["-c"]))) == []
        assert log.entries() == []

    def test_follow_gets_the_tail_then_new_lines(self) -> None:
        async def scenario() -> list[str]:
            log = _logcat()
            for n in range(3):
                log.write(Priority.INFO, "T", f"old{n}", pid=1)
            reader = asyncio.ensure_future(
                _collect(
                    log, LogcatOptions.parse(["-T", "1", "-m", "3", "-v", "raw", "T:I", "*:S"])
                )
            )
            await asyncio.sleep(0)
            log.write(Priority.INFO, "Other", "ignored", pid=1)
            log.write(Priority.INFO, "T", "new1", pid=1)
            log.write(Priority.INFO, "T", "new2", pid=1)
            log.write(Priority.INFO, "T", "new3", pid=1)
            return await asyncio.wait_for(reader, 2)

        assert asyncio.run(scenario()) == ["--------- beginning of main", "old2", "new1", "new2"]

    def test_follow_receives_writes_from_other_threads(self) -> None:
        async def scenario() -> list[str]:
            log = _logcat()
            reader = asyncio.ensure_future(
                _collect(log, LogcatOptions.parse(["-T", "0", "-m", "1", "-v", "raw"]))
            )
            await asyncio.sleep(0)
            thread = threading.Thread(
                target=lambda: log.write(Priority.INFO, "T", "from a thread", pid=9)
            )
            thread.start()
            thread.join()
            return await asyncio.wait_for(reader, 2)

        assert asyncio.run(scenario()) == ["--------- beginning of main", "from a thread"]

    def test_followers_unsubscribe(self) -> None:
        async def scenario() -> int:
            log = _logcat()
            stream = log.follow()
            log.write(Priority.INFO, "T", "x", pid=1)
            assert (await anext(stream)).message == "x"
            await stream.aclose()
            return len(log._subscribers)

        assert asyncio.run(scenario()) == 0
