"""What the device's commands share: argument reading as Android's ``ShellCommand`` does it,
Java-style failures, output helpers and running work on the device's event loop."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

from terminal_emulator.adb import Writer
from terminal_emulator.android import Device

T = TypeVar("T")
Stdin = AsyncIterator[bytes] | None

#: What ``ShellCommand.exec`` returns after ``handleDefaultCommands`` or an exception: -1.
EXIT_SHELL_COMMAND_FAILED = 255

#: The variables ``export`` set in the command line being run (``adb logcat`` sends
#: ``export ANDROID_LOG_TAGS="''"; exec logcat``); one mapping per ``run`` of the shell.
SHELL_ENV: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "mpac_shell_env", default=None
)


class JavaException(Exception):
    """A failure that Android's command would report as a thrown Java exception:
    ``ShellCommand.exec`` prints it with its stack trace to stderr and exits 255."""

    def __init__(self, java_class: str, message: str, frame: str) -> None:
        super().__init__(message)
        self.java_class = java_class
        self.message = message
        self.frame = frame

    def text(self, command: str | None) -> str:
        where = f"'{command}'" if command else "''"
        return (
            f"\nException occurred while executing {where}:\n"
            f"{self.java_class}: {self.message}\n"
            f"\tat {self.frame}\n"
        )


def illegal_argument(
    message: str, frame: str = "android.content.Intent.parseCommandArgs(Intent.java:11543)"
) -> JavaException:
    return JavaException("java.lang.IllegalArgumentException", message, frame)


def number_format(
    text: str, frame: str = "android.content.Intent.parseCommandArgs(Intent.java:11543)"
) -> JavaException:
    message = "Zero length string" if text == "" else f'For input string: "{text}"'
    return JavaException("java.lang.NumberFormatException", message, frame)


class Args:
    """The argument cursor of Android's ``ShellCommand``: ``next_option`` (``-x``, ``--xx``;
    ``--`` ends the options), ``next_arg``, ``next_arg_required``."""

    def __init__(self, args: Iterable[str], frame: str) -> None:
        self.args = list(args)
        self.pos = 0
        self.frame = frame
        self._last = ""

    def peek(self) -> str | None:
        return self.args[self.pos] if self.pos < len(self.args) else None

    def next_option(self) -> str | None:
        arg = self.peek()
        if arg is None or not arg.startswith("-") or arg == "-":
            return None
        self.pos += 1
        if arg == "--":
            return None
        self._last = arg
        return arg

    def next_arg(self) -> str | None:
        arg = self.peek()
        if arg is None:
            return None
        self.pos += 1
        self._last = arg
        return arg

    def next_arg_required(self) -> str:
        previous = self._last
        arg = self.next_arg()
        if arg is None:
            raise illegal_argument(f'Argument expected after "{previous}"', self.frame)
        return arg

    def remaining(self) -> list[str]:
        rest = self.args[self.pos :]
        self.pos = len(self.args)
        return rest


async def write_lines(writer: Writer, lines: Iterable[str], chunk_bytes: int = 32 * 1024) -> None:
    """Lines, each ended by a newline, in few writes (a dump may hold thousands of lines)."""
    pending: list[bytes] = []
    size = 0
    for line in lines:
        data = (line + "\n").encode("utf-8", "surrogateescape")
        pending.append(data)
        size += len(data)
        if size >= chunk_bytes:
            await writer.write(b"".join(pending))
            pending, size = [], 0
    if pending:
        await writer.write(b"".join(pending))


async def println(writer: Writer, text: str = "") -> None:
    await writer.write((text + "\n").encode("utf-8", "surrogateescape"))


async def on_device(device: Device, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` on the device's event loop and wait for it from this one.

    The ADB server may run on another loop (another thread) than the device (a
    ``DeviceThread``); the device's objects must only be touched from its own loop. If the
    command is cancelled (the host closed the stream), the work on the device is cancelled too.
    """
    loop = device.loop
    if loop is asyncio.get_running_loop():
        return await work()

    async def wrapped() -> T:
        return await work()

    future = asyncio.run_coroutine_threadsafe(wrapped(), loop)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        future.cancel()
        raise


async def call_on_device(device: Device, work: Callable[[], T]) -> T:
    """A synchronous device call (``am.force_stop``...) made on the device's loop."""

    async def run() -> T:
        return work()

    return await on_device(device, run)
