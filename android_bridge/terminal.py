"""The Credit Card App's operations from a host: pay, refund, void, end of day and query,
each fired as the contract's Intent over ADB and answered with the contract's result.

Every operation is idempotent by ``request_id`` (generated when not given): running it again
with the same id returns the first result and charges nothing more. A result the bridge lost
(link dropped, app killed, broadcast answered ``in_progress``) is recovered with the QUERY
action before anything is reported; when the device cannot be reached at all the answer is
:class:`~android_bridge.errors.ResultUnknown`, never "failed".

How a result is waited for (``docs/intent-contract.md``, "The three ways a result reaches its
caller"):

- ``via="broadcast"`` (default): ``am broadcast`` to the result receiver, which holds the
  broadcast up to ``broadcast_wait_ms`` and answers in it; a non-final answer is followed by
  QUERY broadcasts (at most one per ``query_interval_s``) until the result is final. The
  journal answers QUERY, so nothing can be missed between two of them.
- ``via="activity"``: a ``logcat -T 1 -s MPAC_RESULT`` follower is started first, then ``am
  start``; the first final ``MPAC_RESULT`` line of this request id is the result, and QUERY
  is asked once more at the deadline. (``-T 1`` replays the last line logged before: an
  earlier attempt's final line of the same id is the journal's answer anyway, and a refusal
  the app does not journal — busy, invalid — is checked with QUERY before it is believed.)

When the link drops after the intent may have been sent, the device is reconnected (within
``reconnect_deadline_s``) and QUERY decides: a final result is returned, ``in_progress`` is
waited for, ``not_found`` means the intent never arrived and the same request (same id: the
app journals by id, so it cannot charge twice) is sent again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, NoReturn, TypeVar

from android_bridge.device import AndroidDevice, LogcatFollower, ShellResult
from android_bridge.errors import (
    AppNotInstalled,
    BridgeError,
    CommandTimeout,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
    IntentRejected,
    MalformedResult,
    ResultTimeout,
    ResultUnknown,
)
from android_bridge.intents import Via, am_argv
from terminal_emulator.contract import (
    CREDIT_CARD_PACKAGE,
    ID_PATTERN,
    RESULT_LOG_TAG,
    ContractError,
    ContractRequest,
    EndOfDayRequest,
    ErrorCode,
    ExtraSpec,
    PaymentRequest,
    QueryRequest,
    RefundRequest,
    Status,
    TransactionResult,
    VoidRequest,
    parse_am_broadcast_output,
    parse_result_log_line,
    result_from_broadcast_output,
)

log = logging.getLogger(__name__)

R = TypeVar("R", bound=ContractRequest)

#: Beyond ``broadcast_wait_ms``, how long ``am broadcast`` may take: Android's foreground
#: receiver budget is 10 s, after which it answers without the receiver (ANR).
RECEIVER_BUDGET_S = 10.0
#: The longest a QUERY broadcast may take (the app may spend a few seconds finding out what
#: became of an abandoned request before it answers; the receiver budget bounds it).
QUERY_COMMAND_S = RECEIVER_BUDGET_S + 5.0
#: After a reconnect that happened past the deadline, QUERY still gets this long once: the
#: truth may be known by now and is worth more than a timeout.
LATE_QUERY_S = 5.0
#: How long past the deadline an ``am broadcast`` may still take to complete (its receiver
#: holds it no longer than the deadline: ``broadcast_wait_ms`` is fitted to it).
AM_GRACE_S = 2.0
#: ``am start`` returns as soon as the activity manager took the intent.
START_COMMAND_S = 15.0
#: A payment's result may come this long after its card timeout (PIN entry, the gateway's
#: processing wait): the bridge's default deadline for a payment leaves room for it.
PAYMENT_MARGIN_S = 30.0
#: Presentation default for the convenience methods: the customer sees the outcome on the
#: terminal, which returns by itself (an unattended terminal must not wait for a tap).
DEFAULT_RESULT_SCREEN_TIMEOUT_MS = 3000
#: A result line of the activity path that never comes is given up after the deadline; the
#: follower keeps this many lines (only MPAC_RESULT lines reach it).
FOLLOWER_MAX_LINES = 2000

_LINK_ERRORS = (DeviceOffline, DeviceNotFound, DeviceUnauthorized)
#: Answers the Credit Card App gives without journaling the request (docs/intent-contract.md:
#: a request refused by validation, or while another one holds the card screen).
_UNJOURNALED_REFUSALS = frozenset(
    {ErrorCode.TERMINAL_BUSY, ErrorCode.INVALID_REQUEST, ErrorCode.UNSUPPORTED_API_VERSION}
)


def new_request_id() -> str:
    """A fresh request id: a UUID version 7 (time-ordered, so ids sort by creation in logs
    and journals), valid under the contract's ``ID_PATTERN``."""
    millis = time.time_ns() // 1_000_000
    random_bits = secrets.randbits(74)
    value = (
        (millis & ((1 << 48) - 1)) << 80
        | 0x7 << 76
        | (random_bits >> 62) << 64
        | 0b10 << 62
        | (random_bits & ((1 << 62) - 1))
    )
    request_id = str(uuid.UUID(int=value))
    assert ID_PATTERN.match(request_id)
    return request_id


def build_request(cls: type[R], **values: Any) -> R:
    """``cls(**values)`` with friendly input: enum fields take their string values, String[]
    fields any sequence (``entry_modes=["contactless"]``). Raises the contract's
    ``ContractError`` (a ValueError) for invalid values, TypeError for unknown options."""
    specs: dict[str, ExtraSpec] = {
        item.name: item.metadata["spec"]
        for item in dataclasses.fields(cls)
        if "spec" in item.metadata
    }
    converted: dict[str, Any] = {}
    for name, value in values.items():
        spec = specs.get(name)
        if spec is not None and spec.enum is not None and value is not None:
            enum = spec.enum
            if isinstance(value, list | tuple):
                value = tuple(enum(item) for item in value)
            else:
                value = enum(value)
        elif isinstance(value, list):
            value = tuple(value)
        converted[name] = value
    return cls(**converted)


class PaymentTerminal:
    """The Credit Card App of one device. Thread-safe: several operations may run at once
    (``submit``), and one thread may present a card while another waits for the result.

    ``via``: how intents are sent by default (``broadcast`` or ``activity``);
    ``result_timeout_s``: how long an operation waits for its final result (a payment waits
    at least its card timeout plus :data:`PAYMENT_MARGIN_S`); ``reconnect_deadline_s``: how
    long a dropped link is retried before the outcome is reported unknown;
    ``query_interval_s``: the least time between two QUERY broadcasts while waiting;
    ``max_workers``: threads of ``submit``. The device stays the caller's (``close`` does
    not close it)."""

    def __init__(
        self,
        device: AndroidDevice,
        *,
        via: Via = "broadcast",
        result_timeout_s: float = 90.0,
        reconnect_deadline_s: float = 30.0,
        query_interval_s: float = 1.0,
        max_workers: int = 4,
    ) -> None:
        if via not in ("broadcast", "activity"):
            raise ValueError(f"via must be 'broadcast' or 'activity', not {via!r}")
        self.device = device
        self.via: Via = via
        self.result_timeout_s = result_timeout_s
        self.reconnect_deadline_s = reconnect_deadline_s
        self.query_interval_s = query_interval_s
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._reconnect_lock = threading.Lock()
        # The connection (its banner object) on which the Credit Card App was last found
        # installed: checked again on each new connection.
        self._checked_connection: object | None = None
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def serial(self) -> str | None:
        serial = getattr(self.device, "serial", None)
        return serial if isinstance(serial, str) else None

    def close(self, *, wait: bool = True) -> None:
        """Stop the background threads of ``submit`` (operations not started are cancelled;
        with ``wait``, running ones are waited for). The device stays open: it is the
        caller's."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> PaymentTerminal:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- operations ---------------------------------------------------------------------------

    def execute(
        self, request: ContractRequest, *, via: Via | None = None, timeout_s: float | None = None
    ) -> TransactionResult:
        """Fire ``request`` and return its final result (or raise ResultTimeout /
        ResultUnknown / IntentRejected / AppNotInstalled / MalformedResult).

        ``timeout_s`` bounds the wait for a *final* result. By default it is
        ``result_timeout_s``, and for a payment at least its ``timeout_ms`` (how long the app
        waits for the card) plus :data:`PAYMENT_MARGIN_S`. A shorter ``timeout_s`` is obeyed:
        the bridge gives up first with ResultTimeout, and the payment goes on (query it).
        A QueryRequest is answered by :meth:`query`."""
        chosen: Via = via or self.via
        if chosen not in ("broadcast", "activity"):
            raise ValueError(f"via must be 'broadcast' or 'activity', not {chosen!r}")
        timeout = self.result_timeout_s if timeout_s is None else timeout_s
        if timeout_s is None and isinstance(request, PaymentRequest):
            timeout = max(timeout, request.timeout_ms / 1000 + PAYMENT_MARGIN_S)
        if isinstance(request, QueryRequest):
            return self.query(request.request_id, timeout_s=timeout)
        deadline = time.monotonic() + timeout
        self._ensure_app_installed()
        log.info(
            "%s %s: sending via %s (timeout %.1f s)",
            request.ACTION.short,
            request.request_id,
            chosen,
            timeout,
        )
        try:
            result = _Operation(self, request, chosen, deadline, timeout).run()
        except (ResultTimeout, ResultUnknown) as error:
            log.warning("%s %s: %s", request.ACTION.short, request.request_id, error.code)
            raise
        log.info(
            "%s %s: %s%s",
            request.ACTION.short,
            request.request_id,
            result.status.value,
            f" ({result.error_code.value})" if result.error_code else "",
        )
        return result

    def submit(
        self, request: ContractRequest, *, via: Via | None = None, timeout_s: float | None = None
    ) -> Future[TransactionResult]:
        """``execute`` in a background thread: the caller may present a card meanwhile."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this PaymentTerminal is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._max_workers, thread_name_prefix="payment-terminal"
                )
            executor = self._executor
        return executor.submit(self.execute, request, via=via, timeout_s=timeout_s)

    def query(self, request_id: str, *, timeout_s: float | None = None) -> TransactionResult:
        """The Credit Card App's answer for ``request_id`` now: final, ``in_progress``,
        ``processing`` or ``not_found``; changes nothing. Always by broadcast (the receiver
        answers QUERY within its broadcast budget). A dropped link is reconnected once; a device that cannot be
        reached raises ResultUnknown."""
        QueryRequest(request_id=request_id)  # refuse a malformed id before touching the device
        timeout = min(self.result_timeout_s, QUERY_COMMAND_S) if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        self._ensure_app_installed()
        banner = self.device.banner
        try:
            return self._query_once(request_id, deadline)
        except _LINK_ERRORS as error:
            self._recover(request_id, banner, error)
        return self._query_once(request_id, max(deadline, time.monotonic() + LATE_QUERY_S))

    def pay(
        self,
        amount: int,
        currency: str,
        *,
        request_id: str | None = None,
        timeout_s: float | None = None,
        **options: object,
    ) -> TransactionResult:
        """A card payment of ``amount`` minor units; ``options`` are PaymentRequest's
        (tip_amount, entry_modes, tender_types, tab_id, note, metadata, cashier_id,
        timeout_ms, receipt_mode, skip_result_screen, result_screen_timeout_ms,
        broadcast_wait_ms, via). Unless the result screen is skipped, it returns by itself
        after :data:`DEFAULT_RESULT_SCREEN_TIMEOUT_MS`."""
        via, fields = self._split_options(options)
        request = build_request(
            PaymentRequest,
            request_id=request_id or new_request_id(),
            amount=amount,
            currency=currency,
            **fields,
        )
        return self.execute(request, via=via, timeout_s=timeout_s)

    def refund(
        self,
        payment_id: str,
        *,
        amount: int | None = None,
        request_id: str | None = None,
        timeout_s: float | None = None,
        **options: object,
    ) -> TransactionResult:
        """Refund ``amount`` (all that is left when None) of a captured payment; ``options``
        are RefundRequest's (currency, reason, metadata, cashier_id, …, via)."""
        via, fields = self._split_options(options)
        request = build_request(
            RefundRequest,
            request_id=request_id or new_request_id(),
            payment_id=payment_id,
            amount=amount,
            **fields,
        )
        return self.execute(request, via=via, timeout_s=timeout_s)

    def void(
        self,
        payment_id: str,
        *,
        request_id: str | None = None,
        timeout_s: float | None = None,
        **options: object,
    ) -> TransactionResult:
        """Void an authorized, uncaptured payment; ``options`` are VoidRequest's."""
        via, fields = self._split_options(options)
        request = build_request(
            VoidRequest,
            request_id=request_id or new_request_id(),
            payment_id=payment_id,
            **fields,
        )
        return self.execute(request, via=via, timeout_s=timeout_s)

    def end_of_day(
        self, *, request_id: str | None = None, timeout_s: float | None = None, **options: object
    ) -> TransactionResult:
        """Close the day (``scope="terminal"`` by default, or ``"store"``); ``options`` are
        EndOfDayRequest's."""
        via, fields = self._split_options(options)
        request = build_request(
            EndOfDayRequest, request_id=request_id or new_request_id(), **fields
        )
        return self.execute(request, via=via, timeout_s=timeout_s)

    @staticmethod
    def _split_options(options: dict[str, object]) -> tuple[Via | None, dict[str, object]]:
        fields = dict(options)
        via = fields.pop("via", None)
        if not fields.get("skip_result_screen"):
            fields.setdefault("result_screen_timeout_ms", DEFAULT_RESULT_SCREEN_TIMEOUT_MS)
        if via is None:
            return None, fields
        if via == "broadcast":
            return "broadcast", fields
        if via == "activity":
            return "activity", fields
        raise ValueError(f"via must be 'broadcast' or 'activity', not {via!r}")

    # -- what the operations share ------------------------------------------------------------

    def _ensure_app_installed(self) -> None:
        """Once per connection: the Credit Card App must be there. Nothing was sent yet, so a
        dead link is reconnected once and its failure raised as it is."""
        banner = self.device.banner
        if banner is not None and banner is self._checked_connection:
            return
        try:
            installed = self.device.is_installed(CREDIT_CARD_PACKAGE)
        except _LINK_ERRORS:
            with self._reconnect_lock:
                if self.device.banner is banner:
                    self.device.reconnect(deadline_s=self.reconnect_deadline_s)
            installed = self.device.is_installed(CREDIT_CARD_PACKAGE)
        if not installed:
            self._checked_connection = None
            raise AppNotInstalled(CREDIT_CARD_PACKAGE, serial=self.serial)
        self._checked_connection = self.device.banner

    def _recover(self, request_id: str, banner: object | None, error: BridgeError) -> None:
        """The link dropped while the outcome of ``request_id`` was not known: reconnect
        within ``reconnect_deadline_s`` or raise ResultUnknown (never a failure)."""
        log.warning("%s: link lost (%s); reconnecting", request_id, error)
        with self._reconnect_lock:
            current = self.device.banner
            if current is not None and current is not banner:
                return  # another operation reconnected meanwhile
            try:
                self.device.reconnect(deadline_s=self.reconnect_deadline_s)
            except BridgeError as failure:
                raise ResultUnknown(
                    f"lost the link to the device and could not reconnect within "
                    f"{self.reconnect_deadline_s:g} s; the outcome of {request_id} is unknown "
                    f"({failure.message})",
                    request_id=request_id,
                    serial=self.serial,
                ) from failure
        log.info("%s: reconnected", request_id)

    def _run_am(self, argv: list[str], timeout_s: float) -> ShellResult:
        return self.device.run(argv, timeout_s=max(timeout_s, 0.5))

    def _read_broadcast(self, shell: ShellResult, request_id: str) -> TransactionResult | None:
        """The contract result in ``am broadcast`` output; None when nobody answered (and the
        app is installed); IntentRejected, MalformedResult or AppNotInstalled otherwise."""
        output = shell.output
        if not shell.ok:
            self._rejected(output, shell.exit_code)
        # The completed line first: the printed result extras may hold any text (a metadata
        # echo with "Error: …" on a line of its own), and am never completes a refused intent.
        parsed = parse_am_broadcast_output(output)
        if parsed is None:
            if _am_error(output):
                self._rejected(output, shell.exit_code)
            raise MalformedResult(
                "am broadcast printed no 'Broadcast completed' line", raw=output, serial=self.serial
            )
        try:
            result = result_from_broadcast_output(output)
        except ContractError as error:
            raise MalformedResult(
                f"the broadcast's answer is not a contract result: {error.message}",
                raw=output,
                serial=self.serial,
            ) from None
        if result is None:
            # result=0 without data: nobody answered. Missing app, disabled receiver, or a
            # stopped app reached without FLAG_INCLUDE_STOPPED_PACKAGES (always sent here).
            if not self.device.is_installed(CREDIT_CARD_PACKAGE):
                self._checked_connection = None
                raise AppNotInstalled(CREDIT_CARD_PACKAGE, serial=self.serial)
            return None
        if result.request_id is not None and result.request_id != request_id:
            raise MalformedResult(
                f"asked about {request_id}, answered about {result.request_id}",
                raw=output,
                serial=self.serial,
            )
        return result

    def _rejected(self, output: str, exit_code: int) -> NoReturn:
        """am refused: AppNotInstalled when that is why, IntentRejected otherwise."""
        if not self.device.is_installed(CREDIT_CARD_PACKAGE):
            self._checked_connection = None
            raise AppNotInstalled(CREDIT_CARD_PACKAGE, serial=self.serial)
        raise IntentRejected(
            f"am refused the intent: {_first_error_line(output)}",
            output=output,
            exit_code=exit_code,
            serial=self.serial,
        )

    def _query_once(self, request_id: str, deadline: float) -> TransactionResult:
        """One QUERY broadcast (CommandTimeout when the device does not answer in time)."""
        argv = am_argv(QueryRequest(request_id=request_id), via="broadcast")
        timeout = min(QUERY_COMMAND_S, deadline - time.monotonic())
        shell = self._run_am(argv, timeout)
        result = self._read_broadcast(shell, request_id)
        if result is None:
            raise IntentRejected(
                "the Credit Card App is installed but did not answer the QUERY broadcast "
                "(receiver disabled, or an app that does not speak this contract?)",
                output=shell.output,
                exit_code=shell.exit_code,
                serial=self.serial,
            )
        log.debug("query %s: %s", request_id, result.status.value)
        return result


class _Operation:
    """One ``execute``: send, wait, recover; state of this request only."""

    def __init__(
        self,
        terminal: PaymentTerminal,
        request: ContractRequest,
        via: Via,
        deadline: float,
        timeout_s: float,
    ) -> None:
        self.terminal = terminal
        self.device = terminal.device
        self.request = request
        self.request_id = request.request_id
        self.via = via
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.last_status: Status | None = None
        self.follower: LogcatFollower | None = None
        self.late_recoveries = 0
        self.late_asks = 0

    def run(self) -> TransactionResult:
        send = True  # nothing sent yet, or QUERY said the intent never arrived
        ask_first = False  # after a reconnect: QUERY before anything else
        try:
            while True:
                banner = self.device.banner
                try:
                    if self.via == "activity" and self.follower is None:
                        # Started before the intent is fired: the line cannot be missed.
                        self.follower = self.device.follow_logcat(
                            "-T", "1", "-s", RESULT_LOG_TAG, max_lines=FOLLOWER_MAX_LINES
                        )
                    if ask_first:
                        ask_first = False
                        if time.monotonic() >= self.deadline:
                            if self.late_asks:
                                raise self._timeout()
                            self.late_asks += 1
                        answer = self._query(late=True)
                        if answer is not None:
                            if answer.status is Status.NOT_FOUND:
                                log.info("%s: never arrived; sending it again", self.request_id)
                                send = True
                            elif answer.is_final:
                                return answer
                            else:
                                self._note(answer)
                    if send:
                        send = False
                        result = self._send()
                        if result is None and self.via == "broadcast":
                            ask_first = True  # am did not complete: the journal knows
                            continue
                        if result is not None and result.is_final:
                            return result
                        if result is not None:
                            self._note(result)
                    if self.via == "activity":
                        return self._wait_for_log_line()
                    result = self._poll()
                    if result is None:
                        send = True
                        continue
                    return result
                except _LINK_ERRORS as error:
                    self._close_follower()
                    if time.monotonic() > self.deadline:
                        self.late_recoveries += 1
                        if self.late_recoveries > 1:
                            raise ResultUnknown(
                                f"the link keeps dropping; the outcome of {self.request_id} "
                                "is unknown",
                                request_id=self.request_id,
                                serial=self.terminal.serial,
                            ) from error
                    self.terminal._recover(self.request_id, banner, error)
                    ask_first = True
        finally:
            self._close_follower()

    # -- sending ------------------------------------------------------------------------------

    def _send(self) -> TransactionResult | None:
        """Fire the intent. Broadcast: the receiver's answer (None: not known yet, query);
        activity: None (the answer comes through logcat)."""
        terminal = self.terminal
        if self.via == "activity":
            shell = terminal._run_am(am_argv(self.request, via="activity"), START_COMMAND_S)
            if not shell.ok or _am_error(shell.output):
                terminal._rejected(shell.output, shell.exit_code)
            for line in shell.output.splitlines():
                if line.startswith("Warning:"):
                    log.warning("%s: am start: %s", self.request_id, line)
            return None
        request = self._fitted_broadcast_request()
        wait_s = int(getattr(request, "broadcast_wait_ms", 0)) / 1000
        left_s = max(0.0, self.deadline - time.monotonic())
        timeout_s = min(wait_s + RECEIVER_BUDGET_S, left_s + AM_GRACE_S)
        try:
            shell = terminal._run_am(am_argv(request, via="broadcast"), timeout_s)
        except CommandTimeout:
            log.warning("%s: am broadcast did not complete; asking with QUERY", self.request_id)
            return None
        result = terminal._read_broadcast(shell, self.request_id)
        if result is None:
            # Nobody answered although the app is installed: maybe a receiver that ran out
            # of its budget. The journal tells whether the request arrived.
            answer = terminal._query_once(self.request_id, self.deadline + LATE_QUERY_S)
            if answer.status is Status.NOT_FOUND:
                raise IntentRejected(
                    "nobody answered the broadcast and the Credit Card App never received "
                    f"{self.request_id} (its receiver disabled?)",
                    output=shell.output,
                    exit_code=shell.exit_code,
                    serial=terminal.serial,
                )
            return answer
        return result

    def _fitted_broadcast_request(self) -> ContractRequest:
        """The request with ``broadcast_wait_ms`` no longer than the time left: the receiver
        must not hold the broadcast past the caller's deadline. A presentation option: the
        request stays "the same" for the journal."""
        wait_ms = getattr(self.request, "broadcast_wait_ms", None)
        if not isinstance(wait_ms, int):
            return self.request
        left_ms = int((self.deadline - time.monotonic()) * 1000)
        if wait_ms <= left_ms:
            return self.request
        return dataclasses.replace(self.request, broadcast_wait_ms=max(0, left_ms))  # type: ignore[call-arg]

    # -- waiting ------------------------------------------------------------------------------

    def _note(self, result: TransactionResult) -> None:
        if result.status is not self.last_status:
            log.info("%s: %s", self.request_id, result.status.value)
        self.last_status = result.status

    def _query(self, *, late: bool = False) -> TransactionResult | None:
        """QUERY once; None when it did not answer in time. ``late`` gives it a few seconds
        even past the deadline (after a reconnect, the truth beats a timeout)."""
        deadline = self.deadline
        if late:
            deadline = max(deadline, time.monotonic() + LATE_QUERY_S)
        try:
            return self.terminal._query_once(self.request_id, deadline)
        except CommandTimeout:
            return None

    def _poll(self) -> TransactionResult | None:
        """Broadcast path: QUERY until final (None: not_found, send again); paced so that
        queries start at most once per ``query_interval_s``."""
        interval = self.terminal.query_interval_s
        while True:
            now = time.monotonic()
            if now >= self.deadline:
                raise self._timeout()
            started = now
            answer = self._query()
            if answer is not None:
                if answer.status is Status.NOT_FOUND:
                    log.info("%s: never arrived; sending it again", self.request_id)
                    return None
                if answer.is_final:
                    return answer
                self._note(answer)
            pause = min(interval - (time.monotonic() - started), self.deadline - time.monotonic())
            if pause > 0:
                time.sleep(pause)

    def _wait_for_log_line(self) -> TransactionResult:
        """Activity path: the first final MPAC_RESULT line of this request id; at the
        deadline, QUERY once."""
        follower = self.follower
        assert follower is not None
        found: list[TransactionResult] = []
        stale: set[str] = set()

        def is_final_answer(line: str) -> bool:
            if line in stale:
                return False
            result = _result_of_line(line)
            if result is None or result.request_id != self.request_id:
                return False
            if not result.is_final:
                self._note(result)
                return False
            found.append(result)
            return True

        while (remaining := self.deadline - time.monotonic()) > 0:
            line = follower.wait_for(is_final_answer, timeout_s=remaining)
            if line is None:
                break
            if not self._is_stale(found[-1]):
                return found[-1]
            stale.add(line)
        answer = self._query(late=True)
        if answer is not None and answer.is_final and answer.status is not Status.NOT_FOUND:
            return answer
        if answer is not None:
            self._note(answer)
        raise self._timeout()

    def _is_stale(self, logged: TransactionResult) -> bool:
        """Whether a refusal the app does not journal (busy, invalid) is an earlier
        attempt's line that ``logcat -T 1`` replayed rather than this attempt's answer: the
        journal then knows the request (QUERY answers something else), so this attempt got
        past that refusal and its own line is still to come."""
        if logged.error_code not in _UNJOURNALED_REFUSALS:
            return False
        answer = self._query()
        if answer is None or answer.status is Status.NOT_FOUND or answer == logged:
            return False
        log.info("%s: ignoring an earlier attempt's %s line", self.request_id, logged.error_code)
        return True

    def _timeout(self) -> ResultTimeout:
        last = self.last_status.value if self.last_status is not None else None
        return ResultTimeout(
            f"no final result for {self.request_id} within {self.timeout_s:g} s"
            + (f" (last status: {last})" if last else ""),
            request_id=self.request_id,
            last_status=last,
            serial=self.terminal.serial,
        )

    def _close_follower(self) -> None:
        follower, self.follower = self.follower, None
        if follower is not None:
            with contextlib.suppress(BridgeError):
                follower.close()


def _result_of_line(line: str) -> TransactionResult | None:
    try:
        return parse_result_log_line(line)
    except (ContractError, ValueError):
        return None  # a line that looks like a result but is not one: not ours to judge


def _am_error(output: str) -> bool:
    """``am`` reports most refusals on its output with exit status 0 (Android 12, 13):
    ``Error: …``, ``Error type 3``, ``Exception occurred while executing …``."""
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith(("Error:", "Error type", "Exception occurred")):
            return True
        if stripped.startswith(("java.lang.", "android.")) and "Exception" in stripped:
            return True
    return False


def _first_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if "Exception:" in line or line.startswith("Error:"):
            return line
    for line in lines:
        if line.startswith(("Error", "Exception")) or "not found" in line:
            return line
    return lines[-1] if lines else "(no output)"
