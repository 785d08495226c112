"""The terminal a test drives, whatever it runs on: one interface, three targets.

- ``emulator``: an in-process :class:`~terminal_emulator.terminal.EmulatedTerminal`; intents go
  straight to its ActivityManager (the same intents, no ADB);
- ``emulator-adb``: the same emulated terminal driven over its real ADB endpoint (TCP) with
  :class:`~android_bridge.terminal.PaymentTerminal`;
- ``adb``: a real SmartPOS device (or any emulator already running) by serial.

Tests and BDD steps use only :class:`TerminalDriver`; what a target cannot do is a capability
it lacks (``driver.require("card_presentation")`` skips the test with the reason shown).

Card presentation — the customer's side of a payment — is the emulator's simulated card reader:
in process through :class:`~terminal_emulator.hardware.SimulatedCardReader`, over ADB through
the emulator-only ``cardreader`` shell command (``docs/terminal-emulator.md``). Both refuse
alike (the same checks, :mod:`terminal_emulator.shell.cardreader`): a card only when the reader
waits for one, in a mode the payment allows, and only the provider's test cards. A real device
has no ``cardreader`` (exit 127): there, a person presents the card, and tests that need it are
skipped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from android_bridge.errors import (
    BridgeError,
    CommandTimeout,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
    IntentRejected,
    MalformedResult,
    ResultTimeout,
)
from android_bridge.intents import Via
from terminal_emulator.adb.redaction import redact
from terminal_emulator.android import ActivityNotFoundError, SecurityError
from terminal_emulator.contract import (
    CREDIT_CARD_PACKAGE,
    RESULT_LOG_TAG,
    ContractError,
    ContractRequest,
    QueryRequest,
    Status,
    TransactionResult,
    parse_result_log_line,
    result_from_broadcast_output,
)
from terminal_emulator.hardware import SimulatedCardReader
from terminal_emulator.shell.cardreader import (
    cancel_refusal,
    card_refusal,
    describe,
    pin_refusal,
)

if TYPE_CHECKING:
    from android_bridge.device import AndroidDevice, ShellResult
    from android_bridge.terminal import PaymentTerminal
    from terminal_emulator.terminal import EmulatedTerminal

T = TypeVar("T")

#: Capabilities a driver may have.
CARD_PRESENTATION = "card_presentation"  # present a test card, PIN, cancel without a human
FORCE_STOP = "force_stop"  # kill the Credit Card App (am force-stop)
LOGCAT = "logcat"
LINK_FAULTS = "link_faults"  # drop the ADB link on purpose (emulator-adb only)

CAPABILITIES = frozenset({CARD_PRESENTATION, FORCE_STOP, LOGCAT, LINK_FAULTS})
TARGETS = ("emulator", "emulator-adb", "adb")


class CardReaderRefused(BridgeError):
    """The card reader did not take the input: not waiting for it, a mode the payment does not
    allow, not a test card, or no simulated reader at all. The message says which."""

    code = "card_reader_refused"


class CardPromptTimeout(BridgeError):
    """The Credit Card App did not ask for a card (or PIN) in time."""

    code = "card_prompt_timeout"


class TerminalDriver(Protocol):
    target: str  # "emulator", "emulator-adb", "adb"
    serial: str
    capabilities: frozenset[str]

    def submit(
        self, request: ContractRequest, *, timeout_s: float = 60.0
    ) -> Future[TransactionResult]:
        """Fire ``request``; the future holds its final result."""
        ...

    def execute(
        self, request: ContractRequest, *, timeout_s: float = 60.0
    ) -> TransactionResult: ...

    def query(self, request_id: str) -> TransactionResult: ...

    def present_card(self, method: str, pan: str) -> None:
        """``method``: tap, insert or swipe; ``pan`` one of the test catalogue's cards."""
        ...

    def enter_pin(self, pin: str) -> None: ...

    def cancel_card(self) -> None:
        """The customer presses Cancel on the card screen."""
        ...

    def wait_for_card_prompt(self, *, timeout_s: float = 10.0) -> None:
        """Until the Credit Card App waits for a card (a test presents it only then)."""
        ...

    def wait_for_pin_prompt(self, *, timeout_s: float = 10.0) -> None:
        """Until the Credit Card App waits for the PIN."""
        ...

    def force_stop_credit_card_app(self) -> None: ...

    def logcat_excerpt(self, *, lines: int = 200) -> str: ...

    def drop_link(self) -> None:
        """Cut every ADB connection to the device at once (the device stays up): what a pulled
        cable or a restarted adbd does to a host. Needs ``link_faults``."""
        ...

    def require(self, capability: str) -> None:
        """pytest.skip with the reason when the target lacks ``capability``."""
        ...

    def close(self) -> None: ...


class _DriverBase:
    """What every driver shares: capabilities with the reasons for the missing ones, the
    background threads of ``submit``, and ``require``."""

    target: str
    serial: str
    capabilities: frozenset[str]

    def __init__(self, missing: dict[str, str]) -> None:
        self._missing = dict(missing)
        self.capabilities = CAPABILITIES - frozenset(missing)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix=f"driver-{self.serial}"
        )

    def missing_reason(self, capability: str) -> str | None:
        """Why the target lacks ``capability`` (None: it has it)."""
        if capability in self.capabilities:
            return None
        if capability not in CAPABILITIES:
            return f"unknown capability {capability!r} (known: {', '.join(sorted(CAPABILITIES))})"
        return self._missing.get(capability, "not supported by this target")

    def require(self, capability: str) -> None:
        reason = self.missing_reason(capability)
        if reason is None:
            return
        import pytest  # lazily: the library itself does not need pytest

        pytest.skip(f"--terminal={self.target} ({self.serial}) lacks {capability}: {reason}")

    def execute(self, request: ContractRequest, *, timeout_s: float = 60.0) -> TransactionResult:
        raise NotImplementedError

    def submit(
        self, request: ContractRequest, *, timeout_s: float = 60.0
    ) -> Future[TransactionResult]:
        return self._pool.submit(self.execute, request, timeout_s=timeout_s)

    def drop_link(self) -> None:
        self.require(LINK_FAULTS)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> _DriverBase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target} {self.serial}>"


# -- emulator: in process ---------------------------------------------------------------------


class EmulatorDriver(_DriverBase):
    """An in-process :class:`EmulatedTerminal` that runs on its own event loop (another thread):
    requests go straight into its ActivityManager as the contract's intents — an ordered
    broadcast to ``.ResultReceiver`` (``via="broadcast"``, what ``am broadcast`` does) or a
    start of ``.TransactionActivity`` (``via="activity"``, what ``am start`` does, the answer
    read from the ``MPAC_RESULT`` log line) — and non-final answers are followed with QUERY.

    The terminal belongs to the caller (it is not stopped by ``close``). Never call the
    driver from the terminal's own loop thread: it blocks on that loop.
    """

    target = "emulator"

    def __init__(
        self,
        terminal: EmulatedTerminal,
        *,
        via: Via = "broadcast",
        query_interval_s: float = 0.25,
    ) -> None:
        self.terminal = terminal
        self.serial = terminal.serial
        self.via: Via = via
        self.query_interval_s = query_interval_s
        self._lock = threading.Lock()
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        reader = terminal.card_reader
        self._reader = reader if isinstance(reader, SimulatedCardReader) else None
        missing = {LINK_FAULTS: "in process there is no ADB link to drop (use emulator-adb)"}
        if self._reader is None:
            missing[CARD_PRESENTATION] = (
                f"the terminal's card reader is a {type(reader).__name__}, "
                "not the simulated one a test can present cards to"
            )
        super().__init__(missing)

    # -- running on the terminal's loop -------------------------------------------------------

    def _call(self, work: Coroutine[Any, Any, T], timeout_s: float) -> T:
        loop = self.terminal.device.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            work.close()
            raise RuntimeError(
                "EmulatorDriver blocks: call it from another thread than the device's"
            )
        future = asyncio.run_coroutine_threadsafe(work, loop)
        with self._lock:
            self._inflight.add(future)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise
        finally:
            with self._lock:
                self._inflight.discard(future)

    def close(self) -> None:
        """Stop waiting for results still pending (the requests themselves go on in the
        Credit Card App, as on a device whose host went away)."""
        with self._lock:
            inflight, self._inflight = set(self._inflight), set()
        for future in inflight:
            future.cancel()
        super().close()

    # -- requests -------------------------------------------------------------------------------

    def execute(self, request: ContractRequest, *, timeout_s: float = 60.0) -> TransactionResult:
        # The loop-side deadline decides; the thread waits a little longer for its answer.
        return self._call(self._execute(request, timeout_s), timeout_s + 15)

    def query(self, request_id: str) -> TransactionResult:
        return self._call(self._query(request_id), 30)

    async def _broadcast(self, request: ContractRequest) -> TransactionResult | None:
        # What ``am broadcast`` does (ordered, waiting for the final result), shielded: a caller
        # that stops waiting must not cancel the delivery halfway through the receiver.
        delivery = self.terminal.device.am.send_ordered_broadcast(
            request.to_intent(via="broadcast")
        )
        answer = await asyncio.shield(delivery)
        output = answer.am_output()
        try:
            return result_from_broadcast_output(output)
        except ContractError as error:
            raise MalformedResult(str(error), raw=output, serial=self.serial) from None

    async def _query(self, request_id: str) -> TransactionResult:
        result = await self._broadcast(QueryRequest(request_id=request_id))
        if result is None:
            raise MalformedResult(
                "nobody answered the QUERY broadcast (is the Credit Card App installed?)",
                raw="Broadcast completed: result=0",
                serial=self.serial,
            )
        return result

    def _logged_results(self, request_id: str, after_seq: int) -> list[TransactionResult]:
        logcat = self.terminal.device.logcat
        results = []
        for entry in logcat.entries():
            if entry.seq <= after_seq or entry.tag != RESULT_LOG_TAG:
                continue
            for line in logcat.format(entry, "raw"):
                result = parse_result_log_line(line)
                if result is not None and result.request_id == request_id:
                    results.append(result)
        return results

    async def _execute(self, request: ContractRequest, timeout_s: float) -> TransactionResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        request_id = request.request_id
        device = self.terminal.device
        last_status: Status | None = None
        after_seq = -1
        if self.via == "broadcast":
            result = await self._broadcast(request)
        else:
            entries = device.logcat.entries()
            after_seq = entries[-1].seq if entries else -1
            intent = request.to_intent(via="activity")
            try:
                device.am.start_activity(intent)
            except (ActivityNotFoundError, SecurityError) as error:
                raise IntentRejected(
                    f"starting {intent} failed: {error}",
                    output=str(error),
                    exit_code=None,
                    serial=self.serial,
                ) from None
            await device.am.idle()  # the activity took the request (journaled) by now
            result = None
        while result is None or not result.is_final:
            if result is not None:
                last_status = result.status
            if self.via == "activity":
                final = [r for r in self._logged_results(request_id, after_seq) if r.is_final]
                if final:
                    return final[-1]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ResultTimeout(
                    f"no final result for {request_id} within {timeout_s:g} s",
                    request_id=request_id,
                    last_status=last_status.value if last_status else None,
                    serial=self.serial,
                )
            await asyncio.sleep(min(self.query_interval_s, remaining))
            # QUERY waits (up to the app's query_resolve_s) for a request it is working on.
            try:
                result = await asyncio.wait_for(
                    self._query(request_id), max(deadline - loop.time(), 0.01)
                )
            except TimeoutError:
                result = None
            if self.via == "activity" and result is not None and result.status is Status.NOT_FOUND:
                result = None  # refused before journaling: its answer is in the log line
        return result

    # -- the customer ---------------------------------------------------------------------------

    def _simulated_reader(self) -> SimulatedCardReader:
        if self._reader is None:
            raise CardReaderRefused(
                self.missing_reason(CARD_PRESENTATION) or "no simulated card reader",
                serial=self.serial,
            )
        return self._reader

    def present_card(self, method: str, pan: str) -> None:
        reader = self._simulated_reader()
        refusal = card_refusal(reader.state, method, pan)
        if refusal is not None:
            raise CardReaderRefused(refusal, serial=self.serial)
        reader.present_card(method, pan)

    def enter_pin(self, pin: str) -> None:
        reader = self._simulated_reader()
        refusal = pin_refusal(reader.state)
        if refusal is not None:
            raise CardReaderRefused(refusal, serial=self.serial)
        reader.enter_pin(pin)

    def cancel_card(self) -> None:
        reader = self._simulated_reader()
        refusal = cancel_refusal(reader.state)
        if refusal is not None:
            raise CardReaderRefused(refusal, serial=self.serial)
        reader.cancel()

    def _wait_for_prompt(self, kind: str, timeout_s: float) -> None:
        reader = self._simulated_reader()
        if reader.wait_for_prompt_blocking(kind, timeout_s=timeout_s) is None:
            raise CardPromptTimeout(
                f"the Credit Card App did not ask for a {kind} within {timeout_s:g} s "
                f"({describe(reader.state)})",
                serial=self.serial,
            )

    def wait_for_card_prompt(self, *, timeout_s: float = 10.0) -> None:
        self._wait_for_prompt("card", timeout_s)

    def wait_for_pin_prompt(self, *, timeout_s: float = 10.0) -> None:
        self._wait_for_prompt("pin", timeout_s)

    # -- the device -----------------------------------------------------------------------------

    def force_stop_credit_card_app(self) -> None:
        async def force_stop() -> None:
            self.terminal.device.am.force_stop(CREDIT_CARD_PACKAGE)

        self._call(force_stop(), 30)

    def logcat_excerpt(self, *, lines: int = 200) -> str:
        """The last ``lines`` lines of the device's log, as ``logcat -d -t N`` prints them."""
        return "\n".join(self.terminal.device.logcat.dump(tail=lines))


# -- emulator-adb and adb: over ADB ------------------------------------------------------------


class AdbDriver(_DriverBase):
    """A device over ADB: requests through :class:`PaymentTerminal` (``am broadcast``/``am
    start``, results recovered with QUERY), card presentation through the device's
    ``cardreader`` command when it has one (the emulator), ``am force-stop``, ``logcat -d -t``.

    ``drop_link``: a callable that cuts every ADB connection on the device side (given for
    emulator-adb, where the test owns the device). ``owns_device``: close the device with the
    driver.
    """

    def __init__(
        self,
        device: AndroidDevice,
        *,
        target: str = "adb",
        via: Via = "broadcast",
        payment_terminal: PaymentTerminal | None = None,
        drop_link: Callable[[], None] | None = None,
        owns_device: bool = True,
        command_timeout_s: float = 15.0,
        reconnect_deadline_s: float = 30.0,
    ) -> None:
        self.device = device
        self.reconnect_deadline_s = reconnect_deadline_s
        self.target = target
        self.serial = device.serial
        self.command_timeout_s = command_timeout_s
        self._drop_link = drop_link
        self._owns_device = owns_device
        if payment_terminal is None:
            from android_bridge.terminal import PaymentTerminal

            payment_terminal = PaymentTerminal(device, via=via)
        self.payment_terminal = payment_terminal
        missing: dict[str, str] = {}
        reader = self._probe_card_reader()
        if reader is not None:
            missing[CARD_PRESENTATION] = reader
        if drop_link is None:
            missing[LINK_FAULTS] = (
                "only an emulated terminal's ADB link can be dropped on purpose (emulator-adb)"
            )
        super().__init__(missing)

    def _run(self, argv: list[str], *, timeout_s: float | None = None) -> ShellResult:
        """``argv`` on the device; after a dropped link (another thread may be reconnecting
        already: they share the new connection) once more on a new one. Card numbers and PINs
        on the command line never appear in the errors raised."""
        try:
            try:
                return self.device.run(argv, timeout_s=timeout_s or self.command_timeout_s)
            except DeviceOffline:
                self.device.reconnect(deadline_s=self.reconnect_deadline_s)
                return self.device.run(argv, timeout_s=timeout_s or self.command_timeout_s)
        except BridgeError as error:
            if redact(str(error)) == str(error):
                raise
            raise _redacted(error) from None

    def _probe_card_reader(self) -> str | None:
        """None when ``cardreader status`` works, else why cards cannot be presented."""
        probe = self._run(["cardreader", "status"])
        if probe.ok and probe.output.startswith("state="):
            return None
        if probe.exit_code == 127:
            return (
                "the device has no `cardreader` command (a real card reader: present cards by "
                "hand, or run the test on the emulator)"
            )
        return f"`cardreader status` failed (exit {probe.exit_code}): {probe.output.strip()}"

    # -- requests -------------------------------------------------------------------------------

    def execute(self, request: ContractRequest, *, timeout_s: float = 60.0) -> TransactionResult:
        return self.payment_terminal.execute(request, timeout_s=timeout_s)

    def query(self, request_id: str) -> TransactionResult:
        return self.payment_terminal.query(request_id)

    # -- the customer: the cardreader command ---------------------------------------------------

    def _cardreader(self, *words: str, timeout_s: float | None = None) -> str:
        reason = self.missing_reason(CARD_PRESENTATION)
        if reason is not None:
            raise CardReaderRefused(reason, serial=self.serial)
        result = self._run(["cardreader", *words], timeout_s=timeout_s)
        if not result.ok:
            message = result.output.strip().removeprefix("cardreader: ")
            if words[0] == "wait" and result.exit_code == 1:
                raise CardPromptTimeout(message, serial=self.serial)
            raise CardReaderRefused(message, serial=self.serial)
        return result.output

    def present_card(self, method: str, pan: str) -> None:
        self._cardreader(method, pan)

    def enter_pin(self, pin: str) -> None:
        self._cardreader("pin", pin)

    def cancel_card(self) -> None:
        self._cardreader("cancel")

    def wait_for_card_prompt(self, *, timeout_s: float = 10.0) -> None:
        self._cardreader(
            "wait", "card", "--timeout-ms", str(int(timeout_s * 1000)), timeout_s=timeout_s + 10
        )

    def wait_for_pin_prompt(self, *, timeout_s: float = 10.0) -> None:
        self._cardreader(
            "wait", "pin", "--timeout-ms", str(int(timeout_s * 1000)), timeout_s=timeout_s + 10
        )

    # -- the device -----------------------------------------------------------------------------

    def force_stop_credit_card_app(self) -> None:
        result = self._run(["am", "force-stop", CREDIT_CARD_PACKAGE])
        if not result.ok:
            raise BridgeError(
                f"am force-stop {CREDIT_CARD_PACKAGE} failed (exit {result.exit_code}): "
                f"{result.output.strip()}",
                serial=self.serial,
            )

    def logcat_excerpt(self, *, lines: int = 200) -> str:
        """``logcat -d -t N``: the last ``lines`` lines of the device's log."""
        try:
            dumped = self.device.logcat_dump("-t", str(lines), max_lines=lines)
        except DeviceOffline:
            self.device.reconnect(deadline_s=self.reconnect_deadline_s)
            dumped = self.device.logcat_dump("-t", str(lines), max_lines=lines)
        return "\n".join(dumped)

    def drop_link(self) -> None:
        self.require(LINK_FAULTS)
        assert self._drop_link is not None
        self._drop_link()

    def close(self) -> None:
        super().close()
        self.payment_terminal.close(wait=False)
        if self._owns_device:
            self.device.close()


def _redacted(error: BridgeError) -> BridgeError:
    """``error`` with card data masked (a command line quoted in its message)."""
    if isinstance(error, MalformedResult):
        return MalformedResult(redact(error.message), raw=redact(error.raw), serial=error.serial)
    kind = type(error) if type(error) in _PLAIN_ERRORS else BridgeError
    return kind(redact(error.message), serial=error.serial, hint=error.hint)


_PLAIN_ERRORS = (BridgeError, DeviceNotFound, DeviceUnauthorized, DeviceOffline, CommandTimeout)


# -- the factory ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TerminalTarget:
    """What ``--terminal`` chose: ``name`` (one of :data:`TARGETS`), and for ``adb`` the
    ``serial``; ``key_path`` is the host's ADB key (``~/.android/adbkey`` style)."""

    name: str
    serial: str | None = None
    key_path: Path | None = None

    def __post_init__(self) -> None:
        if self.name not in TARGETS:
            raise ValueError(f"unknown terminal target {self.name!r} (one of {', '.join(TARGETS)})")

    def describe(self) -> str:
        if self.name == "adb":
            return f"adb (serial {self.serial or '?'})"
        if self.name == "emulator-adb":
            return "emulator-adb (an emulated terminal over its ADB endpoint on 127.0.0.1)"
        return "emulator (an emulated terminal in process)"


def open_driver(
    target: str | TerminalTarget,
    *,
    terminal: EmulatedTerminal | None = None,
    serial: str | None = None,
    key_path: Path | None = None,
    via: Via = "broadcast",
) -> TerminalDriver:
    """The driver for ``target``:

    - ``emulator``: ``terminal`` (started) driven in process;
    - ``emulator-adb``: ``terminal`` (started, with its ADB endpoint) over TCP; the host key
      ``key_path`` (its ``.pub`` beside it) is allowed on the terminal first, as a tap on
      "Allow USB debugging?" would;
    - ``adb``: the device at ``serial`` (default ``$ANDROID_SERIAL``, as adb) with ``key_path``.

    Connection failures raise the :mod:`android_bridge.errors` classes (DeviceNotFound,
    DeviceUnauthorized, ...).
    """
    chosen = (
        target
        if isinstance(target, TerminalTarget)
        else TerminalTarget(target, serial=serial, key_path=key_path)
    )
    key = key_path or chosen.key_path
    if chosen.name == "emulator":
        if terminal is None:
            raise ValueError("--terminal=emulator needs an emulated terminal")
        return EmulatorDriver(terminal, via=via)
    if chosen.name == "emulator-adb":
        if terminal is None or terminal.adb_port is None:
            raise ValueError("--terminal=emulator-adb needs an emulated terminal with ADB on")
        from android_bridge.keys import ensure_key

        # The key the bridge will sign with (adb's own when none is given), allowed first.
        key = ensure_key(key)
        allow_host_key(terminal, key)
        return _open_adb(
            f"127.0.0.1:{terminal.adb_port}",
            key,
            target="emulator-adb",
            via=via,
            drop_link=lambda: drop_adb_connections(terminal),
        )
    address = serial or chosen.serial or os.environ.get("ANDROID_SERIAL")
    if not address:
        raise ValueError("--terminal=adb needs a serial (--adb-serial or $ANDROID_SERIAL)")
    return _open_adb(address, key, target="adb", via=via, drop_link=None)


def _open_adb(
    serial: str,
    key_path: Path | None,
    *,
    target: str,
    via: Via,
    drop_link: Callable[[], None] | None,
) -> AdbDriver:
    from android_bridge.device import AndroidDevice

    device = AndroidDevice(serial, key_path=key_path)
    device.connect()
    try:
        return AdbDriver(device, target=target, via=via, drop_link=drop_link)
    except BaseException:
        device.close()
        raise


def _on_terminal_loop(terminal: EmulatedTerminal, work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(work, terminal.device.loop).result(30)


def allow_host_key(terminal: EmulatedTerminal, key_path: Path) -> None:
    """Allow the host key ``key_path`` (its public half in ``key_path.pub``) on the terminal's
    ADB endpoint, as tapping "Allow" on the "Allow USB debugging?" prompt does."""
    from android_bridge.keys import public_key_line
    from terminal_emulator.adb import AdbPublicKey

    public = AdbPublicKey.parse(public_key_line(key_path))
    server = terminal.adb_server
    if server is None:
        raise ValueError(f"{terminal.serial} has no ADB endpoint")
    _on_terminal_loop(terminal, server.allow_key(public))


def drop_adb_connections(terminal: EmulatedTerminal) -> None:
    """Close every host connection of the terminal's ADB endpoint; it keeps listening, so a
    host that reconnects gets in again (what a restarted adbd looks like from the host)."""
    server = terminal.adb_server
    if server is None:
        return

    async def drop() -> None:
        for session in server.sessions:
            await session.transport.close()

    _on_terminal_loop(terminal, drop())
