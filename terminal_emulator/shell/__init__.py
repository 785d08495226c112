"""The emulated terminal's shell: the commands a host runs over ADB (``am``, ``pm``, ``cmd``,
``logcat``, ``getprop``, ``input``), with Android's output, and the ADB wiring of a device.
See docs/terminal-emulator.md, "ADB and the shell"."""

from terminal_emulator.shell.am import FLAG_RECEIVER_FROM_SHELL, Am, parse_intent
from terminal_emulator.shell.endpoint import identity_of, start_adb_endpoint
from terminal_emulator.shell.executor import DeviceShell, device_of, executor_for
from terminal_emulator.shell.input import (
    KEYCODES,
    InputEvent,
    InputListener,
    add_input_listener,
    input_listeners,
    remove_input_listener,
)

__all__ = [
    "FLAG_RECEIVER_FROM_SHELL",
    "KEYCODES",
    "Am",
    "DeviceShell",
    "InputEvent",
    "InputListener",
    "add_input_listener",
    "device_of",
    "executor_for",
    "identity_of",
    "input_listeners",
    "parse_intent",
    "remove_input_listener",
    "start_adb_endpoint",
]
