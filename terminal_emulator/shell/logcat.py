"""``logcat``: dump (``-d``, ``-t N``), follow (until the host closes the stream: the command
is cancelled), clear (``-c``), ``-s``, filter specs (``TAG:I *:S``), ``-v FORMAT``, ``-T N``,
``-m N``, ``-b BUFFERS``, ``-e REGEX``, ``--pid N``, and ``ANDROID_LOG_TAGS`` (what ``adb
logcat`` exports) when the command line names no filter spec."""

from __future__ import annotations

from dataclasses import dataclass

from terminal_emulator.adb import Writer
from terminal_emulator.android import Device, LogcatOptions, LogcatUsageError, LogFilter
from terminal_emulator.shell.common import SHELL_ENV, Stdin, println, write_lines


def _env_filter_specs() -> list[str]:
    env = SHELL_ENV.get() or {}
    value = env.get("ANDROID_LOG_TAGS", "")
    # adb sends ANDROID_LOG_TAGS="''" (its host variable, empty, shell-quoted): no filter.
    value = value.replace("'", " ").replace('"', " ").strip()
    return value.split() if value else []


def parse_logcat_args(argv: list[str]) -> LogcatOptions:
    options = LogcatOptions.parse(argv)
    silent = "-s" in argv
    default = LogFilter.parse([], silent_default=silent)
    if options.filter == default:
        env_specs = _env_filter_specs()
        if env_specs:
            options.filter = LogFilter.parse(env_specs, silent_default=silent)
    return options


@dataclass
class LogcatCommand:
    device: Device

    async def __call__(self, argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
        try:
            options = parse_logcat_args(argv[1:])
        except LogcatUsageError as error:
            await println(stderr, f"logcat: {error}")
            return 1
        logcat = self.device.logcat  # thread-safe: runs on this loop, whichever it is
        if options.dump or options.clear:
            lines = [line async for line in logcat.run(options)]
            await write_lines(stdout, lines)
            return 0
        lines_out = logcat.run(options)
        try:
            async for line in lines_out:
                await println(stdout, line)
        finally:
            await lines_out.aclose()  # type: ignore[attr-defined]
        return 0
