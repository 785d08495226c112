"""The Credit Card App through the intent bus, against the real platform: card flows, PIN,
cancel, timeout, idempotency by request id, and the truth after a force-stop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from terminal_emulator.android import LogFilter
from terminal_emulator.contract import (
    CREDIT_CARD_PACKAGE,
    Action,
    EntryMode,
    ErrorCode,
    PaymentRequest,
    ResultCode,
    Status,
    TenderType,
    result_from_broadcast_output,
)
from terminal_emulator.hardware import (
    ScriptedCardReader,
    SimulatedCardReader,
    cancel,
    hang,
    insert,
    pin,
    swipe,
    tap,
)
from terminal_emulator.terminal import EmulatedTerminal
from tests.support.service_logs import captured_service_logs
from tests.terminal_emulator.apps.conftest import Registered
from tests.terminal_emulator.apps.helpers import (
    broadcast,
    logged_results,
    query,
    until,
    via_activity,
)

APPROVED = "4242424242424242"
DECLINED = "4000000000000002"
PIN_CARD = "4000000000001000"
TIMEOUT_CARD = "4000000000001034"

MakeTerminal = Callable[..., tuple[EmulatedTerminal, Registered]]


def rid() -> str:
    return f"req-{uuid.uuid4().hex[:12]}"


def payment(request_id: str | None = None, amount: int = 1200, **options: object) -> PaymentRequest:
    return PaymentRequest(
        request_id=request_id or rid(),
        amount=amount,
        currency="JPY",
        skip_result_screen=True,
        **options,  # type: ignore[arg-type]
    )


def test_approved_card_by_broadcast_matches_the_contract(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        reader = ScriptedCardReader([tap(APPROVED)])
        terminal, registered = make_terminal(card_reader=reader)
        async with terminal:
            request = payment(metadata="order 12", note="Lunch")
            result = await broadcast(terminal, request)
            assert result is not None
            assert result.status is Status.APPROVED, result
            assert result.result_code is ResultCode.OK
            assert result.request_id == request.request_id
            assert result.action is Action.PAYMENT
            assert result.masked_pan == "**** **** **** 4242"
            assert result.card_brand == "visa"
            assert result.tender_type is TenderType.CARD
            assert result.entry_mode is EntryMode.CONTACTLESS
            assert (result.amount, result.currency, result.tip_amount) == (1200, "JPY", 0)
            assert result.payment_status == "captured"
            assert result.auth_code
            assert result.metadata == "order 12"
            assert result.completed_at
            payment_at_pgw = await terminal.pgw.get_payment(str(result.payment_id))
            assert payment_at_pgw["status"] == "captured"
            assert payment_at_pgw["terminal_id"] == registered.terminal_id
            assert payment_at_pgw["description"] == "Lunch"
            assert logged_results(terminal)[-1] == result

    asyncio.run(scenario())


def test_declined_card(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        terminal, _ = make_terminal(card_reader=ScriptedCardReader([insert(DECLINED)]))
        async with terminal:
            result = await broadcast(terminal, payment())
            assert result is not None
            assert result.status is Status.DECLINED
            assert result.result_code == 1
            assert result.error_code is ErrorCode.DECLINED_GENERIC
            assert result.entry_mode is EntryMode.CHIP
            assert result.payment_id  # the declined payment is on record at pgw

    asyncio.run(scenario())


def test_pin_required_then_correct_pin(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        reader = ScriptedCardReader([tap(PIN_CARD), pin("1234")])
        terminal, _ = make_terminal(card_reader=reader)
        async with terminal:
            request = payment()
            result = await via_activity(terminal, request)
            assert result.status is Status.APPROVED, result
            assert reader.requests == ["card", "pin"]
            # attempt 1 (no PIN) was declined pin_required; attempt 2 carried the PIN
            terminal_id = terminal.identity.terminal_id
            base = f"mpac:{terminal_id}:{request.request_id}:payment"
            first = await terminal.pgw.find_by_reference(f"{base}:1")
            second = await terminal.pgw.find_by_reference(f"{base}:2")
            assert first is not None
            assert first["failure_code"] == "pin_required"
            assert second is not None
            assert second["status"] == "captured"
            assert str(second["id"]) == result.payment_id

    asyncio.run(scenario())


def test_wrong_pin_is_declined(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        reader = ScriptedCardReader([swipe(PIN_CARD), pin("9999")])
        terminal, _ = make_terminal(card_reader=reader)
        async with terminal:
            result = await broadcast(terminal, payment())
            assert result is not None
            assert result.error_code is ErrorCode.INCORRECT_PIN
            assert result.status is Status.DECLINED

    asyncio.run(scenario())


def test_customer_cancel(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        terminal, _ = make_terminal(card_reader=ScriptedCardReader([cancel()]))
        async with terminal:
            request = payment()
            result = await via_activity(terminal, request)
            assert result.status is Status.CANCELLED
            assert result.result_code is ResultCode.CANCELED
            assert result.error_code is ErrorCode.CUSTOMER_CANCELLED
            assert (
                await terminal.pgw.list_payments(
                    reference=f"mpac:{terminal.identity.terminal_id}:{request.request_id}:payment:1"
                )
                == []
            )

    asyncio.run(scenario())


def test_no_card_in_time(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        terminal, _ = make_terminal(card_reader=ScriptedCardReader([hang()]))
        async with terminal:
            result = await broadcast(terminal, payment(timeout_ms=5000, broadcast_wait_ms=9000))
            assert result is not None
            assert result.status is Status.TIMEOUT
            assert result.result_code == 2
            assert result.error_code is ErrorCode.TIMEOUT

    asyncio.run(scenario())


def test_repeated_request_id_returns_the_first_result_without_charging_twice(
    make_terminal: MakeTerminal,
) -> None:
    async def scenario() -> None:
        reader = ScriptedCardReader([tap(APPROVED)])
        terminal, _ = make_terminal(card_reader=reader)
        async with terminal:
            request = payment()
            first = await via_activity(terminal, request)
            assert first.status is Status.APPROVED
            # again by activity, then by broadcast (other presentation options): replays
            again = await via_activity(terminal, request)
            by_broadcast = await broadcast(
                terminal, payment(request.request_id, broadcast_wait_ms=100)
            )
            assert again == first
            assert by_broadcast == first
            assert reader.requests == ["card"]  # no second card read
            payments = await terminal.pgw.list_payments(
                terminal_id=str(terminal.identity.terminal_id)
            )
            assert [p["id"] for p in payments] == [first.payment_id]
            # the same id for another amount is refused and changes nothing
            other = await broadcast(terminal, payment(request.request_id, amount=999))
            assert other is not None
            assert other.error_code is ErrorCode.REQUEST_ID_REUSED
            assert (await query(terminal, request.request_id)) == first

    asyncio.run(scenario())


def test_force_stop_while_waiting_for_the_card_then_query_says_interrupted(
    make_terminal: MakeTerminal,
) -> None:
    async def scenario() -> None:
        reader = ScriptedCardReader([hang()])
        terminal, _ = make_terminal(card_reader=reader)
        async with terminal:
            request = payment(broadcast_wait_ms=300)
            answer = await broadcast(terminal, request)
            assert answer is not None
            assert answer.status is Status.IN_PROGRESS
            assert reader.requests == ["card"]
            assert (await query(terminal, request.request_id)).status is Status.IN_PROGRESS
            terminal.device.am.force_stop(CREDIT_CARD_PACKAGE)
            truth = await query(terminal, request.request_id)
            assert truth.status is Status.CANCELLED
            assert truth.error_code is ErrorCode.INTERRUPTED
            assert (
                await terminal.pgw.list_payments(terminal_id=str(terminal.identity.terminal_id))
                == []
            )
            # the same request again replays the truth; nothing is charged
            assert (await broadcast(terminal, request)) == truth

    asyncio.run(scenario())


def test_force_stop_while_waiting_on_pgw_then_query_tells_the_truth(
    make_terminal: MakeTerminal,
) -> None:
    async def scenario() -> None:
        reader = ScriptedCardReader([tap(TIMEOUT_CARD)])
        terminal, _ = make_terminal(card_reader=reader, query_resolve_s=1.0)
        async with terminal:
            request = payment(broadcast_wait_ms=0)
            answer = await broadcast(terminal, request)
            assert answer is not None
            assert answer.status is Status.IN_PROGRESS
            reference = f"mpac:{terminal.identity.terminal_id}:{request.request_id}:payment:1"

            async def at_pgw() -> bool:
                return await terminal.pgw.find_by_reference(reference) is not None

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not await at_pgw():
                assert loop.time() < deadline, "the payment never reached pgw"
                await asyncio.sleep(0.05)
            terminal.device.am.force_stop(CREDIT_CARD_PACKAGE)  # while pgw waits for the provider
            first = await query(terminal, request.request_id)
            assert first.status in (Status.IN_PROGRESS, Status.PROCESSING, Status.APPROVED), first

            async def settled() -> bool:
                return (await query(terminal, request.request_id)).status is Status.APPROVED

            deadline = loop.time() + 20
            while not await settled():
                assert loop.time() < deadline, "the payment never settled"
                await asyncio.sleep(0.5)
            final = await query(terminal, request.request_id)
            assert final.payment_status == "captured"
            payments = await terminal.pgw.list_payments(
                terminal_id=str(terminal.identity.terminal_id)
            )
            assert [p["id"] for p in payments] == [final.payment_id]  # charged once

    asyncio.run(scenario())


def test_refund_void_and_end_of_day(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        from terminal_emulator.contract import EndOfDayRequest, RefundRequest, VoidRequest

        terminal, _ = make_terminal(card_reader=ScriptedCardReader([tap(APPROVED)]))
        async with terminal:
            paid = await via_activity(terminal, payment(amount=2000))
            assert paid.status is Status.APPROVED
            refund = await via_activity(
                terminal,
                RefundRequest(
                    request_id=rid(),
                    payment_id=str(paid.payment_id),
                    amount=500,
                    skip_result_screen=True,
                ),
            )
            assert refund.status is Status.APPROVED, refund
            assert (refund.amount, refund.payment_status) == (500, "partially_refunded")
            assert refund.refund_id
            too_much = await via_activity(
                terminal,
                RefundRequest(
                    request_id=rid(),
                    payment_id=str(paid.payment_id),
                    amount=5000,
                    skip_result_screen=True,
                ),
            )
            assert too_much.error_code is ErrorCode.REFUND_EXCEEDS_CAPTURED
            void = await via_activity(
                terminal,
                VoidRequest(
                    request_id=rid(), payment_id=str(paid.payment_id), skip_result_screen=True
                ),
            )
            assert void.error_code is ErrorCode.ILLEGAL_STATE  # captured: refund it, don't void
            close = await via_activity(
                terminal, EndOfDayRequest(request_id=rid(), skip_result_screen=True)
            )
            assert close.status is Status.APPROVED, close
            assert close.settlement_id
            assert close.payment_count == 1
            assert close.refund_count == 1
            assert close.totals is not None
            assert '"net":1500' in close.totals

    asyncio.run(scenario())


def test_broadcast_payment_opens_the_card_screen(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        terminal, _ = make_terminal(
            card_reader=SimulatedCardReader(), broadcast_result_screen_s=0.2
        )
        async with terminal:
            ui = terminal.presenter
            await ui.wait_for("amount_entry")
            pending = asyncio.ensure_future(broadcast(terminal, payment(amount=700)))
            card_screen = await ui.wait_for("present_card")
            assert card_screen.app == "creditcard"
            ui.present_card("swipe", APPROVED)
            result = await pending
            assert result is not None
            assert result.status is Status.APPROVED
            assert result.entry_mode is EntryMode.SWIPE
            await ui.wait_for("amount_entry")  # the card screen closed itself

    asyncio.run(scenario())


def test_query_of_an_unknown_id_and_refused_extras(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        terminal, _ = make_terminal(card_reader=ScriptedCardReader())
        async with terminal:
            unknown = await query(terminal, "never-sent")
            assert unknown.status is Status.NOT_FOUND
            assert unknown.error_code is ErrorCode.UNKNOWN_REQUEST
            intent = payment().to_intent(via="broadcast")
            intent.extras.put_int("amount", 1200)  # --ei instead of --el
            answer = await terminal.device.am.broadcast(intent)
            refused = result_from_broadcast_output(answer.am_output())
            assert refused is not None
            assert refused.error_code is ErrorCode.INVALID_REQUEST
            assert "--el" in (refused.error_message or "")

    asyncio.run(scenario())


def test_business_app_asks_again_when_the_card_app_dies(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        reader = ScriptedCardReader([hang()])
        terminal, _ = make_terminal(card_reader=reader)
        async with terminal:
            main = terminal.business_activity()
            assert main is not None
            request = payment()
            main._send(request)
            await until(lambda: reader.requests == ["card"], what="the card screen")
            terminal.device.am.force_stop(CREDIT_CARD_PACKAGE)
            # RESULT_CANCELED without data: the Business App sends QUERY with the same id
            await until(lambda: main.results, 15, what="the query's answer")
            truth = main.results[-1]
            assert truth.request_id == request.request_id
            assert truth.status is Status.CANCELLED
            assert truth.error_code is ErrorCode.INTERRUPTED

    asyncio.run(scenario())


def test_the_trace_id_the_terminal_logs_is_the_one_the_backend_lines_carry(
    make_terminal: MakeTerminal,
) -> None:
    async def scenario() -> tuple[str, list[str], list[dict[str, object]]]:
        terminal, registered = make_terminal(card_reader=ScriptedCardReader([tap(APPROVED)]))
        async with terminal:
            request = payment()
            with captured_service_logs() as logs:
                result = await broadcast(terminal, request)
                assert result is not None
                assert result.status is Status.APPROVED, result
                # Access lines are written once each response has gone out.
                await asyncio.sleep(0.5)
            lines = terminal.device.logcat.dump(LogFilter.parse(["CreditCardApp:I", "*:S"]))
            # This terminal's lines only: an earlier test's terminal may still be at work.
            mine = [
                line
                for line in logs.access_lines("pgw")
                if line.get("store_id") == registered.store_id
            ]
            return request.request_id, lines, mine

    request_id, logcat, pgw_lines = asyncio.run(scenario())

    (traced,) = [line for line in logcat if f"{request_id} trace " in line]
    trace_id = traced.rsplit(" trace ", 1)[1].strip()
    created = [line for line in pgw_lines if str(line["msg"]).startswith("POST /v1/payments ")]
    assert created, pgw_lines
    # Other requests of the store (another attempt's lookups) may carry traces of their own.
    assert trace_id in {line["trace_id"] for line in created}
