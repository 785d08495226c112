"""``executor_for(device)``: the device's shell, what ``adb shell`` runs on the terminal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from terminal_emulator.adb import CommandShell, ShellCommand, Writer
from terminal_emulator.android import Device
from terminal_emulator.hardware import SimulatedCardReader
from terminal_emulator.shell.am import Am
from terminal_emulator.shell.cardreader import CardReaderCommand
from terminal_emulator.shell.common import SHELL_ENV, Stdin
from terminal_emulator.shell.input import Input
from terminal_emulator.shell.logcat import LogcatCommand
from terminal_emulator.shell.pm import Pm
from terminal_emulator.shell.system import Cmd, Getprop


def device_of(device_or_terminal: Any) -> Device:
    """The Device itself, or the ``.device`` of a terminal object."""
    if isinstance(device_or_terminal, Device):
        return device_or_terminal
    device = getattr(device_or_terminal, "device", None)
    if isinstance(device, Device):
        return device
    raise TypeError(f"not a Device nor something with a .device: {device_or_terminal!r}")


async def _export(argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
    """mksh's ``export NAME=VALUE...``: kept for the rest of the command line."""
    env = SHELL_ENV.get()
    if env is not None:
        for word in argv[1:]:
            name, sep, value = word.partition("=")
            if sep:
                env[name] = value
    return 0


class DeviceShell(CommandShell):
    """A ``CommandShell`` with the device's commands and per-line ``export`` variables."""

    def __init__(self, device: Device, extra: dict[str, ShellCommand] | None = None) -> None:
        self.device = device
        am, pm, input_command = Am(device), Pm(device), Input(device)
        commands: dict[str, ShellCommand] = {
            "am": am,
            "pm": pm,
            "logcat": LogcatCommand(device),
            "getprop": Getprop(device),
            "input": input_command,
            "export": _export,
        }
        commands["cmd"] = Cmd(device, {"activity": am, "package": pm, "input": input_command})
        commands.update(extra or {})
        super().__init__(commands)

    async def run(
        self,
        command: str,
        stdin: AsyncIterator[bytes] | None,
        stdout: Writer,
        stderr: Writer,
    ) -> int:
        token = SHELL_ENV.set({})
        try:
            return await super().run(command, stdin, stdout, stderr)
        finally:
            SHELL_ENV.reset(token)


def executor_for(device_or_terminal: Any) -> DeviceShell:
    """The ShellExecutor of a device (or of a terminal holding one in ``.device``): ``am``,
    ``pm``, ``cmd``, ``logcat``, ``getprop``, ``input`` and the shell's built-ins, plus the
    emulator-only ``cardreader`` when the terminal's ``card_reader`` is the simulated one (a
    terminal with another reader, like a real device, has no such command).

    Commands may run on another event loop than the device's (the ADB server in its own
    thread): work on the device is handed to the device's loop.
    """
    extra: dict[str, ShellCommand] = {}
    reader = getattr(device_or_terminal, "card_reader", None)
    if isinstance(reader, SimulatedCardReader):
        extra["cardreader"] = CardReaderCommand(reader)
    return DeviceShell(device_of(device_or_terminal), extra)
