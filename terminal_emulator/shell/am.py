"""``am``: start activities, send broadcasts, stop apps; what Android 12's ``cmd activity``
(``ActivityManagerShellCommand``) prints, word for word.

* ``am start [-W] [-S] [--user N] INTENT`` prints ``Starting: Intent { ... }`` (before
  ``FLAG_ACTIVITY_NEW_TASK`` is added, as Android), with ``-W`` the ``Status: ok`` /
  ``LaunchState`` / ``Activity`` / ``TotalTime`` / ``WaitTime`` / ``Complete`` block. A missing
  component prints ``Error type 3`` and ``Error: Activity class {pkg/cls} does not exist.``, an
  implicit intent nothing handles ``Error: Activity not started, unable to resolve Intent {...}``
  (on stderr, or stdout with ``-W``), and exits 0, as Android 12 and 13 do (14 exits 1).
* ``am broadcast INTENT`` prints ``Broadcasting: Intent { ... flg=0x400000 ... }`` (Android
  adds FLAG_RECEIVER_FROM_SHELL first) and, once every receiver ran, ``Broadcast completed:
  result=N[, data="..."][, extras: Bundle[{...}]]``.
* ``am force-stop PKG``, ``am kill PKG``, ``am kill-all``: silent, also for unknown packages.
* Bad arguments are Java exceptions, as on a phone: ``Exception occurred while executing
  'start':`` + ``java.lang.IllegalArgumentException: Unknown option: --foo`` on stderr, exit 255;
  an unknown subcommand prints ``Unknown command: foo`` and exits 255.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field

from terminal_emulator.adb import Writer
from terminal_emulator.android import (
    ACTION_MAIN,
    CATEGORY_LAUNCHER,
    FLAG_ACTIVITY_NEW_TASK,
    ActivityNotFoundError,
    BroadcastResult,
    Bundle,
    ComponentName,
    Device,
    ExtraType,
    Intent,
    PackageNotFoundError,
    SecurityError,
    TypedValue,
)
from terminal_emulator.shell.common import (
    EXIT_SHELL_COMMAND_FAILED,
    Args,
    JavaException,
    Stdin,
    call_on_device,
    illegal_argument,
    number_format,
    on_device,
    println,
)

#: Intent.FLAG_RECEIVER_FROM_SHELL: ``am broadcast`` adds it before printing the intent.
FLAG_RECEIVER_FROM_SHELL = 0x00400000

_INTENT_FRAME = "android.content.Intent.parseCommandArgs(Intent.java:11543)"
_AM_FRAME = "com.android.server.am.ActivityManagerShellCommand.onCommand(ActivityManagerShellCommand.java:220)"
_USER_FRAME = "android.os.UserHandle.parseUserArg(UserHandle.java:536)"

USER_ALL = -1
USER_CURRENT = -2

# Options of Intent.parseCommandArgs that only set a flag.
_FLAG_OPTIONS = {
    "--grant-read-uri-permission": 0x00000001,
    "--grant-write-uri-permission": 0x00000002,
    "--grant-persistable-uri-permission": 0x00000040,
    "--grant-prefix-uri-permission": 0x00000080,
    "--exclude-stopped-packages": 0x00000010,
    "--include-stopped-packages": 0x00000020,
    "--debug-log-resolution": 0x00000008,
    "--activity-brought-to-front": 0x00400000,
    "--activity-clear-top": 0x04000000,
    "--activity-clear-when-task-reset": 0x00080000,
    "--activity-exclude-from-recents": 0x00800000,
    "--activity-launched-from-history": 0x00100000,
    "--activity-multiple-task": 0x08000000,
    "--activity-no-animation": 0x00010000,
    "--activity-no-history": 0x40000000,
    "--activity-no-user-action": 0x00040000,
    "--activity-previous-is-top": 0x01000000,
    "--activity-reorder-to-front": 0x00020000,
    "--activity-reset-task-if-needed": 0x00200000,
    "--activity-single-top": 0x20000000,
    "--activity-clear-task": 0x00008000,
    "--activity-task-on-home": 0x00004000,
    "--activity-match-external": 0x00000800,
    "--receiver-registered-only": 0x40000000,
    "--receiver-replace-pending": 0x20000000,
    "--receiver-foreground": 0x10000000,
    "--receiver-no-abort": 0x08000000,
    "--receiver-include-background": 0x01000000,
}

# Options of ActivityManagerShellCommand.makeIntent (accepted by every intent command, as
# there): those taking a value, and those that are switches.
_AM_VALUE_OPTIONS = frozenset(
    {
        "-P",
        "--start-profiler",
        "--sampling",
        "--attach-agent",
        "--attach-agent-bind",
        "-R",
        "--user",
        "--receiver-permission",
        "--display",
        "--windowingMode",
        "--activityType",
        "--task",
    }
)
_AM_SWITCHES = frozenset(
    {
        "-D",
        "-N",
        "-W",
        "-S",
        "--streaming",
        "--track-allocation",
        "--task-overlay",
        "--lock-task",
        "--allow-background-activity-starts",
    }
)

_INT_DIGITS = {
    10: re.compile(r"^[0-9]+$"),
    16: re.compile(r"^[0-9a-fA-F]+$"),
    8: re.compile(r"^[0-7]+$"),
}
_LONG_RE = re.compile(r"^[+-]?[0-9]+$")
_FLOAT_RE = re.compile(r"^[+-]?(NaN|Infinity|((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)[fFdD]?)$")


def java_decode_int(text: str, bits: int = 32) -> int:
    """Java's ``Integer.decode``: optional sign, then ``0x``/``0X``/``#`` (hex), ``0`` (octal)
    or decimal; NumberFormatException when malformed or out of range."""
    body = text
    negative = False
    if body[:1] in ("+", "-"):
        negative = body[0] == "-"
        body = body[1:]
    if body[:2] in ("0x", "0X"):
        radix, body = 16, body[2:]
    elif body[:1] == "#":
        radix, body = 16, body[1:]
    elif body[:1] == "0" and len(body) > 1:
        radix, body = 8, body[1:]
    else:
        radix = 10
    if not body or not _INT_DIGITS[radix].match(body):
        raise number_format(text)
    value = -int(body, radix) if negative else int(body, radix)
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise number_format(text)
    return value


def java_parse_long(text: str) -> int:
    if not _LONG_RE.match(text):
        raise number_format(text)
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise number_format(text)
    return value


def java_parse_float(text: str) -> float:
    stripped = text.strip()
    if not _FLOAT_RE.match(stripped):
        raise number_format(text)
    if stripped[-1:] in ("f", "F", "d", "D") and stripped.lstrip("+-") not in ("NaN", "Infinity"):
        stripped = stripped[:-1]
    return float(stripped.replace("Infinity", "inf").replace("NaN", "nan"))


def java_split(text: str, pattern: str) -> list[str]:
    """Java's ``String.split(regex)``: trailing empty strings are dropped."""
    parts = re.split(pattern, text)
    if len(parts) == 1:
        return parts
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def parse_user(text: str) -> int:
    """Android's ``UserHandle.parseUserArg``."""
    if text == "all":
        return USER_ALL
    if text in ("current", "cur"):
        return USER_CURRENT
    try:
        return int(text)
    except ValueError:
        raise JavaException(
            "java.lang.IllegalArgumentException", f"Bad user number: {text}", _USER_FRAME
        ) from None


@dataclass
class AmOptions:
    """The ``am`` options around the intent (``-W``, ``-S``, ``--user``, ...)."""

    wait: bool = False
    stop_first: bool = False
    repeat: int = 0
    user: int = USER_CURRENT
    receiver_permission: str | None = None
    ignored: list[str] = field(default_factory=list)


def _bool_extra(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "t"):
        return True
    if lowered in ("false", "f"):
        return False
    try:
        return java_decode_int(value) != 0
    except JavaException:
        raise illegal_argument(f"Invalid boolean value: {value}") from None


def _component(text: str) -> ComponentName:
    try:
        return ComponentName.unflatten(text)
    except ValueError:
        raise illegal_argument(f"Bad component name: {text}") from None


def _put_extra(extras: Bundle, option: str, args: Args) -> None:
    key = args.next_arg_required()
    if option == "--esn":
        extras.put_null(key)
        return
    value = args.next_arg_required()
    if option in ("-e", "--es", "--eu"):
        extras.put_string(key, value)
    elif option == "--ecn":
        extras.put_string(key, _component(value).flatten())
    elif option == "--ei":
        extras.put_int(key, java_decode_int(value))
    elif option == "--el":
        extras.put_long(key, java_parse_long(value))
    elif option == "--ef":
        extras.put(key, TypedValue(ExtraType.FLOAT, java_parse_float(value)))
    elif option == "--ed":
        extras.put(key, TypedValue(ExtraType.DOUBLE, java_parse_float(value)))
    elif option == "--ez":
        extras.put_boolean(key, _bool_extra(value))
    elif option in ("--eia", "--eial"):
        extras.put_int_array(key, [java_decode_int(item) for item in java_split(value, ",")])
    elif option in ("--ela", "--elal"):
        extras.put_long_array(key, [java_parse_long(item) for item in java_split(value, ",")])
    elif option in ("--esa", "--esal"):
        items = java_split(value, r"(?<!\\),")
        extras.put_string_array(key, [item.replace("\\,", ",") for item in items])
    else:  # pragma: no cover - the caller only passes the options above
        raise illegal_argument(f"Unknown option: {option}")


_EXTRA_OPTIONS = frozenset(
    {
        "-e",
        "--es",
        "--esn",
        "--eu",
        "--ecn",
        "--ei",
        "--el",
        "--ef",
        "--ed",
        "--ez",
        "--eia",
        "--eial",
        "--ela",
        "--elal",
        "--esa",
        "--esal",
    }
)
_UNSUPPORTED_EXTRAS = frozenset({"--efa", "--efal", "--eda", "--edal"})


def parse_intent(args: Args, options: AmOptions) -> Intent:
    """``Intent.parseCommandArgs`` with ``am``'s option handler, then the optional trailing
    URI, component (``pkg/.Cls``) or package, merged as Android's ``Intent.fillIn`` does."""
    intent = Intent()
    extras = Bundle()
    has_intent_info = False
    while (option := args.next_option()) is not None:
        if option == "-a":
            intent.action = args.next_arg_required()
            has_intent_info = True
        elif option == "-d":
            intent.data = args.next_arg_required()
            has_intent_info = True
        elif option in ("-t", "-i"):
            args.next_arg_required()  # MIME type, identifier: not modelled by the runtime
            has_intent_info = True
        elif option == "-c":
            intent.add_category(args.next_arg_required())
            has_intent_info = True
        elif option in _EXTRA_OPTIONS:
            _put_extra(extras, option, args)
        elif option in _UNSUPPORTED_EXTRAS:
            raise illegal_argument(f"{option}: float and double arrays are not supported here")
        elif option == "-n":
            intent.component = _component(args.next_arg_required())
            has_intent_info = True
        elif option == "-p":
            intent.package = args.next_arg_required()
            has_intent_info = True
        elif option == "-f":
            intent.add_flags(java_decode_int(args.next_arg_required()) & 0xFFFFFFFF)
        elif option in _FLAG_OPTIONS:
            intent.add_flags(_FLAG_OPTIONS[option])
        elif option == "--selector":
            raise illegal_argument("--selector is not supported here")
        elif option in _AM_SWITCHES:
            if option == "-W":
                options.wait = True
            elif option == "-S":
                options.stop_first = True
            else:
                options.ignored.append(option)
        elif option in _AM_VALUE_OPTIONS:
            value = args.next_arg_required()
            if option == "--user":
                options.user = parse_user(value)
            elif option == "--receiver-permission":
                options.receiver_permission = value  # accepted; the runtime has no permissions
            elif option == "-R":
                options.repeat = java_decode_int(value)
            else:
                options.ignored.append(option)
        else:
            raise illegal_argument(f"Unknown option: {option}")
    intent.extras = extras
    target = args.next_arg()
    if target is not None:
        _fill_in(intent, target)
    elif not has_intent_info:
        raise illegal_argument("No intent supplied")
    return intent


def _fill_in(intent: Intent, target: str) -> None:
    if ":" in target:
        base = Intent(data=target)  # a URI (intent: URIs are taken as plain data)
    elif "/" in target:
        base = Intent(ACTION_MAIN, categories=[CATEGORY_LAUNCHER], component=_component(target))
    else:
        base = Intent(ACTION_MAIN, categories=[CATEGORY_LAUNCHER], package=target)
    if intent.action is not None:
        base.categories.clear()
    if intent.action is None:
        intent.action = base.action
    if intent.data is None:
        intent.data = base.data
    if not intent.categories:
        intent.categories = set(base.categories)
    if intent.package is None and intent.component is None:
        intent.package = base.package
    if base.component is not None:
        intent.component = base.component


@dataclass
class Am:
    device: Device

    async def __call__(self, argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
        args = Args(argv[1:], _AM_FRAME)
        command = args.next_arg()
        if command is None or command in ("help", "-h"):
            await stdout.write(AM_HELP.encode())
            return EXIT_SHELL_COMMAND_FAILED
        handler = {
            "start": self.start,
            "start-activity": self.start,
            "broadcast": self.broadcast,
            "force-stop": self.force_stop,
            "kill": self.kill,
            "kill-all": self.kill_all,
        }.get(command)
        if handler is None:
            await println(stdout, f"Unknown command: {command}")
            return EXIT_SHELL_COMMAND_FAILED
        try:
            return await handler(args, stdout, stderr)
        except JavaException as error:
            await stderr.write(error.text(command).encode())
            return EXIT_SHELL_COMMAND_FAILED

    async def start(self, args: Args, stdout: Writer, stderr: Writer) -> int:
        options = AmOptions()
        intent = parse_intent(args, options)
        if options.user == USER_ALL:
            await println(stderr, "Error: Can't start service with user 'all'")
            return 1
        device = self.device
        if options.stop_first:
            found = await call_on_device(device, lambda: device.pm.resolve_activity(intent))
            if found is None:
                await println(stderr, f"Error: Intent does not match any activities: {intent}")
                return 1
            package = found.component.package
            await call_on_device(device, lambda: device.am.force_stop(package))
        await println(stdout, f"Starting: {intent}")
        intent.add_flags(FLAG_ACTIVITY_NEW_TASK)
        out = stdout if options.wait else stderr
        began = time.monotonic()
        try:
            started = await call_on_device(device, lambda: device.am.start_activity(intent))
        except ActivityNotFoundError:
            if intent.component is not None:
                await println(out, "Error type 3")
                await println(
                    out,
                    f"Error: Activity class {{{intent.component.flatten()}}} does not exist.",
                )
            else:
                await println(out, f"Error: Activity not started, unable to resolve {intent}")
            return 0
        except SecurityError as denial:
            raise JavaException(
                "java.lang.SecurityException",
                str(denial),
                "android.os.Parcel.createExceptionOrNull(Parcel.java:2425)",
            ) from None
        if options.wait:
            total_ms = max(1, round((time.monotonic() - began) * 1000))
            lines = []
            if started.launch_state is not None:
                lines += ["Status: ok", f"LaunchState: {started.launch_state}"]
            else:
                lines += ["Status: timeout"]
            lines.append(f"Activity: {started.component.flatten_short()}")
            if started.launch_state is not None:
                lines.append(f"TotalTime: {total_ms}")
            lines += [f"WaitTime: {total_ms + 2}", "Complete"]
            await stdout.write(("\n".join(lines) + "\n").encode())
        return 0

    async def broadcast(self, args: Args, stdout: Writer, stderr: Writer) -> int:
        options = AmOptions()
        intent = parse_intent(args, options)
        intent.add_flags(FLAG_RECEIVER_FROM_SHELL)
        await println(stdout, f"Broadcasting: {intent}")
        device = self.device
        task = await call_on_device(device, lambda: device.am.send_ordered_broadcast(intent))

        async def finished() -> BroadcastResult:
            # A host that stops listening does not stop the broadcast (as on Android).
            return await asyncio.shield(task)

        result = await on_device(device, finished)
        await println(stdout, result.am_output())
        return 0

    async def _package_command(
        self, args: Args, stderr: Writer, what: str
    ) -> tuple[int, str | None]:
        while (option := args.next_option()) is not None:
            if option == "--user":
                parse_user(args.next_arg_required())
            else:
                await println(stderr, f"Error: Unknown option: {option}")
                return EXIT_SHELL_COMMAND_FAILED, None
        return 0, args.next_arg_required()

    async def force_stop(self, args: Args, stdout: Writer, stderr: Writer) -> int:
        status, package = await self._package_command(args, stderr, "force-stop")
        if package is None:
            return status
        device = self.device

        def stop() -> None:
            # Android only logs "Invalid packageName" for an unknown package.
            with contextlib.suppress(PackageNotFoundError):
                device.am.force_stop(package)

        await call_on_device(device, stop)
        return 0

    async def kill(self, args: Args, stdout: Writer, stderr: Writer) -> int:
        status, package = await self._package_command(args, stderr, "kill")
        if package is None:
            return status
        device = self.device
        await call_on_device(device, lambda: device.am.kill(package))
        return 0

    async def kill_all(self, args: Args, stdout: Writer, stderr: Writer) -> int:
        """Kill every background process (those without a visible activity)."""
        device = self.device

        def kill_background() -> None:
            top = device.am.top_record
            for process in device.am.processes():
                if top is None or process.package != top.package:
                    device.am.kill(process.package)

        await call_on_device(device, kill_background)
        return 0


AM_HELP = """\
Activity manager (activity) commands:
  help
      Print this help text.
  start-activity [-D] [-N] [-W] [-P <FILE>] [--start-profiler <FILE>]
          [--sampling INTERVAL] [--streaming] [-R COUNT] [-S]
          [--track-allocation] [--user <USER_ID> | current] <INTENT>
      Start an Activity.  Options are:
      -W: wait for launch to complete
      -S: force stop the target app before starting the activity
      --user <USER_ID> | current: Specify which user to run as; if not
          specified then run as the current user.
  broadcast [--user <USER_ID> | all | current]
          [--receiver-permission <PERMISSION>] <INTENT>
      Send a broadcast Intent.  Options are:
      --user <USER_ID> | all | current: Specify which user to send to; if not
          specified then send to all users.
      --receiver-permission <PERMISSION>: Require receiver to hold permission.
  force-stop [--user <USER_ID> | all | current] <PACKAGE>
      Completely stop the given application package.
  kill [--user <USER_ID> | all | current] <PACKAGE>
      Kill all background processes associated with the given application.
  kill-all
      Kill all processes that are safe to kill (cached, etc).

<INTENT> specifications include these flags and arguments:
    [-a <ACTION>] [-d <DATA_URI>] [-t <MIME_TYPE>] [-i <IDENTIFIER>]
    [-c <CATEGORY> [-c <CATEGORY>] ...]
    [-n <COMPONENT_NAME>]
    [-e|--es <EXTRA_KEY> <EXTRA_STRING_VALUE> ...]
    [--esn <EXTRA_KEY> ...]
    [--ez <EXTRA_KEY> <EXTRA_BOOLEAN_VALUE> ...]
    [--ei <EXTRA_KEY> <EXTRA_INT_VALUE> ...]
    [--el <EXTRA_KEY> <EXTRA_LONG_VALUE> ...]
    [--ef <EXTRA_KEY> <EXTRA_FLOAT_VALUE> ...]
    [--ed <EXTRA_KEY> <EXTRA_DOUBLE_VALUE> ...]
    [--eu <EXTRA_KEY> <EXTRA_URI_VALUE> ...]
    [--ecn <EXTRA_KEY> <EXTRA_COMPONENT_NAME_VALUE>]
    [--eia <EXTRA_KEY> <EXTRA_INT_VALUE>[,<EXTRA_INT_VALUE...]]
    [--ela <EXTRA_KEY> <EXTRA_LONG_VALUE>[,<EXTRA_LONG_VALUE...]]
    [--esa <EXTRA_KEY> <EXTRA_STRING_VALUE>[,<EXTRA_STRING_VALUE...]]
        (to embed a comma into a string escape it using "\\,")
    [-f <FLAG>]
    [--include-stopped-packages] [--exclude-stopped-packages]
    [--receiver-foreground] [--activity-clear-top] [--activity-single-top] ...
    [<URI> | <PACKAGE> | <COMPONENT>]
"""
