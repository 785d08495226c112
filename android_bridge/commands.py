"""``mpac adb``: a SmartPOS terminal's Credit Card App from the command line, over ADB.

Each command opens its own connection (there is no adb server) through
:class:`~android_bridge.device.AndroidDevice`; operations go through
:class:`~android_bridge.terminal.PaymentTerminal`, so the CLI has exactly the API's guarantees
(idempotent request ids, lost results recovered with QUERY, "unknown" never reported as
"failed"). The exit statuses are the ``EXIT_*`` constants below, documented in
``docs/android-bridge.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from android_bridge.errors import (
    AppNotInstalled,
    BridgeError,
    DeviceNotFound,
    DeviceUnauthorized,
    IntentRejected,
    ResultTimeout,
    ResultUnknown,
)
from terminal_emulator.contract import (
    CARD_ENTRY_MODES,
    RESULT_LOG_TAG,
    Action,
    ContractError,
    ContractRequest,
    EndOfDayRequest,
    PaymentRequest,
    QueryRequest,
    ReceiptMode,
    RefundRequest,
    SettlementScope,
    Status,
    TenderType,
    TransactionResult,
    VoidRequest,
    parse_result_log_line,
)
from terminal_emulator.ui.format import format_yen

if TYPE_CHECKING:  # the device module (adb-shell) is imported when a command runs
    from android_bridge.device import AndroidDevice
    from android_bridge.discovery import DeviceListing
    from android_bridge.transport import Timeouts

# ---------------------------------------------------------------------------------------------
# Exit statuses
# ---------------------------------------------------------------------------------------------

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_DECLINED = 3
EXIT_CANCELLED = 4
EXIT_TIMEOUT = 5
EXIT_ERROR = 6
EXIT_NOT_FOUND = 7
EXIT_BRIDGE_ERROR = 8
EXIT_UNKNOWN = 9
EXIT_INTERRUPTED = 130

#: A final result's status -> exit status; processing / in_progress are "unknown" (query).
EXIT_BY_STATUS: dict[Status, int] = {
    Status.APPROVED: EXIT_OK,
    Status.DECLINED: EXIT_DECLINED,
    Status.CANCELLED: EXIT_CANCELLED,
    Status.TIMEOUT: EXIT_TIMEOUT,
    Status.ERROR: EXIT_ERROR,
    Status.NOT_FOUND: EXIT_NOT_FOUND,
    Status.PROCESSING: EXIT_UNKNOWN,
    Status.IN_PROGRESS: EXIT_UNKNOWN,
}

#: Bridge errors that prove the request never reached the Credit Card App: after any other
#: one, an operation's outcome is unknown (it may have been fired before the link broke).
NOT_DELIVERED: tuple[type[BridgeError], ...] = (
    DeviceNotFound,
    DeviceUnauthorized,
    AppNotInstalled,
    IntentRejected,
)

DEFAULT_TCP_PORT = 5555
DEFAULT_OPERATION_TIMEOUT_S = 90.0


DESCRIPTION = """\
Drive the Credit Card App of a SmartPOS terminal over ADB: a real device (USB or TCP) or an
emulated terminal's ADB endpoint. The same Intents the Business App sends
(docs/intent-contract.md), fired with `am`; results read back from the broadcast and logcat.

Which device: --serial/-s, else $ANDROID_SERIAL, else the only device `mpac adb devices`
lists (`mpac adb connect HOST[:PORT]` adds TCP endpoints to that list). Which key: --adb-key,
else ~/.android/adbkey (as adb; `mpac adb keygen` shows it).
"""

EPILOG = """\
exit status:
    0  approved (or done)
    2  bad usage, or a request the contract refuses (nothing was sent)
    3  declined: nothing was charged
    4  cancelled: nothing was charged
    5  timeout: no card in time, nothing was charged
    6  error: refused before any money moved
    7  not found: no request with this id ever reached the Credit Card App
    8  bridge error: no such device, unauthorized, offline, app missing, intent rejected
    9  outcome UNKNOWN: the request may have gone through; query it, never treat it as failed
  130  interrupted (an operation's outcome is then unknown too: query it)
`mpac adb shell` exits with the command's own status. With --json every command prints one JSON
document on stdout (following logcat: one per line), errors included. Every operation prints
its request id; `mpac adb query --request-id ID` tells its outcome at any time.
"""


class MoreThanOneDevice(BridgeError):
    """No ``--serial`` and several devices listed: which one is ambiguous."""

    code = "more_than_one_device"


class _UsageError(Exception):
    """A request the contract refuses (amount 0, a bad id…), found before anything is sent."""


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def money(amount: int, currency: str | None) -> str:
    """``¥1,200`` for yen; other currencies as their minor units say (``USD 1200 (minor
    units)``): the contract carries no exponent, and guessing one would misstate amounts."""
    if currency in (None, "JPY"):
        return format_yen(amount)
    return f"{currency} {amount} (minor units)"


_STATUS_WORDS = {
    Status.APPROVED: "APPROVED",
    Status.DECLINED: "DECLINED",
    Status.CANCELLED: "CANCELLED",
    Status.TIMEOUT: "TIMED OUT",
    Status.ERROR: "ERROR",
    Status.PROCESSING: "PROCESSING",
    Status.IN_PROGRESS: "IN PROGRESS",
    Status.NOT_FOUND: "NOT FOUND",
}


def _headline(result: TransactionResult) -> str:
    parts = [_STATUS_WORDS[result.status]]
    action = result.action
    if action is not None and action is not Action.PAYMENT:
        parts.append(action.short.replace("_", " "))
    if result.amount is not None:
        amount = money(result.amount, result.currency)
        if result.tip_amount:
            amount += f" + tip {money(result.tip_amount, result.currency)}"
        parts.append(amount)
    if result.masked_pan or result.card_brand:
        card = " ".join(part for part in (result.card_brand, result.masked_pan) if part)
        if result.entry_mode:
            card += f" ({result.entry_mode})"
        parts.append(card)
    elif result.tender_type is TenderType.QR:
        parts.append("QR wallet")
    if result.auth_code:
        parts.append(f"auth {result.auth_code}")
    if result.error_code is not None:
        parts.append(f"{result.error_code}: {result.error_message or ''}".rstrip(": "))
    return "  ".join(parts)


def describe_result(result: TransactionResult, *, serial: str, request_id: str) -> str:
    """One readable block: a headline, then the ids and what to do next."""
    rows: list[tuple[str, str]] = [("request", result.request_id or request_id)]
    if result.payment_id:
        state = f" ({result.payment_status})" if result.payment_status else ""
        rows.append(("payment", f"{result.payment_id}{state}"))
    if result.refund_id:
        rows.append(("refund", result.refund_id))
    if result.settlement_id:
        rows.append(("settlement", result.settlement_id))
    if result.payment_count is not None or result.refund_count is not None:
        counted = (
            f"{_count(result.payment_count or 0, 'payment')}, "
            f"{_count(result.refund_count or 0, 'refund')}"
        )
        rows.append(("counted", counted))
    if result.totals:
        rows.extend(("totals", line) for line in _totals_lines(result.totals))
    if result.tab_id:
        rows.append(("tab", result.tab_id))
    if result.metadata:
        # Free text: newlines and tabs shown escaped, so the block stays one block.
        metadata = result.metadata
        rows.append(("metadata", metadata if metadata.isprintable() else json.dumps(metadata)))
    if result.completed_at:
        rows.append(("completed", result.completed_at))
    if not result.is_final:
        rows.append(("outcome", "NOT KNOWN YET (not failed): " + _query_hint(serial, request_id)))
    elif result.status is Status.NOT_FOUND:
        rows.append(("note", "no request with this id reached the Credit Card App"))
    width = max(len(label) for label, _value in rows)
    return "\n".join(
        [_headline(result), *(f"  {label:<{width}}  {value}" for label, value in rows)]
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _totals_lines(totals: str) -> list[str]:
    """pgw's per-currency batch totals, one line each: ``JPY  gross ¥2,500  refunds ¥500
    net ¥2,000  tips ¥100``; text pgw may add later is shown as it came."""
    try:
        document = json.loads(totals)
    except ValueError:
        return [totals]
    if not isinstance(document, dict):
        return [totals]
    lines = []
    for currency, figures in sorted(document.items()):
        if not isinstance(figures, dict):
            return [totals]
        shown = [
            f"{label} {money(figures[label], currency)}"
            for label in ("gross", "refunds", "net", "tips")
            if isinstance(figures.get(label), int)
        ]
        lines.append(f"{currency}  " + "  ".join(shown) if shown else f"{currency}  {figures}")
    return lines or [totals]


def _query_hint(serial: str, request_id: str) -> str:
    return f"mpac adb query --serial {serial} --request-id {request_id}"


def _print_json(document: object) -> None:
    print(json.dumps(document, ensure_ascii=False), flush=True)


def _note(text: str) -> None:
    """Progress for people: stderr, so stdout stays the result."""
    print(text, file=sys.stderr, flush=True)


def _fail(args: argparse.Namespace, error: BridgeError, status: int, **extra: object) -> int:
    if args.json:
        _print_json({**error.to_json(), **extra})
    else:
        _note(f"mpac adb: {error}")
        for label, value in extra.items():
            if value is not None:
                _note(f"  {label}  {value}")
    return status


# ---------------------------------------------------------------------------------------------
# Devices and keys
# ---------------------------------------------------------------------------------------------


def _key_path(args: argparse.Namespace) -> Path | None:
    path: Path | None = args.adb_key
    return path.expanduser() if path is not None else None


def resolve_serial(args: argparse.Namespace) -> str:
    """``--serial``, else ``$ANDROID_SERIAL``, else the only device listed (as adb chooses)."""
    if args.serial:
        return str(args.serial)
    from_env = os.environ.get("ANDROID_SERIAL")
    if from_env:
        return from_env
    listed = _listed(args)
    if len(listed) == 1:
        return listed[0].serial
    if not listed:
        raise DeviceNotFound(
            "no device listed",
            hint="connect one (mpac adb connect HOST[:PORT]), plug one in, or pass --serial",
        )
    names = ", ".join(f"{entry.serial} ({entry.state})" for entry in listed)
    raise MoreThanOneDevice(
        f"more than one device: {names}", hint="choose with --serial or ANDROID_SERIAL"
    )


def _timeouts(args: argparse.Namespace) -> Timeouts:
    from android_bridge.transport import Timeouts

    if args.auth_timeout is None:
        return Timeouts()
    return Timeouts(auth_s=args.auth_timeout)


def _listed(args: argparse.Namespace) -> list[DeviceListing]:
    from android_bridge import discovery

    timeouts = discovery.PROBE_TIMEOUTS
    if args.auth_timeout is not None:
        timeouts = dataclasses.replace(timeouts, auth_s=args.auth_timeout)
    return discovery.list_devices(key_path=_key_path(args), timeouts=timeouts)


@contextmanager
def _opened(args: argparse.Namespace, serial: str) -> Iterator[AndroidDevice]:
    from android_bridge.device import AndroidDevice

    device = AndroidDevice.open(serial, key_path=_key_path(args), timeouts=_timeouts(args))
    try:
        yield device
    finally:
        device.close()


# ---------------------------------------------------------------------------------------------
# Argument parsing
# ---------------------------------------------------------------------------------------------


def _common(*, suppress: bool) -> argparse.ArgumentParser:
    """Options every subcommand takes, before or after its name (``mpac adb -s X pay`` and
    ``mpac adb pay -s X``): the subcommands' copies default to SUPPRESS so that they do not
    overwrite what was given before the name."""
    default: Any = argparse.SUPPRESS if suppress else None
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-s",
        "--serial",
        default=default,
        help="the device: HOST:PORT or a USB serial (default: $ANDROID_SERIAL, else the only one)",
    )
    common.add_argument(
        "--adb-key",
        type=Path,
        metavar="PATH",
        default=default,
        help="this computer's ADB private key (default: ~/.android/adbkey, as adb)",
    )
    common.add_argument(
        "--auth-timeout",
        type=float,
        metavar="S",
        default=default,
        help="how long the device may take to accept the key (default: 5; a first USB "
        "connection waits for a person to tap Allow: give it 60)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="log what the bridge does on stderr (-vv: every command it sends)",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print one JSON document on stdout",
    )
    return common


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _word_list(text: str) -> list[str]:
    return [word.strip() for word in text.split(",") if word.strip()]


def _operation_options(parser: argparse.ArgumentParser, *, card_wait: bool) -> None:
    parser.add_argument(
        "--request-id",
        metavar="ID",
        help="idempotency key (default: a new one, printed); the same id never acts twice",
    )
    parser.add_argument(
        "--via",
        choices=("broadcast", "activity"),
        default="broadcast",
        help="am broadcast (default: the answer comes back in the broadcast) or am start "
        "(the answer comes from logcat)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        default=None if card_wait else DEFAULT_OPERATION_TIMEOUT_S,
        help="how long to wait for the final result, seconds (default: "
        + ("the card timeout + 30, at least 90" if card_wait else "%(default)s")
        + "); after it the outcome is unknown, not failed",
    )
    parser.add_argument("--cashier-id", metavar="ID", help="recorded on the payment")
    parser.add_argument("--metadata", help="your own text, returned unchanged in the result")
    parser.add_argument(
        "--receipt",
        choices=[mode.value for mode in ReceiptMode],
        default=ReceiptMode.ASK.value,
        help="customer receipt (default: ask)",
    )
    parser.add_argument(
        "--skip-result-screen",
        action="store_true",
        help="return at once (default: the terminal shows the outcome for 3 s)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser(
        "adb",
        parents=[_common(suppress=False)],
        help="drive a SmartPOS terminal's Credit Card App over ADB (real or emulated)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = group.add_subparsers(dest="adb_command", metavar="COMMAND", required=True)
    common = _common(suppress=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> Any:
        parser = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        parser.set_defaults(handler=_guarded(handler))
        return parser

    devices = command(
        "devices", cmd_devices, "list what answers: remembered endpoints, local emulator ports, USB"
    )
    devices.add_argument("-l", "--long", action="store_true", help="with product, model and device")

    connect = command("connect", cmd_connect, "check a TCP endpoint and remember it")
    connect.add_argument(
        "endpoint", metavar="HOST[:PORT]", help=f"port {DEFAULT_TCP_PORT} by default"
    )

    disconnect = command(
        "disconnect", cmd_disconnect, "forget a remembered endpoint (all without one)"
    )
    disconnect.add_argument("endpoint", metavar="HOST[:PORT]", nargs="?")

    getprop = command("getprop", cmd_getprop, "a system property, or all of them")
    getprop.add_argument("name", nargs="?")

    shell = command(
        "shell", cmd_shell, "run a command in the device's shell (words joined as adb does)"
    )
    shell.add_argument(
        "--timeout", type=float, metavar="S", default=None, help="seconds (default: 30)"
    )
    shell.add_argument("words", nargs=argparse.REMAINDER, metavar="CMD...")

    pay = command("pay", cmd_pay, "take a payment: the customer taps, inserts or swipes a card")
    pay.add_argument("--amount", type=int, required=True, help="minor units (JPY: yen)")
    pay.add_argument("--currency", default="JPY", help="ISO 4217 (default: JPY)")
    pay.add_argument("--tip", type=_positive_int, default=0, help="tip, minor units")
    pay.add_argument(
        "--entry-modes",
        type=_word_list,
        metavar="MODE,...",
        help=f"card entry modes allowed (default: {','.join(CARD_ENTRY_MODES)})",
    )
    pay.add_argument(
        "--tender-types", type=_word_list, metavar="TYPE,...", help="card,qr (default: both)"
    )
    pay.add_argument("--note", help="shown to the customer, stored on the payment")
    pay.add_argument("--tab-id", metavar="ID", help="the smarttab tab this payment settles")
    pay.add_argument(
        "--card-timeout",
        type=float,
        metavar="S",
        default=60.0,
        help="how long the terminal waits for the card, 5-300 s (default: 60)",
    )
    _operation_options(pay, card_wait=True)

    refund = command("refund", cmd_refund, "refund a captured payment, wholly or partly")
    refund.add_argument("--payment-id", required=True, metavar="P")
    refund.add_argument("--amount", type=int, help="minor units (default: all that is left)")
    refund.add_argument("--currency", help="if given, must be the payment's (a safety check)")
    refund.add_argument("--reason")
    _operation_options(refund, card_wait=False)

    void = command("void", cmd_void, "void an authorized, uncaptured payment")
    void.add_argument("--payment-id", required=True, metavar="P")
    void.add_argument("--reason")
    _operation_options(void, card_wait=False)

    end_of_day = command("end-of-day", cmd_end_of_day, "close the day: a pgw settlement batch")
    end_of_day.add_argument(
        "--scope",
        choices=[scope.value for scope in SettlementScope],
        default=SettlementScope.TERMINAL.value,
        help="this terminal (default) or its whole store",
    )
    _operation_options(end_of_day, card_wait=False)

    query = command("query", cmd_query, "the outcome of a request, by its request id")
    query.add_argument("--request-id", required=True, metavar="ID")
    query.add_argument("--timeout", type=float, metavar="S", default=30.0, help="seconds")

    logcat = command(
        "logcat", cmd_logcat, "the device's log: follow it (Ctrl-C ends) or dump it (-d)"
    )
    logcat.add_argument("-d", "--dump", action="store_true", help="print the buffer and exit")
    logcat.add_argument(
        "--results",
        action="store_true",
        help=f"only the Credit Card App's results ({RESULT_LOG_TAG} lines), shown as results",
    )
    logcat.add_argument(
        "-t", "--tail", type=int, metavar="N", default=2000, help="with -d: the last N lines"
    )
    logcat.add_argument(
        "filterspecs", nargs="*", metavar="TAG:PRIORITY", help="as logcat (e.g. MPAC_RESULT:I *:S)"
    )

    command(
        "keygen",
        cmd_keygen,
        "show this computer's ADB key (created when missing); prints the public key line",
    )


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Bridge errors of commands that move no money become their message and exit 8."""

    def run(args: argparse.Namespace) -> int:
        # Quiet by default: every outcome is already printed, once, in the command's words.
        verbosity = args.verbose or 0
        logging.basicConfig(
            level=(logging.ERROR, logging.INFO, logging.DEBUG)[min(verbosity, 2)],
            format="%(asctime)s %(name)s %(message)s",
            stream=sys.stderr,
        )
        try:
            return handler(args)
        except BrokenPipeError:
            # `mpac adb logcat | head`: the reader is gone, which ends the command; stdout is
            # pointed at /dev/null so that Python's final flush does not complain again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        except BridgeError as error:
            return _fail(args, error, EXIT_BRIDGE_ERROR)
        except _UsageError as error:
            if args.json:
                _print_json({"error": "invalid_request", "message": str(error)})
            else:
                _note(f"mpac adb: {error}")
            return EXIT_USAGE

    return run


# ---------------------------------------------------------------------------------------------
# Device commands
# ---------------------------------------------------------------------------------------------


def normalize_endpoint(text: str) -> str:
    """``HOST[:PORT]`` as a serial: ``host:port``, port 5555 when none is given (``[v6]:port``
    for IPv6)."""
    text = text.strip()
    if text.startswith("["):
        return text if "]:" in text else f"{text}:{DEFAULT_TCP_PORT}"
    host, separator, port = text.rpartition(":")
    if separator and ":" not in host:
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _UsageError(f"{text!r} is not HOST[:PORT]")
        return text
    if separator:  # colons in the host: a bare IPv6 address
        return f"[{text}]:{DEFAULT_TCP_PORT}"
    return f"{text}:{DEFAULT_TCP_PORT}"


def cmd_devices(args: argparse.Namespace) -> int:
    listed = _listed(args)
    if args.json:
        _print_json([entry.to_json() for entry in listed])
        return EXIT_OK
    print("List of devices attached")
    for entry in listed:
        print(entry.line() if args.long else f"{entry.serial}\t{entry.state}")
    print()
    return EXIT_OK


def cmd_connect(args: argparse.Namespace) -> int:
    from android_bridge import discovery

    serial = normalize_endpoint(args.endpoint)
    try:
        with _opened(args, serial) as device:
            banner = device.banner
    except DeviceUnauthorized:
        # As adb: the endpoint stays listed (unauthorized) so that it can be allowed and used.
        discovery.remember(serial)
        raise
    serial = discovery.remember(serial)
    if args.json:
        _print_json({"serial": serial, "state": "device", "model": banner and banner.model})
    else:
        print(f"connected to {serial}")
    return EXIT_OK


def cmd_disconnect(args: argparse.Namespace) -> int:
    from android_bridge import discovery

    if args.endpoint is None:
        forgotten = [
            serial for serial in discovery.remembered_serials() if discovery.forget(serial)
        ]
    else:
        serial = normalize_endpoint(args.endpoint)
        if not discovery.forget(serial):
            raise DeviceNotFound(f"{serial} is not remembered", hint="see mpac adb devices")
        forgotten = [serial]
    if args.json:
        _print_json({"disconnected": forgotten})
    else:
        for serial in forgotten:
            print(f"disconnected {serial}")
    return EXIT_OK


def cmd_getprop(args: argparse.Namespace) -> int:
    serial = resolve_serial(args)
    with _opened(args, serial) as device:
        if args.name:
            value = device.getprop(args.name)
            if args.json:
                _print_json({"serial": serial, "name": args.name, "value": value})
            else:
                print(value or "")
            return EXIT_OK
        properties = device.properties()
    if args.json:
        _print_json({"serial": serial, "properties": properties})
    else:
        for name in sorted(properties):
            print(f"[{name}]: [{properties[name]}]")
    return EXIT_OK


def cmd_shell(args: argparse.Namespace) -> int:
    words: list[str] = list(args.words)
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise _UsageError("mpac adb shell needs a command (there is no interactive shell)")
    serial = resolve_serial(args)
    with _opened(args, serial) as device:
        # adb joins the words with spaces and does not quote them: the device's shell parses
        # the line, so `mpac adb shell "am start -n 'x/.Y'"` works as `adb shell` does.
        result = device.run(" ".join(words), timeout_s=args.timeout)
    if args.json:
        _print_json({"serial": serial, "output": result.output, "exit_code": result.exit_code})
    else:
        sys.stdout.write(result.output)
        sys.stdout.flush()
    return result.exit_code


def cmd_keygen(args: argparse.Namespace) -> int:
    from android_bridge import keys

    path = _key_path(args) or keys.default_key_path()
    created = not path.exists()
    keys.ensure_key(path)
    public_line = keys.public_key_line(path)
    fingerprint = keys.fingerprint(public_line)
    public_path = keys.public_key_path(path)
    if args.json:
        _print_json(
            {
                "key_path": str(path),
                "public_key_path": str(public_path),
                "public_key": public_line,
                "fingerprint": fingerprint,
                "created": created,
            }
        )
        return EXIT_OK
    _note(f"{'created' if created else 'private key'}  {path}")
    _note(f"public key   {public_path}")
    _note(f'fingerprint  {fingerprint}  (what the device\'s "Allow USB debugging?" shows)')
    _note(
        "allow this computer: tap Allow on the device's prompt, or append the line below to "
        f"its adb_keys ({keys.DEVICE_ADB_KEYS}; an emulated terminal: "
        "<state dir>/terminals/<serial>/adb_keys)"
    )
    print(public_line, flush=True)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Logcat
# ---------------------------------------------------------------------------------------------


def _logcat_args(args: argparse.Namespace) -> list[str]:
    if args.results:
        return ["-s", RESULT_LOG_TAG]
    return list(args.filterspecs)


def cmd_logcat(args: argparse.Namespace) -> int:
    serial = resolve_serial(args)
    with _opened(args, serial) as device:
        if args.dump:
            lines = device.logcat_dump(*_logcat_args(args), max_lines=args.tail)
            _print_logcat(args, serial, lines, dumped=True)
            return EXIT_OK
        try:
            # -T 1: from the newest line on, as `adb logcat` shows the tail then follows.
            with device.follow_logcat(*_logcat_args(args)) as follower:
                for line in follower:
                    _print_logcat(args, serial, [line], dumped=False)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how following ends: the stream is closed on the way out
    return EXIT_OK


def _print_logcat(args: argparse.Namespace, serial: str, lines: list[str], *, dumped: bool) -> None:
    if args.results:
        results = [result for result in map(parse_result_log_line, lines) if result is not None]
        if args.json:
            documents = [result.to_json() for result in results]
            if dumped:
                _print_json(documents)
            else:
                for document in documents:
                    _print_json(document)
            return
        for result in results:
            print(describe_result(result, serial=serial, request_id=result.request_id or "?"))
            print(flush=True)
        return
    if args.json:
        if dumped:
            _print_json(lines)
        else:
            for line in lines:
                _print_json(line)
        return
    for line in lines:
        print(line, flush=not dumped)


# ---------------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------------


def _presentation(args: argparse.Namespace) -> dict[str, Any]:
    from android_bridge.terminal import DEFAULT_RESULT_SCREEN_TIMEOUT_MS

    options: dict[str, Any] = {
        "cashier_id": args.cashier_id,
        "metadata": args.metadata,
        "receipt_mode": args.receipt,
        "skip_result_screen": args.skip_result_screen,
    }
    if not args.skip_result_screen:
        # As the API does: the customer sees the outcome, and an unattended terminal returns
        # by itself instead of waiting for a tap.
        options["result_screen_timeout_ms"] = DEFAULT_RESULT_SCREEN_TIMEOUT_MS
    return options


def _build(cls: type[ContractRequest], args: argparse.Namespace, **fields: Any) -> ContractRequest:
    """The request, validated by the contract before anything is sent (a refusal is a usage
    error: exit 2, nothing happened)."""
    from android_bridge.terminal import build_request, new_request_id

    present = {name: value for name, value in fields.items() if value is not None}
    try:
        return build_request(cls, request_id=args.request_id or new_request_id(), **present)
    except (ContractError, ValueError, TypeError) as error:
        raise _UsageError(f"invalid request: {error}") from None


@dataclass(frozen=True)
class _Operation:
    request: ContractRequest
    what: str  # "payment", "refund", … for messages
    waits_for_card: bool


def cmd_pay(args: argparse.Namespace) -> int:
    request = _build(
        PaymentRequest,
        args,
        amount=args.amount,
        currency=args.currency.upper(),
        tip_amount=args.tip,
        entry_modes=args.entry_modes,
        tender_types=args.tender_types,
        note=args.note,
        tab_id=args.tab_id,
        timeout_ms=round(args.card_timeout * 1000),
        **_presentation(args),
    )
    if args.timeout is None:
        # The card wait, then the gateway: the bridge must not give up while the customer
        # still may tap.
        args.timeout = max(DEFAULT_OPERATION_TIMEOUT_S, args.card_timeout + 30.0)
    return _execute(args, _Operation(request, "payment", waits_for_card=True))


def cmd_refund(args: argparse.Namespace) -> int:
    request = _build(
        RefundRequest,
        args,
        payment_id=args.payment_id,
        amount=args.amount,
        currency=args.currency.upper() if args.currency else None,
        reason=args.reason,
        **_presentation(args),
    )
    return _execute(args, _Operation(request, "refund", waits_for_card=False))


def cmd_void(args: argparse.Namespace) -> int:
    request = _build(
        VoidRequest, args, payment_id=args.payment_id, reason=args.reason, **_presentation(args)
    )
    return _execute(args, _Operation(request, "void", waits_for_card=False))


def cmd_end_of_day(args: argparse.Namespace) -> int:
    request = _build(EndOfDayRequest, args, scope=args.scope, **_presentation(args))
    return _execute(args, _Operation(request, "end of day", waits_for_card=False))


def cmd_query(args: argparse.Namespace) -> int:
    request_id: str = args.request_id
    _build(QueryRequest, args)  # refuse a malformed id before connecting
    serial = resolve_serial(args)
    from android_bridge.terminal import PaymentTerminal

    try:
        with _opened(args, serial) as device:
            result = PaymentTerminal(device, result_timeout_s=args.timeout).query(request_id)
    except (ResultTimeout, ResultUnknown) as error:
        # Connected, then lost: the request's outcome is still unknown, as it was.
        return _unknown(args, error, serial, request_id, "request")
    return _report(args, result, serial=serial, request_id=request_id)


def _report(
    args: argparse.Namespace, result: TransactionResult, *, serial: str, request_id: str
) -> int:
    if args.json:
        _print_json({**result.to_json(), "request_id": result.request_id or request_id})
    else:
        print(describe_result(result, serial=serial, request_id=request_id), flush=True)
    return EXIT_BY_STATUS[result.status]


def _execute(args: argparse.Namespace, operation: _Operation) -> int:
    """Fire the request and wait for its final result; every way out names the request id,
    and an outcome that could not be learnt is reported as unknown, never as failed."""
    from android_bridge.terminal import PaymentTerminal

    request = operation.request
    request_id = request.request_id
    try:
        serial = resolve_serial(args)
    except BridgeError as error:
        return _fail(args, error, EXIT_BRIDGE_ERROR, request_id=request_id)
    # First, before anything can go wrong: whoever runs this can always ask about it later.
    _note(f"{operation.what} {request_id} on {serial}")
    connected = False
    try:
        with _opened(args, serial) as device:
            connected = True
            terminal = PaymentTerminal(device, via=args.via, result_timeout_s=args.timeout)
            outcome = _in_background(lambda: terminal.execute(request, timeout_s=args.timeout))
            if operation.waits_for_card:
                _note(f"waiting for the customer's card on {serial}…")
            result = outcome.result()
    except KeyboardInterrupt:
        return _interrupted(args, serial, request_id, operation.what)
    except (ResultTimeout, ResultUnknown) as error:
        return _unknown(args, error, serial, request_id, operation.what)
    except BridgeError as error:
        if not connected or isinstance(error, NOT_DELIVERED):
            return _fail(args, error, EXIT_BRIDGE_ERROR, request_id=request_id)
        # The link broke, or the answer was unreadable, after the intent may have left.
        return _unknown(args, error, serial, request_id, operation.what)
    return _report(args, result, serial=serial, request_id=request_id)


def _interrupted(args: argparse.Namespace, serial: str, request_id: str, what: str) -> int:
    hint = _query_hint(serial, request_id)
    _note(f"interrupted: the {what} may still complete on the device (unknown, not failed): {hint}")
    if args.json:
        _print_json(
            {
                "error": "interrupted",
                "message": "interrupted before the outcome was known",
                "serial": serial,
                "hint": hint,
                "request_id": request_id,
                "outcome": "unknown",
            }
        )
    return EXIT_INTERRUPTED


def _unknown(
    args: argparse.Namespace,
    error: BridgeError,
    serial: str,
    request_id: str,
    what: str,
) -> int:
    if args.json:
        document: dict[str, object] = {**error.to_json(), "request_id": request_id}
        if isinstance(error, ResultTimeout) and error.last_status:
            document["last_status"] = error.last_status
        _print_json({**document, "outcome": "unknown"})
        return EXIT_UNKNOWN
    _note(f"mpac adb: {error}")
    print(
        f"UNKNOWN  the {what} may have gone through: do not treat it as failed\n"
        f"  request  {request_id}\n"
        f"  query    {_query_hint(serial, request_id)}",
        flush=True,
    )
    return EXIT_UNKNOWN


def _in_background(work: Callable[[], TransactionResult]) -> Future[TransactionResult]:
    """Run ``work`` in a daemon thread, so Ctrl-C reaches the main thread at once and the
    process can exit without waiting for a result it no longer wants."""
    outcome: Future[TransactionResult] = Future()

    def run() -> None:
        try:
            outcome.set_result(work())
        except BaseException as error:  # handed to the waiting main thread
            outcome.set_exception(error)

    threading.Thread(target=run, name="mpac-adb-operation", daemon=True).start()
    return outcome
