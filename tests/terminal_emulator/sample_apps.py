"""Two tiny sample apps that speak the Intent contract through the runtime.

They are not the real Business App and Credit Card App: they exist to prove, end to end, that
the contract and the runtime fit together — a caller activity paying for a result, a payment
activity and an ordered-broadcast receiver answering with contract results, the logcat result
line, and a request journal that survives ``am force-stop``. The payment side installs under
the contract's package and component names, so ``PaymentRequest.to_intent()`` reaches it.
"""

from __future__ import annotations

import asyncio
import itertools

from terminal_emulator.android import (
    ACTION_MAIN,
    CATEGORY_DEFAULT,
    CATEGORY_LAUNCHER,
    Activity,
    ActivityDeclaration,
    Application,
    BroadcastReceiver,
    Bundle,
    Context,
    Intent,
    IntentFilter,
    PackageManifest,
    ReceiverDeclaration,
)
from terminal_emulator.contract import (
    BUSINESS_PACKAGE,
    CREDIT_CARD_PACKAGE,
    RESULT_LOG_TAG,
    Action,
    ContractError,
    ContractRequest,
    EntryMode,
    PaymentRequest,
    QueryRequest,
    RequestJournal,
    Status,
    TenderType,
    TransactionResult,
    error_code_for_pgw_failure,
    mask_pan,
    parse_request,
    result_from_activity_result,
)


class FakeGateway:
    """Stands in for pgw: idempotent by request id, declines amounts ending in 51, and can be
    held at two points so a test can kill the app mid-operation."""

    def __init__(self) -> None:
        self.charged: dict[str, TransactionResult] = {}
        self.calls = 0
        self.entered = asyncio.Event()  # a charge has started
        self.release = asyncio.Event()  # let charges answer
        self.release.set()
        self.answered = asyncio.Event()  # a result was journaled
        self.deliver = asyncio.Event()  # let the app hand the journaled result to its caller
        self.deliver.set()
        self._ids = itertools.count(1)

    async def charge(self, request: PaymentRequest, now: str) -> TransactionResult:
        self.calls += 1
        self.entered.set()
        await self.release.wait()
        if request.request_id in self.charged:
            return self.charged[request.request_id]
        if request.amount % 100 == 51:
            result = TransactionResult.failure(
                error_code_for_pgw_failure("insufficient_funds"),
                request_id=request.request_id,
                action=Action.PAYMENT,
                amount=request.amount,
                currency=request.currency,
                completed_at=now,
            )
        else:
            result = TransactionResult(
                status=Status.APPROVED,
                request_id=request.request_id,
                action=Action.PAYMENT,
                payment_id=f"pay_{next(self._ids):04d}",
                auth_code="A1B2C3",
                masked_pan=mask_pan("4242"),
                card_brand="visa",
                tender_type=TenderType.CARD,
                entry_mode=EntryMode.CONTACTLESS,
                amount=request.amount,
                tip_amount=request.tip_amount,
                currency=request.currency,
                payment_status="captured",
                tab_id=request.tab_id,
                metadata=request.metadata,
                completed_at=now,
            )
        self.charged[request.request_id] = result
        return result


class SampleCardApplication(Application):
    """The payment side's process state: the journal (persisted) and running work (memory)."""

    def __init__(self, gateway: FakeGateway) -> None:
        super().__init__()
        self.gateway = gateway
        self.running: dict[str, asyncio.Task[TransactionResult]] = {}

    def on_create(self) -> None:
        self.journal = RequestJournal(
            self.open_database("transactions"), owner=self.process.instance_id, now=self.now
        )

    def answer(self, result: TransactionResult) -> TransactionResult:
        """Every answer also goes to logcat, the third way results reach callers."""
        self.log.i(RESULT_LOG_TAG, result.log_message())
        return result

    def handle(
        self, request: ContractRequest
    ) -> tuple[TransactionResult | None, asyncio.Task[TransactionResult] | None]:
        """An answer now, or the task that will produce it."""
        if isinstance(request, QueryRequest):
            return self.answer(self.journal.query(request.request_id)), None
        begin = self.journal.begin(request)
        if begin.answer is not None:
            return self.answer(begin.answer), None
        task = self.running.get(request.request_id)
        if task is None:
            task = self.launch(self._run(request), name=f"pay {request.request_id}")
            self.running[request.request_id] = task
        return None, task

    async def _run(self, request: ContractRequest) -> TransactionResult:
        now = self.now().isoformat(timespec="milliseconds")
        if isinstance(request, PaymentRequest):
            result = await self.gateway.charge(request, now)
        else:  # the sample only pretends for the other actions
            result = TransactionResult(
                status=Status.APPROVED,
                request_id=request.request_id,
                action=request.ACTION,
                completed_at=now,
            )
        self.journal.complete(request.request_id, result)
        self.gateway.answered.set()
        await self.gateway.deliver.wait()
        self.running.pop(request.request_id, None)
        return self.answer(result)


class SampleTransactionActivity(Activity):
    """Handles every action started as an activity; finishes with the contract result."""

    def on_create(self, saved_state: Bundle | None) -> None:
        app = self.application
        assert isinstance(app, SampleCardApplication)
        try:
            request = parse_request(self.intent)
        except ContractError as error:
            self._finish_with(app.answer(error.to_result()))
            return
        answer, task = app.handle(request)
        if answer is not None:
            self._finish_with(answer)
        else:
            assert task is not None
            self.launch(self._finish_when_done(task))

    async def _finish_when_done(self, task: asyncio.Task[TransactionResult]) -> None:
        self._finish_with(await task)

    def _finish_with(self, result: TransactionResult) -> None:
        self.set_result(result.result_code, result.to_intent())
        self.finish()


class SampleResultReceiver(BroadcastReceiver):
    """Handles every action sent as an ordered broadcast; answers in the broadcast result,
    holding it (go_async) up to ``broadcast_wait_ms`` for a final result."""

    def on_receive(self, context: Context, intent: Intent) -> None:
        app = context.application
        assert isinstance(app, SampleCardApplication)
        try:
            request = parse_request(intent)
        except ContractError as error:
            self.set_result(*app.answer(error.to_result()).broadcast_result())
            return
        answer, task = app.handle(request)
        if answer is not None:
            self.set_result(*answer.broadcast_result())
            return
        assert task is not None
        pending = self.go_async()
        wait_s = getattr(request, "broadcast_wait_ms", 8000) / 1000

        async def answer_later() -> None:
            try:
                result = await asyncio.wait_for(asyncio.shield(task), wait_s)
            except TimeoutError:
                result = app.answer(app.journal.query(request.request_id))
            pending.set_result(*result.broadcast_result())
            pending.finish()

        context.launch(answer_later())


class SampleCallerActivity(Activity):
    """The Business App side: pays for a result and keeps what comes back."""

    def __init__(self) -> None:
        super().__init__()
        self.results: list[tuple[int, int, TransactionResult | None]] = []
        self.got_result = asyncio.Event()

    def pay(self, request: ContractRequest, request_code: int = 1) -> None:
        self.start_activity_for_result(request.to_intent(), request_code)

    def on_activity_result(self, request_code: int, result_code: int, data: Intent | None) -> None:
        self.results.append(
            (request_code, result_code, result_from_activity_result(result_code, data))
        )
        self.got_result.set()


CONTRACT_ACTIONS = [action.value for action in Action]


def card_manifest(gateway: FakeGateway) -> PackageManifest:
    return PackageManifest(
        package=CREDIT_CARD_PACKAGE,
        label="Sample Credit Card",
        activities=(
            ActivityDeclaration(
                ".TransactionActivity",
                SampleTransactionActivity,
                intent_filters=(
                    IntentFilter.create(CONTRACT_ACTIONS, categories=[CATEGORY_DEFAULT]),
                ),
                exported=True,
            ),
        ),
        receivers=(
            ReceiverDeclaration(
                ".ResultReceiver",
                SampleResultReceiver,
                intent_filters=(IntentFilter.create(CONTRACT_ACTIONS),),
                exported=True,
            ),
        ),
        application=lambda: SampleCardApplication(gateway),
    )


def business_manifest() -> PackageManifest:
    return PackageManifest(
        package=BUSINESS_PACKAGE,
        label="Sample Business",
        activities=(
            ActivityDeclaration(
                ".MainActivity",
                SampleCallerActivity,
                intent_filters=(
                    IntentFilter.create([ACTION_MAIN], categories=[CATEGORY_LAUNCHER]),
                ),
            ),
        ),
    )
