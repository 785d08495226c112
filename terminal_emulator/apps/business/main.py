"""The Business App's launcher activity: the cashier's POS screens.

One activity with a small screen state machine (enroll → amount entry → result → receipt;
tabs → tab detail → pay a part; refund; end of day). Money never moves here: every charge,
refund, void and close goes to the Credit Card App as a contract intent with
``startActivityForResult`` (``skip_result_screen``: this app shows the result). A result lost
because the Credit Card App died (``RESULT_CANCELED`` without data) is followed by a QUERY with
the same request id; a ``processing`` answer offers "Check again" (QUERY).
"""

from __future__ import annotations

import uuid
from typing import Any

from terminal_emulator.android import Bundle, Intent
from terminal_emulator.apps.business.app import BusinessApplication
from terminal_emulator.apps.common import (
    ScreenActivity,
    ScreenView,
    TerminalServices,
    format_amount,
)
from terminal_emulator.apps.creditcard.app import result_lines
from terminal_emulator.backend_client import BackendError, NetworkError
from terminal_emulator.contract import (
    Action,
    ContractError,
    ContractRequest,
    EndOfDayRequest,
    PaymentRequest,
    QueryRequest,
    RefundRequest,
    Status,
    TransactionResult,
    VoidRequest,
    result_from_activity_result,
)
from terminal_emulator.identity import IdentityError
from terminal_emulator.presentation import BUSINESS_APP, Button

REQUEST_CODE = 1
QUERY_REQUEST_CODE = 2
PREFS = "business"


def new_request_id() -> str:
    return uuid.uuid4().hex


class MainActivity(ScreenActivity):
    APP = BUSINESS_APP

    def __init__(self, services: TerminalServices) -> None:
        super().__init__(services)
        self.screen = "amount_entry"
        self.fields: dict[str, str] = {"amount": ""}
        self.message: str | None = None
        self.pending: ContractRequest | None = None
        self.result: TransactionResult | None = None
        self.results: list[TransactionResult] = []
        self.tab: dict[str, Any] | None = None
        self.busy = False

    @property
    def app(self) -> BusinessApplication:
        application = self.application
        assert isinstance(application, BusinessApplication)
        return application

    # -- lifecycle ----------------------------------------------------------------------------

    def on_create(self, saved_state: Bundle | None) -> None:
        self.app.listeners.append(self._tabs_changed)
        self.services.identity.add_listener(self.invalidate)
        if not self.services.identity.enrolled:
            self.screen = "enroll"
            self.fields = {"activation_code": ""}

    def on_destroy(self) -> None:
        if self._tabs_changed in self.app.listeners:
            self.app.listeners.remove(self._tabs_changed)

    def _tabs_changed(self, tab_id: str | None) -> None:
        if (
            tab_id is not None
            and self.screen == "tab_detail"
            and self.tab is not None
            and tab_id == self.tab["id"]
        ):
            self.launch(self._load_tab(tab_id))
        self.invalidate()

    # -- navigation ---------------------------------------------------------------------------

    def _go(self, screen: str, **fields: str) -> None:
        self.screen = screen
        self.fields = dict(fields)
        self.message = None
        self.invalidate()

    def on_text(self, field_name: str, text: str) -> None:
        if field_name in self.fields:
            self.fields[field_name] = text
            self.invalidate()

    def on_button(self, button_id: str) -> None:
        name, _, arg = button_id.partition(":")
        handler = getattr(self, f"_on_{name}", None)
        if handler is None:
            return
        if arg:
            handler(arg)
        else:
            handler()

    # enroll
    def _on_enroll(self) -> None:
        code = self.fields.get("activation_code", "").strip()
        if not code:
            self.message = "Enter the activation code"
            self.invalidate()
            return
        self.busy = True
        self.invalidate()
        self.launch(self._enroll(code))

    async def _enroll(self, code: str) -> None:
        try:
            await self.services.identity.enroll(code)
        except IdentityError as error:
            self.busy = False
            self.message = error.message
            self.invalidate()
            return
        self.busy = False
        self._go("amount_entry", amount="")
        self.app.refresh_tabs()

    # amount entry
    def _on_charge(self) -> None:
        amount = self._amount("amount")
        if amount is None:
            return
        self.charge(amount)

    def charge(
        self,
        amount: int,
        *,
        tab_id: str | None = None,
        tip_amount: int = 0,
        currency: str | None = None,
    ) -> None:
        self._send(
            PaymentRequest(
                request_id=new_request_id(),
                amount=amount,
                tip_amount=tip_amount,
                currency=currency or self.services.config.currency,
                tab_id=tab_id,
                skip_result_screen=True,
            )
        )

    def _amount(self, field_name: str) -> int | None:
        text = self.fields.get(field_name, "").replace(",", "").strip()
        if not text.isdigit() or int(text) <= 0:
            self.message = "Enter an amount"
            self.invalidate()
            return None
        return int(text)

    def _on_home(self) -> None:
        self._go("amount_entry", amount="")

    _on_back = _on_home
    _on_done = _on_home

    # tabs
    def _on_tabs(self) -> None:
        self._go("tabs")
        self.app.refresh_tabs()

    def _on_tab(self, tab_id: str) -> None:
        self.tab = {"id": tab_id, **self.app.tabs.get(tab_id, {})}
        self._go("tab_detail")
        self.launch(self._load_tab(tab_id))

    async def _load_tab(self, tab_id: str) -> None:
        try:
            tab = await self.services.smarttab.get_tab(tab_id)
        except (BackendError, NetworkError, IdentityError) as error:
            self.message = f"cannot read the tab: {error}"
        else:
            if self.tab is not None and self.tab.get("id") == tab_id:
                self.tab = tab
        self.invalidate()

    def _on_split(self, mode: str) -> None:
        if self.tab is None or "version" not in self.tab:
            return
        body: dict[str, Any] = {"mode": "full"}
        if mode.startswith("equal"):
            body = {"mode": "equal", "count": int(mode.removeprefix("equal") or 2)}
        self.launch(self._split(dict(self.tab), body))

    async def _split(self, tab: dict[str, Any], body: dict[str, Any]) -> None:
        try:
            self.tab = await self.services.smarttab.split(tab, **body)
        except (BackendError, NetworkError, IdentityError) as error:
            self.message = f"cannot split: {error}"
        self.invalidate()

    def _on_pay(self, part_number: str) -> None:
        if self.tab is None or not self.tab.get("split"):
            return
        part = next(
            (p for p in self.tab["split"]["parts"] if str(p["number"]) == part_number), None
        )
        if part is None:
            return
        self.charge(
            int(part["amount"]), tab_id=str(self.tab["id"]), currency=self.tab.get("currency")
        )

    # result
    def _on_receipt(self) -> None:
        self._go("receipt")

    def _on_check(self) -> None:
        if self.pending is not None:
            self._query(self.pending.request_id)

    def _on_refund_last(self) -> None:
        if self.result is not None and self.result.payment_id:
            self._go("refund", payment_id=self.result.payment_id, amount="")

    def _on_void_last(self) -> None:
        if self.result is not None and self.result.payment_id:
            self._send(
                VoidRequest(
                    request_id=new_request_id(),
                    payment_id=self.result.payment_id,
                    skip_result_screen=True,
                )
            )

    # refund
    def _on_refund(self) -> None:
        if self.screen != "refund":
            self._go("refund", payment_id="", amount="")
            return
        payment_id = self.fields.get("payment_id", "").strip()
        amount_text = self.fields.get("amount", "").strip()
        try:
            request = RefundRequest(
                request_id=new_request_id(),
                payment_id=payment_id,
                amount=int(amount_text) if amount_text else None,
                skip_result_screen=True,
            )
        except (ContractError, ValueError) as error:
            self.message = str(error)
            self.invalidate()
            return
        self._send(request)

    # end of day
    def _on_end_of_day(self) -> None:
        self._go("end_of_day")

    def _on_close_day(self) -> None:
        self._send(EndOfDayRequest(request_id=new_request_id(), skip_result_screen=True))

    # -- talking to the Credit Card App -------------------------------------------------------

    def _send(self, request: ContractRequest) -> None:
        self.pending = request
        self.get_shared_preferences(PREFS).put("pending_request_id", request.request_id)
        self.result = None
        self._go("processing")
        self.start_activity_for_result(request.to_intent(), REQUEST_CODE)

    def _query(self, request_id: str) -> None:
        self.start_activity_for_result(
            QueryRequest(request_id=request_id).to_intent(), QUERY_REQUEST_CODE
        )

    def on_activity_result(self, request_code: int, result_code: int, data: Intent | None) -> None:
        result = result_from_activity_result(result_code, data)
        if result is None:
            # Lost: the Credit Card App died before answering. Ask what happened.
            if self.pending is not None:
                self.message = "The payment app stopped; checking what happened…"
                self._query(self.pending.request_id)
            return
        if request_code == QUERY_REQUEST_CODE and result.status is Status.NOT_FOUND:
            self.message = "The payment app never received the request; nothing was charged."
        self.result = result
        self.results.append(result)
        self.screen = "result"
        self.fields = {}
        if result.tab_id:
            self.app.refresh_tabs()
        self.invalidate()

    # -- screens ------------------------------------------------------------------------------

    def screen_view(self) -> ScreenView:
        extra = (self.message,) if self.message else ()
        if self.screen == "enroll":
            return ScreenView(
                "enroll",
                "Enroll this terminal",
                ("Enter the activation code from the portal", *extra),
                dict(self.fields),
                (Button("enroll", "Enroll", enabled=not self.busy),),
            )
        if self.screen == "amount_entry":
            return ScreenView(
                "amount_entry",
                "New sale",
                extra,
                dict(self.fields),
                (
                    Button("charge", "Charge"),
                    Button("tabs", "Tabs"),
                    Button("refund", "Refund"),
                    Button("end_of_day", "End of day"),
                ),
            )
        if self.screen == "tabs":
            tabs = sorted(self.app.active_tabs(), key=lambda t: str(t.get("created_at") or ""))
            lines = [
                f"{tab.get('table') or tab.get('label') or str(tab['id'])[:8]}: "
                f"{format_amount(tab.get('total'), tab.get('currency'))} ({tab.get('status')})"
                for tab in tabs
            ] or ["No open tabs"]
            buttons = [
                Button(
                    f"tab:{tab['id']}",
                    str(tab.get("table") or tab.get("label") or str(tab["id"])[:8]),
                )
                for tab in tabs
            ]
            return ScreenView(
                "tabs", "Tabs", (*lines, *extra), {}, (*buttons, Button("back", "Back"))
            )
        if self.screen == "tab_detail":
            return self._tab_view(extra)
        if self.screen == "processing":
            described = []
            if isinstance(self.pending, PaymentRequest):
                described.append(
                    f"Charging {format_amount(self.pending.amount, self.pending.currency)}"
                )
            return ScreenView("processing", "Waiting for payment", (*described, *extra))
        if self.screen == "result" and self.result is not None:
            result = self.result
            buttons = [Button("receipt", "Receipt"), Button("done", "Done")]
            if not result.is_final:
                buttons.insert(0, Button("check", "Check again"))
            if result.status is Status.APPROVED and result.action is Action.PAYMENT:
                buttons.insert(1, Button("refund_last", "Refund"))
            title = {Status.APPROVED: "Approved"}.get(
                result.status, result.status.value.replace("_", " ").capitalize()
            )
            return ScreenView("result", title, (*result_lines(result), *extra), {}, tuple(buttons))
        if self.screen == "receipt" and self.result is not None:
            result = self.result
            lines = [
                self.services.name,
                f"Terminal {self.services.serial}",
                f"{(result.action.short if result.action else '').upper()} {result.status.value.upper()}",
                *result_lines(result)[1:],
                result.completed_at or "",
            ]
            return ScreenView("receipt", "Receipt", tuple(lines), {}, (Button("done", "Done"),))
        if self.screen == "refund":
            return ScreenView(
                "refund",
                "Refund",
                ("Payment id and amount (empty: all that is left)", *extra),
                dict(self.fields),
                (Button("refund", "Refund"), Button("back", "Back")),
            )
        if self.screen == "end_of_day":
            return ScreenView(
                "end_of_day",
                "End of day",
                ("Close this terminal's day (settlement batch)", *extra),
                {},
                (Button("close_day", "Close day"), Button("back", "Back")),
            )
        return ScreenView(
            "amount_entry", "New sale", extra, {"amount": ""}, (Button("charge", "Charge"),)
        )

    def _tab_view(self, extra: tuple[str, ...]) -> ScreenView:
        tab = self.tab or {}
        currency = tab.get("currency", self.services.config.currency)
        lines = [f"Tab {tab.get('table') or tab.get('label') or ''} ({tab.get('status', '…')})"]
        for item in tab.get("items", []):
            lines.append(
                f"{item['quantity']} x {item['name']}  {format_amount(item['net'], currency)}"
            )
        totals = tab.get("totals") or {}
        if totals:
            lines.append(f"Total {format_amount(totals.get('total'), currency)}")
        buttons: list[Button] = []
        split = tab.get("split")
        if split:
            for part in split["parts"]:
                lines.append(
                    f"Part {part['number']}: {format_amount(part['amount'], currency)} {part['status']}"
                )
                if part["status"] in ("unpaid", "failed", "processing"):
                    buttons.append(Button(f"pay:{part['number']}", f"Pay part {part['number']}"))
        elif tab.get("status") == "open" and totals.get("total"):
            buttons += [Button("split:full", "Pay in full"), Button("split:equal2", "Split in 2")]
        buttons.append(Button("tabs", "Back"))
        return ScreenView("tab_detail", "Tab", (*lines, *extra), {}, tuple(buttons))
