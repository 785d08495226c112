"""The Business App's WebView activity: a merchant's page on the terminal, paying through the
Credit Card App.

Started by ``am start -n jp.mpac.business/.WebViewActivity -d <http(s) URL>`` (optional extras
``--el amount N --es currency JPY`` fix what the page may charge). It asks pgw for a 5-minute
payment token with the terminal's device token (``POST /v1/payment-tokens``), opens
``<url>#token=pt_…`` in the configured WebView (``AppConfig.webview``) with the native bridge
``window.MpacNative`` injected, and serves the page's calls (``terminal_emulator.webview.bridge``):

- ``pay_card`` → ``PaymentRequest`` to the Credit Card App's ``TransactionActivity`` with
  ``startActivityForResult``; the page's ``request_id`` (reused by the SDK on a retry) becomes
  the contract's ``wv:<request_id>``, so a retry is the same journaled request and cannot charge
  twice, and a page cannot name the app's own requests. The answer is the
  ``TransactionResult`` JSON with the page's ``request_id``. A lost result (``RESULT_CANCELED``
  without data: the Credit Card App died) is followed by a QUERY with the same id, whose answer
  is the page's (``not_found``: the request never arrived, nothing was charged; the SDK may
  send it again under the same id).
- ``cancel`` → the card reader's Cancel key when it waits for a card or PIN; the call is
  answered with the payment's outcome (``cancelled``, or what happened if it was too late).
- ``query`` → a QUERY intent (or, for the payment in flight, its outcome when it comes).

The screen (the presenter's) shows the page's title and URL (never the token) and Reload /
Close; the Kivy window does not render the web content itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from terminal_emulator.android import Bundle, ComponentName, ExtraType, Intent
from terminal_emulator.apps.common import (
    ScreenActivity,
    ScreenView,
    TerminalServices,
    format_amount,
)
from terminal_emulator.backend_client import BackendError, NetworkError
from terminal_emulator.contract import (
    BUSINESS_PACKAGE,
    ID_PATTERN,
    Action,
    ContractError,
    EntryMode,
    ErrorCode,
    PaymentRequest,
    QueryRequest,
    Status,
    TenderType,
    TransactionResult,
    result_from_activity_result,
)
from terminal_emulator.identity import IdentityError
from terminal_emulator.presentation import BUSINESS_APP, Button
from terminal_emulator.webview import (
    BridgeCall,
    NativeBridge,
    WebViewHost,
    origin_of,
    without_fragment,
)
from terminal_emulator.webview.bridge import CallId, error_result

WEBVIEW_ACTIVITY = ComponentName.of(BUSINESS_PACKAGE, ".WebViewActivity")
TAG = "WebView"
# Contract request ids of page payments: "wv:" + the page's request_id (so ≤ 61 characters).
REQUEST_ID_PREFIX = "wv:"
MAX_PAGE_REQUEST_ID = 64 - len(REQUEST_ID_PREFIX)
# How many QUERYs a lost result gets before the page is told to ask again itself.
MAX_QUERIES = 3


def url_with_token(url: str, token: str) -> str:
    """``url`` with ``token=<token>`` in its fragment (kept with any fragment it had)."""
    base, sep, fragment = url.partition("#")
    fragment = f"{fragment}&token={token}" if sep and fragment else f"token={token}"
    return f"{base}#{fragment}"


def page_request_id(contract_request_id: str | None) -> str | None:
    if contract_request_id and contract_request_id.startswith(REQUEST_ID_PREFIX):
        return contract_request_id[len(REQUEST_ID_PREFIX) :]
    return contract_request_id


class BadParams(ValueError):
    pass


@dataclass
class _Pending:
    """A contract request started for the page: a payment, or a query."""

    kind: str  # "payment" | "query"
    request_id: str  # the contract's ("wv:…")
    call_ids: list[CallId] = field(default_factory=list)
    request: PaymentRequest | None = None
    queries: int = 0  # QUERYs sent after lost results

    @property
    def page_request_id(self) -> str:
        return page_request_id(self.request_id) or self.request_id


class WebViewActivity(ScreenActivity):
    APP = BUSINESS_APP

    def __init__(self, services: TerminalServices) -> None:
        super().__init__(services)
        self.page_url = ""  # as given (with its fragment, never with the token)
        self.origin = ""
        self.amount: int | None = None
        self.currency: str | None = None
        self.page_state = "loading"  # loading | ready | error
        self.message: str | None = None
        self.title = ""
        self.host: WebViewHost | None = None
        self.bridge: NativeBridge | None = None
        self.payment: _Pending | None = None
        self.answers: list[tuple[CallId, TransactionResult]] = []
        self.loads = 0
        self._pending: dict[int, _Pending] = {}
        self._codes = itertools.count(100)
        self._gone: asyncio.Event | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._loading: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def on_create(self, saved_state: Bundle | None) -> None:
        url = (self.intent.data or "").strip()
        self.page_url = url
        self.origin = origin_of(url)
        extras = self.intent.extras
        amount = extras.get_typed("amount")
        if amount is not None and amount.type in (ExtraType.LONG, ExtraType.INT):
            self.amount = int(amount.value)
        self.currency = extras.get_string("currency") or (
            self.services.config.currency if self.amount is not None else None
        )
        self._gone = asyncio.Event()
        if not self.origin:
            self._fail(f"Not an http(s) URL: {without_fragment(url) or '(none)'}")
            return
        self.log.i(TAG, f"opening {without_fragment(url)}")
        self._keeper = self.launch(self._keep(), name="webview")

    def on_destroy(self) -> None:
        if self._gone is not None:
            self._gone.set()

    async def _keep(self) -> None:
        """Opens the view and holds it until the activity is destroyed or its process dies
        (then closes it: a killed process gets no on_destroy, but its tasks are cancelled)."""
        assert self._gone is not None
        try:
            try:
                self.host = await self.services.config.webview.open()
                self.bridge = NativeBridge(
                    self.host,
                    self.origin,
                    self._on_call,
                    on_log=lambda message: self.log.w(TAG, message),
                    spawn=lambda coro: self.launch(coro, name="webview-answer"),
                )
                await self.bridge.attach()
            except Exception as error:  # WebViewError, or an engine's surprise: not a crash
                self._fail(f"No WebView: {error}")  # Reload tries again
                return
            await self._load()
            await self._gone.wait()
        finally:
            host, self.host = self.host, None
            if host is not None:
                with contextlib.suppress(Exception):
                    await host.close()

    async def _load(self) -> None:
        """A fresh payment token, then the page with it in the fragment."""
        host = self.host
        if host is None:
            return
        self.page_state, self.message = "loading", None
        self.invalidate()
        try:
            answer = await self.services.pgw.create_payment_token(
                amount=self.amount, currency=self.currency
            )
        except (BackendError, NetworkError, IdentityError) as error:
            self._fail(f"No payment token: {error}")
            return
        token = str(answer["token"])
        try:
            await host.load(url_with_token(self.page_url, token))
            self.title = await host.title()
        except Exception as error:  # WebViewError, or an engine's surprise: not a crash
            self._fail(f"The page did not load: {str(error).replace(token, 'pt_…')}")
            return
        self.loads += 1
        self.page_state = "ready"
        self.log.i(TAG, f"loaded {without_fragment(self.page_url)} ({self.title!r})")
        self.invalidate()

    def _fail(self, message: str) -> None:
        self.page_state, self.message = "error", message
        self.log.w(TAG, message)
        self.invalidate()

    # -- the bridge ---------------------------------------------------------------------------

    def _on_call(self, call: BridgeCall) -> None:
        """A well-formed call of the page (on the device's loop)."""
        if self._gone is None or self._gone.is_set() or self.bridge is None:
            return
        self.log.i(TAG, f"bridge {call.method} (call {call.call_id!r})")
        try:
            if call.method == "pay_card":
                self._pay_card(call)
            elif call.method == "cancel":
                self._cancel(call)
            elif call.method == "query":
                self._query_call(call)
        except Exception as error:  # a bug here must answer the page, not kill the app
            self.log.e(TAG, f"bridge {call.method} failed: {error!r}")
            self._refuse(call, ErrorCode.INTERNAL_ERROR, "The terminal could not handle the call.")
        self.invalidate()

    def _answer(self, call_ids: list[CallId], result: TransactionResult) -> None:
        bridge = self.bridge
        if bridge is None:
            return
        for call_id in call_ids:
            self.answers.append((call_id, result))
            bridge.answer_soon(call_id, result)

    def _refuse(
        self, call: BridgeCall, code: ErrorCode, message: str, request_id: str | None = None
    ) -> None:
        self.log.w(TAG, f"bridge {call.method} refused: {message}")
        echoed = request_id if request_id and ID_PATTERN.match(request_id) else None
        self._answer([call.call_id], error_result(code, message, request_id=echoed))

    def _pay_card(self, call: BridgeCall) -> None:
        raw_id = call.params.get("request_id")
        page_id = raw_id if isinstance(raw_id, str) else None
        try:
            request = self._payment_request(call.params)
        except (BadParams, ContractError) as error:
            self._refuse(call, ErrorCode.INVALID_REQUEST, str(error), page_id)
            return
        payment = self.payment
        if payment is not None:
            if payment.request_id != request.request_id:
                self._refuse(
                    call, ErrorCode.TERMINAL_BUSY, "another card payment is in progress", page_id
                )
            elif payment.request is not None and (
                payment.request.fingerprint() != request.fingerprint()
            ):
                self._refuse(
                    call,
                    ErrorCode.REQUEST_ID_REUSED,
                    "request_id is in use by a different payment",
                    page_id,
                )
            else:  # the SDK retried the payment in flight: answer both with its outcome
                payment.call_ids.append(call.call_id)
            return
        self.payment = _Pending("payment", request.request_id, [call.call_id], request)
        self._start(self.payment, request.to_intent())

    def _payment_request(self, params: dict[str, Any]) -> PaymentRequest:
        request_id = params.get("request_id")
        if (
            not isinstance(request_id, str)
            or len(request_id) > MAX_PAGE_REQUEST_ID
            or not ID_PATTERN.match(request_id)
        ):
            raise BadParams(
                f"params.request_id must be 1-{MAX_PAGE_REQUEST_ID} of A-Z a-z 0-9 . _ : -"
            )
        amount = _integer(params, "amount", required=True)
        assert amount is not None
        currency = params.get("currency", self.currency or self.services.config.currency)
        if not isinstance(currency, str):
            raise BadParams("params.currency must be a string")
        if self.amount is not None and (amount, currency) != (self.amount, self.currency):
            raise BadParams(
                f"this page may charge {format_amount(self.amount, self.currency)} only"
            )
        options: dict[str, Any] = {}
        tip = _integer(params, "tip_amount")
        if tip is not None:
            options["tip_amount"] = tip
        timeout_ms = _integer(params, "timeout_ms")
        if timeout_ms is not None:
            options["timeout_ms"] = timeout_ms
        note = params.get("note")
        if note is not None:
            if not isinstance(note, str):
                raise BadParams("params.note must be a string")
            options["note"] = note
        metadata = params.get("metadata")
        if metadata is not None:
            options["metadata"] = (
                metadata
                if isinstance(metadata, str)
                else json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))
            )
        modes = params.get("entry_modes")
        if modes is not None:
            if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
                raise BadParams("params.entry_modes must be a list of strings")
            try:
                options["entry_modes"] = tuple(EntryMode(mode) for mode in modes)
            except ValueError as error:
                raise BadParams(f"params.entry_modes: {error}") from None
        return PaymentRequest(
            request_id=REQUEST_ID_PREFIX + request_id,
            amount=amount,
            currency=currency,
            tender_types=(TenderType.CARD,),
            skip_result_screen=True,
            **options,
        )

    def _cancel(self, call: BridgeCall) -> None:
        payment = self.payment
        wanted = call.params.get("request_id")
        if payment is None or (wanted is not None and wanted != payment.page_request_id):
            self._refuse(
                call,
                ErrorCode.ILLEGAL_STATE,
                "no card payment of this page is in progress",
                wanted if isinstance(wanted, str) else None,
            )
            return
        payment.call_ids.append(call.call_id)  # answered with the payment's outcome
        reader: Any = self.services.card_reader
        waiting = getattr(getattr(reader, "state", None), "waiting_for", None)
        if waiting in ("card", "pin") and callable(getattr(reader, "cancel", None)):
            self.log.i(TAG, f"cancel: the reader's Cancel key (it waited for the {waiting})")
            reader.cancel()
        else:
            self.log.i(TAG, "cancel: too late (the reader waits for nothing); the outcome answers")

    def _query_call(self, call: BridgeCall) -> None:
        wanted = call.params.get("request_id")
        if (
            not isinstance(wanted, str)
            or len(wanted) > MAX_PAGE_REQUEST_ID
            or not ID_PATTERN.match(wanted)
        ):
            self._refuse(
                call,
                ErrorCode.INVALID_REQUEST,
                f"params.request_id must be 1-{MAX_PAGE_REQUEST_ID} of A-Z a-z 0-9 . _ : -",
            )
            return
        payment = self.payment
        if payment is not None and payment.page_request_id == wanted:
            payment.call_ids.append(call.call_id)  # in flight: its outcome answers
            return
        pending = _Pending("query", REQUEST_ID_PREFIX + wanted, [call.call_id])
        self._start(pending, QueryRequest(request_id=pending.request_id).to_intent())

    # -- talking to the Credit Card App -------------------------------------------------------

    def _start(self, pending: _Pending, intent: Intent) -> None:
        code = next(self._codes)
        self._pending[code] = pending
        self.start_activity_for_result(intent, code)

    def on_activity_result(self, request_code: int, result_code: int, data: Intent | None) -> None:
        pending = self._pending.pop(request_code, None)
        if pending is None:
            return
        try:
            result = result_from_activity_result(result_code, data)
        except ContractError as error:
            self.log.e(TAG, f"unreadable result for {pending.request_id}: {error}")
            result = None
        if result is None:
            # Lost: the Credit Card App died (or answered nothing readable). Ask what happened
            # before answering the page.
            if pending.queries < MAX_QUERIES:
                pending.queries += 1
                self.log.w(TAG, f"result of {pending.request_id} lost; QUERY #{pending.queries}")
                self._start(pending, QueryRequest(request_id=pending.request_id).to_intent())
                return
            result = TransactionResult(
                status=Status.IN_PROGRESS,
                request_id=pending.request_id,
                action=Action.PAYMENT,
                error_message="The payment app did not answer; ask again with query.",
            )
        self._complete(pending, result)

    def _complete(self, pending: _Pending, result: TransactionResult) -> None:
        if self.payment is pending:
            self.payment = None
        page_result = result.replace(
            request_id=page_request_id(result.request_id) or pending.page_request_id
        )
        self.log.i(
            TAG,
            f"{pending.kind} {pending.page_request_id}: {page_result.status.value}"
            + (f" {page_result.error_code.value}" if page_result.error_code else ""),
        )
        self._answer(pending.call_ids, page_result)
        self.invalidate()

    # -- screen -------------------------------------------------------------------------------

    def on_button(self, button_id: str) -> None:
        if button_id == "close":
            self.finish()
        elif button_id == "reload" and self.payment is None and self.page_state != "loading":
            if self._loading is not None and not self._loading.done():
                return
            if self.host is not None:
                self._loading = self.launch(self._load(), name="webview-load")
            elif self.origin and (self._keeper is None or self._keeper.done()):
                self._keeper = self.launch(self._keep(), name="webview")

    def screen_view(self) -> ScreenView:
        engine = self.services.config.webview.name
        lines = [without_fragment(self.page_url) or "(no URL)"]
        if self.page_state == "loading":
            lines.append("Loading…")
        elif self.page_state == "error" and self.message:
            lines.append(self.message)
        payment = self.payment
        if payment is not None and payment.request is not None:
            lines.append(
                "Card payment in progress: "
                f"{format_amount(payment.request.amount, payment.request.currency)}"
            )
        lines.append(f"WebView: {engine} (the page is not drawn in this window)")
        return ScreenView(
            "webview",
            self.title or "Web page",
            tuple(lines),
            {},
            (
                Button(
                    "reload", "Reload", enabled=payment is None and self.page_state != "loading"
                ),
                Button("close", "Close"),
            ),
        )


def _integer(params: dict[str, Any], key: str, *, required: bool = False) -> int | None:
    value = params.get(key)
    if value is None:
        if required:
            raise BadParams(f"params.{key} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadParams(f"params.{key} must be an integer (minor units)")
    return value
