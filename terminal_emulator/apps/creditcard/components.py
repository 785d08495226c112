"""The Credit Card App's components: the transaction activity and the result receiver."""

from __future__ import annotations

import asyncio

from terminal_emulator.android import Bundle, Context, Intent
from terminal_emulator.android.receiver import BroadcastReceiver
from terminal_emulator.apps.common import ScreenActivity, ScreenView, TerminalServices
from terminal_emulator.apps.creditcard.app import (
    CreditCardApplication,
    Operation,
    Stage,
    result_lines,
)
from terminal_emulator.contract import (
    CREDIT_CARD_PACKAGE,
    ContractError,
    ContractRequest,
    Extra,
    PaymentRequest,
    QueryRequest,
    ReceiptMode,
    Status,
    TransactionResult,
    parse_request,
)
from terminal_emulator.presentation import CREDIT_CARD_APP, Button

# Internal (not exported, not in the contract): the result receiver shows the card screen of a
# payment that arrived by broadcast.
ACTION_SHOW = "jp.mpac.creditcard.internal.SHOW"

_TITLES = {
    Status.APPROVED: "Approved",
    Status.DECLINED: "Declined",
    Status.CANCELLED: "Cancelled",
    Status.TIMEOUT: "Timed out",
    Status.ERROR: "Error",
    Status.PROCESSING: "Processing",
    Status.IN_PROGRESS: "In progress",
    Status.NOT_FOUND: "Not found",
}


class TransactionActivity(ScreenActivity):
    """Takes every contract action started as an activity; shows the card, PIN, processing and
    result screens, then finishes with ``setResult(result_code, result.to_intent())``.

    Started with :data:`ACTION_SHOW` (by the result receiver) it only shows the screens of a
    broadcast's operation; the answer goes back through the broadcast."""

    APP = CREDIT_CARD_APP

    def __init__(self, services: TerminalServices) -> None:
        super().__init__(services)
        self.request: ContractRequest | None = None
        self.operation: Operation | None = None
        self.result: TransactionResult | None = None
        self.answers_caller = True
        self._answered = False

    @property
    def app(self) -> CreditCardApplication:
        application = self.application
        assert isinstance(application, CreditCardApplication)
        return application

    def on_create(self, saved_state: Bundle | None) -> None:
        app = self.app
        if self.intent.action == ACTION_SHOW:
            self.answers_caller = False
            request_id = self.intent.extras.get_string(Extra.REQUEST_ID) or ""
            self.operation = app.running.get(request_id)
            if self.operation is None:
                self.finish()
                return
            self.request = self.operation.request
            self._follow(self.operation)
            return
        try:
            request = parse_request(self.intent)
        except ContractError as error:
            self._deliver(app.answer(error.to_result()))
            return
        self.request = request
        if isinstance(request, QueryRequest):
            self.launch(self._answer_query(request))
            return
        answer, operation = app.submit(request)
        if answer is not None:
            self._deliver(app.answer(answer))
            return
        assert operation is not None
        self.operation = operation
        self._follow(operation)

    async def _answer_query(self, request: QueryRequest) -> None:
        self._deliver(self.app.answer(await self.app.query(request.request_id)))

    def _follow(self, operation: Operation) -> None:
        operation.listeners.append(self.invalidate)
        self.launch(self._finish_when_done(operation))

    async def _finish_when_done(self, operation: Operation) -> None:
        result = await operation.wait()
        assert result is not None
        self.result = result
        if self.answers_caller:
            self.app.answer(result)
        request = self.request
        skip = bool(getattr(request, "skip_result_screen", False))
        if skip:
            self._deliver(result)
            return
        self.invalidate()
        wait_ms = int(getattr(request, "result_screen_timeout_ms", 0))
        if not self.answers_caller and wait_ms == 0:
            wait_ms = int(self.services.config.broadcast_result_screen_s * 1000)
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000)
            self._deliver(result)

    def _deliver(self, result: TransactionResult) -> None:
        if self._answered or self.is_finishing:
            return
        self._answered = True
        if self.answers_caller:
            self.set_result(result.result_code, result.to_intent())
        self.finish()

    # -- screen -------------------------------------------------------------------------------

    def screen_view(self) -> ScreenView:
        request = self.request
        described = self.app.describe(request) if request is not None else []
        if self.result is not None:
            buttons = [Button("done", "Done")]
            if getattr(request, "receipt_mode", ReceiptMode.NONE) is ReceiptMode.ASK:
                buttons.append(Button("print", "Print receipt"))
            return ScreenView(
                name=Stage.RESULT,
                title=_TITLES[self.result.status],
                lines=tuple(result_lines(self.result)),
                buttons=tuple(buttons),
            )
        operation = self.operation
        stage = operation.stage if operation is not None else Stage.PROCESSING
        if stage == Stage.PRESENT_CARD:
            reader = self.services.card_reader
            notice = getattr(reader, "notice", None)
            assert isinstance(request, PaymentRequest)
            modes = ", ".join(mode.value for mode in request.entry_modes)
            return ScreenView(
                name=Stage.PRESENT_CARD,
                title="Present card",
                lines=(
                    *described,
                    f"Tap, insert or swipe ({modes})",
                    *([notice] if notice else []),
                ),
                buttons=(Button("cancel", "Cancel"),),
            )
        if stage == Stage.PIN_ENTRY:
            return ScreenView(
                name=Stage.PIN_ENTRY,
                title="Enter PIN",
                lines=(*described, "The card asks for its PIN"),
                fields={"pin": ""},
                buttons=(Button("cancel", "Cancel"),),
            )
        return ScreenView(
            name=Stage.PROCESSING,
            title="Processing",
            lines=(*described, "Contacting the payment gateway…"),
        )

    def on_button(self, button_id: str) -> None:
        if button_id == "cancel" and self.operation is not None and self.result is None:
            if self.operation.stage in (Stage.PRESENT_CARD, Stage.PIN_ENTRY):
                self.operation.cancel.cancel("customer")
        elif button_id == "done" and self.result is not None:
            self._deliver(self.result)
        elif button_id == "print" and self.result is not None:
            self.log.i("Receipt", "\n".join(result_lines(self.result)))


class ResultReceiver(BroadcastReceiver):
    """Takes every contract action sent as an ordered broadcast; answers in the broadcast's
    result, holding it (``go_async``) up to ``broadcast_wait_ms`` for a final result."""

    def on_receive(self, context: Context, intent: Intent) -> None:
        app = context.application
        assert isinstance(app, CreditCardApplication)
        try:
            request = parse_request(intent)
        except ContractError as error:
            self.set_result(*app.answer(error.to_result()).broadcast_result())
            return
        pending = self.go_async()
        if isinstance(request, QueryRequest):

            async def answer_query() -> None:
                result = app.answer(await app.query(request.request_id))
                pending.set_result(*result.broadcast_result())
                pending.finish()

            context.launch(answer_query())
            return
        answer, operation = app.submit(request)
        if answer is not None:
            pending.set_result(*app.answer(answer).broadcast_result())
            pending.finish()
            return
        assert operation is not None
        if operation.needs_card and app.running.get(request.request_id) is operation:
            context.start_activity(
                Intent(
                    ACTION_SHOW,
                    component=f"{CREDIT_CARD_PACKAGE}/.TransactionActivity",
                    extras=Bundle().put_string(Extra.REQUEST_ID, request.request_id),
                )
            )
        wait_s = getattr(request, "broadcast_wait_ms", 8000) / 1000

        async def answer_later() -> None:
            result = await operation.wait(wait_s)
            if result is None:
                result = app.journal.query(request.request_id)
            pending.set_result(*app.answer(result).broadcast_result())
            pending.finish()

        context.launch(answer_later())
