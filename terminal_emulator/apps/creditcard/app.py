"""The Credit Card App's process: the request journal, running operations, and the work itself.

Every PAYMENT, REFUND, VOID and END_OF_DAY goes through :meth:`CreditCardApplication.submit`:
the contract's :class:`RequestJournal` is written first (so a kill leaves a trace), then an
:class:`Operation` runs in the app's process (cancelled if the process dies) and completes the
journal before anyone is answered. QUERY goes through :meth:`CreditCardApplication.query`.

pgw idempotency keys (docs/pgw.md) are derived from the request id and an attempt number:
``mpac:<terminal id>:<request id>:<action>:<attempt>``; the same string is the payment's
``reference``, which is how a restarted app finds a payment whose answer it never got. A card
that asks for a PIN is first tried without one (attempt 1: declined ``pin_required``); the PIN
goes in attempt 2 under a new key, because pgw refuses another body under the first key.
Before each send the attempt is recorded in the app's database (``attempt:<request id>``), so a
restarted app knows whether anything reached pgw: nothing sent → ``cancelled/INTERRUPTED``;
sent → ask pgw (by reference) and answer what it says.

A PAYMENT with ``tab_id`` pays a part of that smarttab tab through smarttab
(``POST /v1/tabs/{id}/parts/{n}/pay``), which keeps the tab's books and talks to pgw itself;
the part is the first unpaid (or failed, or in-doubt) part whose amount equals ``amount``
(the part's amount as smarttab shows it, tip share included); ``tip_amount`` is a tip given
at payment on top of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from terminal_emulator.android import (
    Application,
    CancellationSignal,
    KeyValueDatabase,
    OperationCanceled,
    OperationTimeout,
    run_with_timeout,
)
from terminal_emulator.apps.common import TerminalServices, format_amount
from terminal_emulator.backend_client import BackendError, NetworkError
from terminal_emulator.contract import (
    PGW_FAILURE_CODES,
    RESULT_LOG_TAG,
    Action,
    BeginOutcome,
    ContractRequest,
    EndOfDayRequest,
    EntryMode,
    ErrorCode,
    JournalEntry,
    JournalState,
    PaymentRequest,
    RefundRequest,
    RequestJournal,
    Status,
    TenderType,
    TransactionResult,
    VoidRequest,
    error_code_for_pgw_failure,
    error_code_for_pgw_problem,
    mask_pan,
)
from terminal_emulator.hardware import CardData, CustomerCancelled
from terminal_emulator.identity import IdentityError
from terminal_emulator.tracing import request_trace_id, traced_request

log = logging.getLogger(__name__)

TAG = "CreditCardApp"
JOURNAL_DB = "transactions"
ATTEMPT_PREFIX = "attempt:"

APPROVED_PAYMENT_STATUSES = {"captured", "authorized", "partially_refunded", "refunded"}
PENDING_PAYMENT_STATUSES = {"processing", "pending", "requires_action"}


class Stage:
    PRESENT_CARD = "present_card"
    PIN_ENTRY = "pin_entry"
    PROCESSING = "processing"
    RESULT = "result"


@dataclass
class Operation:
    """One request being worked on in this process (memory only: dies with the process)."""

    request: ContractRequest
    resumed: bool = False
    stage: str = Stage.PROCESSING
    notice: str | None = None
    result: TransactionResult | None = None
    cancel: CancellationSignal = field(default_factory=CancellationSignal)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[TransactionResult] | None = None
    listeners: list[Callable[[], None]] = field(default_factory=list)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def needs_card(self) -> bool:
        return isinstance(self.request, PaymentRequest) and not self.resumed

    def set_stage(self, stage: str, notice: str | None = None) -> None:
        self.stage = stage
        self.notice = notice
        self._changed()

    def _changed(self) -> None:
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:
                log.exception("operation listener failed")

    async def wait(self, timeout_s: float | None = None) -> TransactionResult | None:
        """The result, or None if not done within ``timeout_s``."""
        if not self.done.is_set():
            try:
                await asyncio.wait_for(asyncio.shield(self.done.wait()), timeout_s)
            except TimeoutError:
                return None
        return self.result


def _now_text(now: dt.datetime) -> str:
    return now.isoformat(timespec="milliseconds")


class _Failure(Exception):
    """Ends an operation with this result."""

    def __init__(self, result: TransactionResult) -> None:
        super().__init__(result.error_message)
        self.result = result


class CreditCardApplication(Application):
    def __init__(self, services: TerminalServices) -> None:
        super().__init__()
        self.services = services
        self.running: dict[str, Operation] = {}
        self.listeners: list[Callable[[], None]] = []

    # -- process start ------------------------------------------------------------------------

    def on_create(self) -> None:
        self.db: KeyValueDatabase = self.open_database(JOURNAL_DB)
        self.journal = RequestJournal(self.db, owner=self.process.instance_id, now=self.now)
        # What a killed process left behind is found out now (pgw by reference), so a QUERY
        # soon tells the final truth.
        for entry in self.journal.unfinished():
            try:
                self._start(entry.stored_request(), resumed=True)
            except Exception:
                self.log.e(TAG, f"cannot resume {entry.request_id}")

    # -- answers ------------------------------------------------------------------------------

    def answer(self, result: TransactionResult) -> TransactionResult:
        """Every answer also goes to logcat (``MPAC_RESULT``), the third way results reach
        callers."""
        self.log.i(RESULT_LOG_TAG, result.log_message())
        return result

    # -- entry points -------------------------------------------------------------------------

    def submit(self, request: ContractRequest) -> tuple[TransactionResult | None, Operation | None]:
        """Journal first, then work: an answer now (replay, conflict, busy) or the operation
        to wait for."""
        running = self.running.get(request.request_id)
        existing = self.journal.get(request.request_id)
        if (
            isinstance(request, PaymentRequest)
            and existing is None
            and any(op.needs_card and not op.done.is_set() for op in self.running.values())
        ):
            # The card screen is taken by another request; nothing journaled (nothing happened).
            return TransactionResult.failure(
                ErrorCode.TERMINAL_BUSY, request_id=request.request_id, action=request.ACTION
            ), None
        if running is not None and existing is not None:
            if existing.fingerprint != request.fingerprint():
                return TransactionResult.failure(
                    ErrorCode.REQUEST_ID_REUSED,
                    request_id=request.request_id,
                    action=request.ACTION,
                ), None
            return None, running  # the same request again: wait for the one running
        begin = self.journal.begin(request)
        if begin.outcome in (BeginOutcome.REPLAY, BeginOutcome.CONFLICT, BeginOutcome.IN_PROGRESS):
            assert begin.answer is not None
            return begin.answer, None
        assert begin.entry is not None
        return None, self._start(
            begin.entry.stored_request() if begin.outcome is BeginOutcome.RESUME else request,
            resumed=begin.outcome is BeginOutcome.RESUME,
            begun=True,
        )

    async def query(self, request_id: str) -> TransactionResult:
        """QUERY: the journal's answer; an abandoned or still-processing request is first found
        out (bounded by ``query_resolve_s``)."""
        entry = self.journal.get(request_id)
        if entry is not None and not self._final(entry):
            operation = self.running.get(request_id)
            if operation is None:
                operation = self._start(entry.stored_request(), resumed=True)
            await operation.wait(self.services.config.query_resolve_s)
        return self.journal.query(request_id)

    @staticmethod
    def _final(entry: JournalEntry) -> bool:
        return (
            entry.state is JournalState.DONE and entry.result is not None and entry.result.is_final
        )

    def _start(self, request: ContractRequest, *, resumed: bool, begun: bool = False) -> Operation:
        if not begun:
            begin = self.journal.begin(request)
            if begin.outcome is BeginOutcome.REPLAY:
                operation = Operation(request, resumed=True, result=begin.answer)
                operation.done.set()
                return operation
        operation = Operation(request, resumed=resumed)
        self.running[request.request_id] = operation
        operation.listeners.append(self._changed)
        operation.task = self.launch(
            self._run(operation), name=f"{request.ACTION.short} {request.request_id}"
        )
        self._changed()
        return operation

    def _changed(self) -> None:
        for listener in list(self.listeners):
            listener()
        self.services.invalidate()

    async def _run(self, operation: Operation) -> TransactionResult:
        request = operation.request
        trace_id = request_trace_id(
            self.services.identity.terminal_id or "unenrolled", request.request_id
        )
        self.log.i(TAG, f"{request.request_id} trace {trace_id}")
        try:
            with traced_request(trace_id):
                if operation.resumed:
                    result = await self._resolve(operation)
                else:
                    result = await self._work(operation)
        except _Failure as failure:
            result = failure.result
        except IdentityError as error:
            result = TransactionResult.failure(error.code, error.message)
        except asyncio.CancelledError:
            raise  # the process is gone; the journal keeps in_progress for the next one
        except Exception as error:
            self.log.e(TAG, f"{request.request_id} failed: {type(error).__name__}: {error}")
            result = TransactionResult.failure(ErrorCode.INTERNAL_ERROR)
        result = result.replace(
            request_id=request.request_id,
            action=request.ACTION,
            metadata=getattr(request, "metadata", None),
            completed_at=result.completed_at or _now_text(self.now()),
        )
        if isinstance(request, PaymentRequest) and request.tab_id:
            result = result.replace(tab_id=request.tab_id)
        self.journal.complete(request.request_id, result)
        operation.result = result
        self.running.pop(request.request_id, None)
        operation.set_stage(Stage.RESULT)
        operation.done.set()
        return result

    # -- attempts (what was sent) -------------------------------------------------------------

    def _attempt(self, request_id: str) -> dict[str, Any] | None:
        text = self.db.get(ATTEMPT_PREFIX + request_id)
        return json.loads(text) if text is not None else None

    def _record_attempt(self, request_id: str, **record: Any) -> None:
        self.db.put(ATTEMPT_PREFIX + request_id, json.dumps(record))

    def _key(self, request: ContractRequest, attempt: int) -> str:
        terminal = self.services.identity.terminal_id or "unenrolled"
        return f"mpac:{terminal}:{request.request_id}:{request.ACTION.short}:{attempt}"

    # -- the work -----------------------------------------------------------------------------

    async def _work(self, operation: Operation) -> TransactionResult:
        request = operation.request
        if not self.services.identity.enrolled:
            return TransactionResult.failure(ErrorCode.TERMINAL_NOT_ENROLLED)
        if isinstance(request, PaymentRequest):
            return await self._payment(operation, request)
        if isinstance(request, RefundRequest):
            return await self._refund(request, self._key(request, 1))
        if isinstance(request, VoidRequest):
            return await self._void(request, self._key(request, 1))
        if isinstance(request, EndOfDayRequest):
            return await self._end_of_day(request, self._key(request, 1))
        return TransactionResult.failure(ErrorCode.INVALID_REQUEST, "unsupported action")

    async def _read(self, operation: Operation, reading: Any, timeout_s: float) -> Any:
        try:
            return await run_with_timeout(reading, timeout_s=timeout_s, cancel=operation.cancel)
        except OperationTimeout:
            raise _Failure(TransactionResult.failure(ErrorCode.TIMEOUT)) from None
        except (OperationCanceled, CustomerCancelled) as error:
            code = (
                ErrorCode.CASHIER_CANCELLED
                if isinstance(error, OperationCanceled) and error.reason == "cashier"
                else ErrorCode.CUSTOMER_CANCELLED
            )
            raise _Failure(TransactionResult.failure(code)) from None

    async def _payment(self, operation: Operation, request: PaymentRequest) -> TransactionResult:
        if TenderType.CARD not in request.tender_types:
            return TransactionResult.failure(
                ErrorCode.INVALID_REQUEST,
                "this terminal takes cards only (tender_types needs card)",
            )
        reader = self.services.card_reader
        reader.reset()
        timeout_s = request.timeout_ms / 1000
        operation.set_stage(Stage.PRESENT_CARD)
        card: CardData = await self._read(
            operation, reader.read_card(tuple(request.entry_modes)), timeout_s
        )
        operation.set_stage(Stage.PROCESSING)
        pin: str | None = None
        attempt = 1
        while True:
            if request.tab_id:
                result, failure_code = await self._pay_tab(request, card, pin, attempt)
            else:
                result, failure_code = await self._pay_pgw(operation, request, card, pin, attempt)
            if failure_code == "pin_required" and pin is None:
                operation.set_stage(Stage.PIN_ENTRY)
                try:
                    pin = await self._read(operation, reader.read_pin(), timeout_s)
                except _Failure as failure:
                    if failure.result.error_code is ErrorCode.TIMEOUT:
                        return result  # no PIN came: the card's pin_required decline stands
                    raise
                operation.set_stage(Stage.PROCESSING)
                attempt += 1
                continue
            return result

    def _payment_body(
        self, request: PaymentRequest, card: CardData, pin: str | None, key: str
    ) -> dict[str, Any]:
        card_body: dict[str, Any] = {
            "pan": card.pan,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
        }
        if pin is not None:
            card_body["pin"] = pin
        body: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency,
            "tip_amount": request.tip_amount,
            "method": "card_present",
            "entry_mode": card.entry_mode.value,
            "card": card_body,
            "reference": key,
            "metadata": {"request_id": request.request_id},
        }
        if request.note:
            body["description"] = request.note
        if request.cashier_id:
            body["cashier_id"] = request.cashier_id
        return body

    async def _pay_pgw(
        self,
        operation: Operation,
        request: PaymentRequest,
        card: CardData,
        pin: str | None,
        attempt: int,
    ) -> tuple[TransactionResult, str | None]:
        key = self._key(request, attempt)
        body = self._payment_body(request, card, pin, key)
        self._record_attempt(
            request.request_id, via="pgw", attempt=attempt, reference=key, sent=True
        )
        _, payment = await self._pgw_call(
            lambda: self.services.pgw.create_payment(body, key), payment_reference=key
        )
        if payment.get("status") in PENDING_PAYMENT_STATUSES:
            payment = await self._follow(payment)
        return self._payment_result(payment), payment.get("failure_code")

    async def _pgw_call(
        self, call: Callable[[], Any], *, payment_reference: str | None = None
    ) -> Any:
        """One pgw call with the device token: retried while pgw says the same key is in
        progress, once with a new token when the token is refused. Errors become results."""
        refreshed = False
        for _ in range(10):
            try:
                return await call()
            except BackendError as error:
                if error.status == 401 and not refreshed:
                    refreshed = True
                    self.services.identity.invalidate_token()
                    continue
                if error.code == "idempotency_request_in_progress":
                    await asyncio.sleep(1.0)
                    continue
                if error.code == "provider_timeout" or error.status in (502, 504):
                    raise _Failure(TransactionResult.failure(ErrorCode.GATEWAY_TIMEOUT)) from error
                message = f"{error.code}: {error.detail}" if error.detail else error.code
                raise _Failure(
                    TransactionResult.failure(error_code_for_pgw_problem(error.code), message[:200])
                ) from error
            except NetworkError as error:
                if error.maybe_sent and payment_reference is not None:
                    raise _Failure(TransactionResult.failure(ErrorCode.GATEWAY_TIMEOUT)) from error
                raise _Failure(TransactionResult.failure(ErrorCode.NETWORK_ERROR)) from error
        raise _Failure(TransactionResult.failure(ErrorCode.DUPLICATE_IN_PROGRESS))

    async def _follow(self, payment: dict[str, Any]) -> dict[str, Any]:
        """After 202: ask pgw again for a while; the reconciler or a webhook settles it."""
        config = self.services.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + config.processing_wait_s
        while payment.get("status") in PENDING_PAYMENT_STATUSES and loop.time() < deadline:
            await asyncio.sleep(config.processing_poll_s)
            with contextlib.suppress(BackendError, NetworkError):
                payment = await self.services.pgw.get_payment(str(payment["id"]))
        return payment

    def _payment_result(self, payment: dict[str, Any]) -> TransactionResult:
        status = str(payment.get("status"))
        card = payment.get("card") or {}
        last4 = card.get("last4")
        entry_mode = payment.get("entry_mode")
        details: dict[str, Any] = {
            "payment_id": str(payment["id"]),
            "amount": payment.get("amount"),
            "tip_amount": payment.get("tip_amount"),
            "currency": payment.get("currency"),
            "payment_status": status,
            "tender_type": TenderType.QR
            if payment.get("method") == "qr_wallet"
            else TenderType.CARD,
            "entry_mode": EntryMode(entry_mode) if entry_mode else None,
            "masked_pan": mask_pan(last4) if last4 else None,
            "card_brand": card.get("brand") or None,
        }
        if status in APPROVED_PAYMENT_STATUSES:
            return TransactionResult(
                status=Status.APPROVED, auth_code=payment.get("auth_code"), **details
            )
        if status in PENDING_PAYMENT_STATUSES:
            return TransactionResult(
                status=Status.PROCESSING,
                error_code=ErrorCode.GATEWAY_TIMEOUT,
                error_message=ErrorCode.GATEWAY_TIMEOUT.default_message,
                **details,
            )
        if status == "expired":
            return TransactionResult.failure(ErrorCode.QR_EXPIRED, **details)
        failure = payment.get("failure_code")
        code = error_code_for_pgw_failure(failure)
        return TransactionResult.failure(code, payment.get("failure_message") or None, **details)

    # -- tab payments (smarttab) ------------------------------------------------------------

    async def _pay_tab(
        self, request: PaymentRequest, card: CardData, pin: str | None, attempt: int
    ) -> tuple[TransactionResult, str | None]:
        assert request.tab_id is not None
        smarttab = self.services.smarttab
        card_body: dict[str, Any] = {
            "pan": card.pan,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
        }
        if pin is not None:
            card_body["pin"] = pin
        body: dict[str, Any] = {
            "method": "card_present",
            "entry_mode": card.entry_mode.value,
            "card": card_body,
        }
        if request.tip_amount:
            body["tip_amount"] = request.tip_amount
        if request.cashier_id:
            body["cashier_id"] = request.cashier_id
        for _ in range(5):
            tab = await self._tab_call(lambda: smarttab.get_tab(request.tab_id or ""))
            part = self._find_part(tab, request.amount)
            if part is None:
                return TransactionResult.failure(
                    ErrorCode.INVALID_REQUEST,
                    f"tab {request.tab_id} has no part of {request.amount} left to pay",
                ), None
            self._record_attempt(
                request.request_id,
                via="smarttab",
                attempt=attempt,
                tab_id=request.tab_id,
                part_number=part["number"],
                sent=True,
            )
            tab_id, version, number = str(tab["id"]), int(tab["version"]), int(part["number"])

            def pay(tab_id: str = tab_id, version: int = version, number: int = number) -> Any:
                return smarttab.pay_part(tab_id, version, number, body)

            try:
                _, answer = await self._tab_call(pay, retry_conflict=False)
            except BackendError as error:
                if error.code == "version_conflict":
                    continue  # someone changed the tab: read it again
                raise
            return await self._tab_result(answer["part"], str(tab["id"]))
        return TransactionResult.failure(ErrorCode.GATEWAY_ERROR, "the tab kept changing"), None

    @staticmethod
    def _find_part(tab: dict[str, Any], amount: int) -> dict[str, Any] | None:
        split = tab.get("split") or {}
        for part in split.get("parts", []):
            if part["status"] in ("unpaid", "failed", "processing") and part["amount"] == amount:
                return dict(part)
        return None

    async def _tab_call(self, call: Callable[[], Any], *, retry_conflict: bool = True) -> Any:
        refreshed = False
        for _ in range(10):
            try:
                return await call()
            except BackendError as error:
                if error.status == 401 and not refreshed:
                    refreshed = True
                    self.services.identity.invalidate_token()
                    continue
                if error.code == "payment_in_progress":
                    await asyncio.sleep(1.0)
                    continue
                if error.code == "version_conflict" and not retry_conflict:
                    raise
                if error.code == "tab_not_found":
                    raise _Failure(
                        TransactionResult.failure(
                            ErrorCode.INVALID_REQUEST, f"unknown tab: {error.detail}"[:200]
                        )
                    ) from error
                raise _Failure(
                    TransactionResult.failure(
                        error_code_for_pgw_problem(error.code), f"smarttab: {error.code}"
                    )
                ) from error
            except NetworkError as error:
                raise _Failure(
                    TransactionResult.failure(
                        ErrorCode.GATEWAY_TIMEOUT if error.maybe_sent else ErrorCode.NETWORK_ERROR
                    )
                ) from error
        raise _Failure(TransactionResult.failure(ErrorCode.DUPLICATE_IN_PROGRESS))

    async def _tab_result(
        self, part: dict[str, Any], tab_id: str
    ) -> tuple[TransactionResult, str | None]:
        attempt = part.get("last_attempt") or {}
        payment_id = attempt.get("payment_id") or part.get("payment_id")
        if part["status"] == "processing" and payment_id is None:
            return TransactionResult(
                status=Status.PROCESSING,
                error_code=ErrorCode.GATEWAY_TIMEOUT,
                error_message=ErrorCode.GATEWAY_TIMEOUT.default_message,
            ), None
        if part["status"] == "failed" and payment_id is None:
            failure = attempt.get("failure_code")
            code = (
                PGW_FAILURE_CODES[failure]
                if failure in PGW_FAILURE_CODES
                else error_code_for_pgw_problem(failure or "gateway_error")
            )
            return TransactionResult.failure(code, attempt.get("failure_message")), failure
        if payment_id is None:
            return TransactionResult.failure(ErrorCode.INTERRUPTED), None
        payment = await self._pgw_call(lambda: self.services.pgw.get_payment(str(payment_id)))
        if payment.get("status") in PENDING_PAYMENT_STATUSES:
            payment = await self._follow(payment)
        return self._payment_result(payment), payment.get("failure_code")

    # -- refund, void, end of day -------------------------------------------------------------

    async def _refund(self, request: RefundRequest, key: str) -> TransactionResult:
        pgw = self.services.pgw
        if request.currency is not None:
            payment = await self._pgw_call(lambda: pgw.get_payment(request.payment_id))
            if payment.get("currency") != request.currency:
                return TransactionResult.failure(
                    ErrorCode.INVALID_REQUEST,
                    f"currency {request.currency} is not the payment's ({payment.get('currency')})",
                )
        body: dict[str, Any] = {}
        if request.amount is not None:
            body["amount"] = request.amount
        if request.reason:
            body["reason"] = request.reason
        self._record_attempt(request.request_id, via="pgw", attempt=1, reference=key, sent=True)
        answer = await self._pgw_call(lambda: pgw.refund(request.payment_id, body, key))
        refund, payment = answer["refund"], answer["payment"]
        details = {
            "payment_id": str(payment["id"]),
            "refund_id": str(refund["id"]),
            "amount": refund["amount"],
            "currency": refund["currency"],
            "payment_status": payment["status"],
            "tender_type": TenderType.QR
            if payment.get("method") == "qr_wallet"
            else TenderType.CARD,
            "masked_pan": mask_pan(payment["card"]["last4"])
            if payment.get("card") and payment["card"].get("last4")
            else None,
            "card_brand": (payment.get("card") or {}).get("brand"),
        }
        if refund["status"] == "succeeded":
            return TransactionResult(status=Status.APPROVED, **details)
        if refund["status"] == "pending":
            return TransactionResult(
                status=Status.PROCESSING,
                error_code=ErrorCode.GATEWAY_TIMEOUT,
                error_message=ErrorCode.GATEWAY_TIMEOUT.default_message,
                **details,
            )
        return TransactionResult.failure(
            ErrorCode.GATEWAY_ERROR, f"refund {refund['status']}", **details
        )

    async def _void(self, request: VoidRequest, key: str) -> TransactionResult:
        self._record_attempt(request.request_id, via="pgw", attempt=1, reference=key, sent=True)
        payment = await self._pgw_call(lambda: self.services.pgw.void(request.payment_id, key))
        result = self._payment_result(payment)
        if payment.get("status") in ("voided", "canceled"):
            return result.replace(
                status=Status.APPROVED, error_code=None, error_message=None, auth_code=None
            )
        return result

    async def _end_of_day(self, request: EndOfDayRequest, key: str) -> TransactionResult:
        self._record_attempt(request.request_id, via="pgw", attempt=1, reference=key, sent=True)
        batch = await self._pgw_call(
            lambda: self.services.pgw.close_settlement({"scope": request.scope.value}, key)
        )
        return TransactionResult(
            status=Status.APPROVED,
            settlement_id=str(batch["id"]),
            payment_count=int(batch.get("payment_count", 0)),
            refund_count=int(batch.get("refund_count", 0)),
            totals=json.dumps(batch.get("totals") or {}, separators=(",", ":"), sort_keys=True),
        )

    # -- resuming what a dead process left ---------------------------------------------------

    async def _resolve(self, operation: Operation) -> TransactionResult:
        """Find out what became of a request a dead process started (or that pgw left
        processing), without ever acting twice: nothing sent → INTERRUPTED; sent → ask."""
        request = operation.request
        record = self._attempt(request.request_id)
        if record is None or not record.get("sent"):
            return TransactionResult.failure(ErrorCode.INTERRUPTED)
        operation.set_stage(Stage.PROCESSING)
        if isinstance(request, PaymentRequest):
            if record.get("via") == "smarttab":
                return await self._resolve_tab(record)
            reference = str(record["reference"])
            payment = await self._pgw_call(lambda: self.services.pgw.find_by_reference(reference))
            if payment is None:
                # pgw commits a payment before it calls the provider; no record means the
                # request never reached it: nothing was charged.
                return TransactionResult.failure(ErrorCode.INTERRUPTED)
            if payment.get("status") in PENDING_PAYMENT_STATUSES:
                payment = await self._follow(payment)
            return self._payment_result(payment)
        key = str(record["reference"])
        # The other actions carry no card data: resending under the same key makes pgw replay
        # (or finish) the one operation.
        if isinstance(request, RefundRequest):
            return await self._refund(request, key)
        if isinstance(request, VoidRequest):
            return await self._void(request, key)
        if isinstance(request, EndOfDayRequest):
            return await self._end_of_day(request, key)
        return TransactionResult.failure(ErrorCode.INTERNAL_ERROR)

    async def _resolve_tab(self, record: dict[str, Any]) -> TransactionResult:
        smarttab = self.services.smarttab
        tab = await self._tab_call(lambda: smarttab.get_tab(str(record["tab_id"])))
        part = next(
            (
                p
                for p in (tab.get("split") or {}).get("parts", [])
                if p["number"] == record["part_number"]
            ),
            None,
        )
        if part is None:
            return TransactionResult.failure(ErrorCode.INTERRUPTED)
        if part["status"] == "processing":
            with contextlib.suppress(BackendError):
                refreshed = await self._tab_call(
                    lambda: smarttab.refresh(str(tab["id"]), int(tab["version"]))
                )
                part = next(
                    p for p in refreshed["split"]["parts"] if p["number"] == record["part_number"]
                )
        if part["status"] == "unpaid" or (part.get("last_attempt") or {}).get("number", 0) < 1:
            return TransactionResult.failure(ErrorCode.INTERRUPTED)
        result, _ = await self._tab_result(part, str(tab["id"]))
        return result

    # -- presentation helpers --------------------------------------------------------------

    def describe(self, request: ContractRequest) -> list[str]:
        if isinstance(request, PaymentRequest):
            lines = [f"Amount {format_amount(request.amount, request.currency)}"]
            if request.tip_amount:
                lines.append(f"Tip {format_amount(request.tip_amount, request.currency)}")
            if request.tab_id:
                lines.append(f"Tab {request.tab_id}")
            return lines
        if isinstance(request, RefundRequest):
            return [f"Refund of payment {request.payment_id}"] + (
                [f"Amount {format_amount(request.amount, request.currency)}"]
                if request.amount
                else []
            )
        if isinstance(request, VoidRequest):
            return [f"Void of payment {request.payment_id}"]
        if isinstance(request, EndOfDayRequest):
            return [f"End of day ({request.scope.value})"]
        return []


def result_lines(result: TransactionResult) -> list[str]:
    """What a result screen (and the receipt) shows."""
    lines = [f"Status: {result.status.value}"]
    if result.action is Action.END_OF_DAY:
        lines.append(f"Settlement {result.settlement_id}")
        lines.append(f"Payments {result.payment_count}, refunds {result.refund_count}")
        return lines + ([f"Error: {result.error_message}"] if result.error_code else [])
    if result.amount is not None:
        lines.append(f"Amount {format_amount(result.amount, result.currency)}")
    if result.tip_amount:
        lines.append(f"Tip {format_amount(result.tip_amount, result.currency)}")
    if result.card_brand or result.masked_pan:
        lines.append(f"{result.card_brand or ''} {result.masked_pan or ''}".strip())
    if result.auth_code:
        lines.append(f"Auth code {result.auth_code}")
    if result.payment_id:
        lines.append(f"Payment {result.payment_id}")
    if result.refund_id:
        lines.append(f"Refund {result.refund_id}")
    if result.error_code is not None:
        lines.append(f"{result.error_code.value}: {result.error_message or ''}".strip())
    return lines
