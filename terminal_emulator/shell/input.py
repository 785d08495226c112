"""``input``: key events, taps, swipes and text, handed to whoever drives the screen.

The runtime has no screen; the apps or the Kivy UI register a listener for a device
(``add_input_listener(device, listener)``) and receive an :class:`InputEvent` for every
``input keyevent KEYCODE_X|N``, ``input tap X Y``, ``input swipe X1 Y1 X2 Y2 [MS]`` and
``input text TEXT``. Listeners run on the device's event loop and may be coroutines (awaited
before the command returns). With no listener the event is accepted and dropped, as Android
does when nothing has focus.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from terminal_emulator.adb import Writer
from terminal_emulator.android import Device
from terminal_emulator.shell.common import (
    EXIT_SHELL_COMMAND_FAILED,
    JavaException,
    Stdin,
    on_device,
    println,
)

_INPUT_FRAME = "com.android.server.input.InputShellCommand.onCommand(InputShellCommand.java:186)"


@dataclass(frozen=True)
class InputEvent:
    """``kind``: ``key`` (``keycode``, ``key_name``, ``longpress``), ``tap`` (``x``, ``y``),
    ``swipe`` (``x``, ``y`` to ``x2``, ``y2`` in ``duration_ms``), ``text`` (``text``)."""

    kind: str
    keycode: int | None = None
    key_name: str | None = None
    longpress: bool = False
    x: float | None = None
    y: float | None = None
    x2: float | None = None
    y2: float | None = None
    duration_ms: int | None = None
    text: str | None = None
    source: str | None = None


InputListener = Callable[[InputEvent], Awaitable[None] | None]

_LISTENERS: weakref.WeakKeyDictionary[Device, list[InputListener]] = weakref.WeakKeyDictionary()


def add_input_listener(device: Device, listener: InputListener) -> None:
    """``listener(event)`` for every ``input`` command run on ``device``'s shell."""
    _LISTENERS.setdefault(device, []).append(listener)


def remove_input_listener(device: Device, listener: InputListener) -> None:
    listeners = _LISTENERS.get(device, [])
    if listener in listeners:
        listeners.remove(listener)


def input_listeners(device: Device) -> list[InputListener]:
    return list(_LISTENERS.get(device, []))


# android.view.KeyEvent key codes (the ones a POS terminal and its tests use).
KEYCODES: dict[str, int] = {
    "UNKNOWN": 0,
    "SOFT_LEFT": 1,
    "SOFT_RIGHT": 2,
    "HOME": 3,
    "BACK": 4,
    "CALL": 5,
    "ENDCALL": 6,
    **{str(digit): 7 + digit for digit in range(10)},
    "STAR": 17,
    "POUND": 18,
    "DPAD_UP": 19,
    "DPAD_DOWN": 20,
    "DPAD_LEFT": 21,
    "DPAD_RIGHT": 22,
    "DPAD_CENTER": 23,
    "VOLUME_UP": 24,
    "VOLUME_DOWN": 25,
    "POWER": 26,
    "CAMERA": 27,
    "CLEAR": 28,
    **{chr(ord("A") + index): 29 + index for index in range(26)},
    "COMMA": 55,
    "PERIOD": 56,
    "TAB": 61,
    "SPACE": 62,
    "ENTER": 66,
    "DEL": 67,
    "MINUS": 69,
    "EQUALS": 70,
    "AT": 77,
    "PLUS": 81,
    "MENU": 82,
    "SEARCH": 84,
    "PAGE_UP": 92,
    "PAGE_DOWN": 93,
    "ESCAPE": 111,
    "FORWARD_DEL": 112,
    "MOVE_HOME": 122,
    "MOVE_END": 123,
    **{f"NUMPAD_{digit}": 144 + digit for digit in range(10)},
    "NUMPAD_ENTER": 160,
    "APP_SWITCH": 187,
    "SLEEP": 223,
    "WAKEUP": 224,
}
KEYCODE_NAMES = {code: f"KEYCODE_{name}" for name, code in KEYCODES.items()}
_SOURCES = frozenset(
    {
        "keyboard",
        "dpad",
        "gamepad",
        "touchscreen",
        "touchpad",
        "touchnavigation",
        "mouse",
        "stylus",
        "trackball",
        "joystick",
        "rotaryencoder",
        "keyboard_source",
    }
)


def keycode_from_string(text: str) -> int | None:
    """``KeyEvent.keyCodeFromString``: ``KEYCODE_ENTER``, ``ENTER`` or ``66``."""
    if text.isdigit():
        return int(text)
    name = text.removeprefix("KEYCODE_")
    return KEYCODES.get(name)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise JavaException(
            "java.lang.NumberFormatException", f'For input string: "{text}"', _INPUT_FRAME
        ) from None


@dataclass
class Input:
    device: Device

    async def __call__(self, argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
        words = argv[1:]
        source = None
        if words and words[0] in _SOURCES:
            source, words = words[0], words[1:]
        if not words:
            await stdout.write(INPUT_HELP.encode())
            return EXIT_SHELL_COMMAND_FAILED
        command, rest = words[0], words[1:]
        try:
            events = self._events(command, rest, source)
        except JavaException as error:
            await stderr.write(error.text(command).encode())
            return EXIT_SHELL_COMMAND_FAILED
        if events is None:
            await println(stderr, f"Error: Unknown command: {command}")
            await stdout.write(INPUT_HELP.encode())
            return EXIT_SHELL_COMMAND_FAILED
        if isinstance(events, str):
            await stdout.write(INPUT_HELP.encode())
            return EXIT_SHELL_COMMAND_FAILED
        for event in events:
            await self._deliver(event)
        return 0

    def _events(
        self, command: str, rest: list[str], source: str | None
    ) -> list[InputEvent] | str | None:
        if command == "keyevent":
            longpress = False
            while rest and rest[0] in ("--longpress", "--doubletap"):
                longpress = longpress or rest[0] == "--longpress"
                rest = rest[1:]
            if not rest:
                return "usage"
            events = []
            for word in rest:
                code = keycode_from_string(word)
                if code is None:
                    raise JavaException(
                        "java.lang.IllegalArgumentException",
                        f"Unknown keycode: {word}",
                        _INPUT_FRAME,
                    )
                events.append(
                    InputEvent(
                        "key",
                        keycode=code,
                        key_name=KEYCODE_NAMES.get(code, str(code)),
                        longpress=longpress,
                        source=source,
                    )
                )
            return events
        if command == "tap":
            if len(rest) != 2:
                return "usage"
            return [InputEvent("tap", x=_float(rest[0]), y=_float(rest[1]), source=source)]
        if command in ("swipe", "draganddrop"):
            if len(rest) not in (4, 5):
                return "usage"
            duration = int(_float(rest[4])) if len(rest) == 5 else None
            return [
                InputEvent(
                    "swipe",
                    x=_float(rest[0]),
                    y=_float(rest[1]),
                    x2=_float(rest[2]),
                    y2=_float(rest[3]),
                    duration_ms=duration,
                    source=source,
                )
            ]
        if command == "text":
            if len(rest) != 1:
                return "usage"
            # Android's input text turns %s into spaces.
            return [InputEvent("text", text=rest[0].replace("%s", " "), source=source)]
        return None

    async def _deliver(self, event: InputEvent) -> None:
        listeners = input_listeners(self.device)
        if not listeners:
            return

        async def deliver() -> None:
            for listener in listeners:
                outcome = listener(event)
                if inspect.isawaitable(outcome):
                    await outcome

        await on_device(self.device, deliver)


INPUT_HELP = """\
Usage: input [<source>] <command> [<arg>...]

The sources are:
      dpad
      keyboard
      mouse
      touchpad
      gamepad
      touchnavigation
      joystick
      touchscreen
      stylus
      trackball

The commands and default sources are:
      text <string> (Default: touchscreen)
      keyevent [--longpress|--doubletap] <key code number or name> ... (Default: keyboard)
      tap <x> <y> (Default: touchscreen)
      swipe <x1> <y1> <x2> <y2> [duration(ms)] (Default: touchscreen)
      draganddrop <x1> <y1> <x2> <y2> [duration(ms)] (Default: touchscreen)
"""
