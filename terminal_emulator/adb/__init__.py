"""The device side of ADB over TCP: what ``adb connect`` and adb-shell talk to on an emulated
terminal. See docs/adb-endpoint.md."""

from terminal_emulator.adb.auth import AdbKeyStore, AdbPublicKey
from terminal_emulator.adb.executor import (
    CommandShell,
    ShellCommand,
    ShellExecutor,
    ShellSyntaxError,
    Writer,
    not_found_message,
    parse_command_list,
    split_command,
)
from terminal_emulator.adb.server import AdbDeviceServer, default_port
from terminal_emulator.adb.session import DeviceIdentity

__all__ = [
    "AdbDeviceServer",
    "AdbKeyStore",
    "AdbPublicKey",
    "CommandShell",
    "DeviceIdentity",
    "ShellCommand",
    "ShellExecutor",
    "ShellSyntaxError",
    "Writer",
    "default_port",
    "not_found_message",
    "parse_command_list",
    "split_command",
]
