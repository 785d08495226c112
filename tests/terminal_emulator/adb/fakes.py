"""A fake device shell for the ADB tests: a few commands with known, checkable output.

The real commands (am, pm, getprop, ...) live with the emulator; these exist to exercise the
protocol: sizes, timing, stdin, stderr, exit codes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from terminal_emulator.adb import CommandShell, ShellCommand, Writer

Stdin = AsyncIterator[bytes] | None


def pattern(size: int) -> bytes:
    """``size`` bytes that show any loss, duplication or reordering (not periodic in 4 KiB)."""
    line = b"".join(b"%07d|" % i for i in range(size // 8 + 1))
    return line[:size]


async def echo(argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
    await stdout.write((" ".join(argv[1:]) + "\n").encode())
    return 0


async def cat(argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
    if stdin is not None:
        async for data in stdin:
            await stdout.write(data)
    return 0


async def true(argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
    return 0


async def false(argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
    return 1


async def sleep(argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
    await asyncio.sleep(float(argv[1]))
    return 0


async def stream(argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
    """``stream COUNT [TAG]``: COUNT lines, one write each, yielding in between (logcat-like)."""
    tag = argv[2] if len(argv) > 2 else "line"
    for number in range(int(argv[1])):
        await stdout.write(f"{tag} {number}\n".encode())
        await asyncio.sleep(0)
    return 0


async def big(argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
    """``big SIZE``: ``pattern(SIZE)`` in a single write."""
    await stdout.write(pattern(int(argv[1])))
    return 0


async def printargs(argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
    """The arguments as a JSON list: shows exactly what quoting delivered."""
    await stdout.write(json.dumps(argv[1:], ensure_ascii=False).encode() + b"\n")
    return 0


async def warn(argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
    """``warn OUT ERR CODE``: OUT on stdout, ERR on stderr, exit CODE."""
    await stdout.write(argv[1].encode() + b"\n")
    await stderr.write(argv[2].encode() + b"\n")
    return int(argv[3])


async def logcat(argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
    await stdout.write(b"--------- beginning of main\n" + " ".join(argv).encode() + b"\n")
    return 0


async def crash(argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
    raise RuntimeError("a defect in an emulated command")


class Tracker:
    """Records whether a ``hang`` command was cancelled (the host closed its stream)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def hang(self, argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return 0


COMMANDS: dict[str, ShellCommand] = {
    "echo": echo,
    "cat": cat,
    "true": true,
    "false": false,
    "sleep": sleep,
    "stream": stream,
    "big": big,
    "printargs": printargs,
    "warn": warn,
    "crash": crash,
    "logcat": logcat,
}


def fake_shell(tracker: Tracker | None = None) -> CommandShell:
    commands = dict(COMMANDS)
    if tracker is not None:
        commands["hang"] = tracker.hang
    return CommandShell(commands)
