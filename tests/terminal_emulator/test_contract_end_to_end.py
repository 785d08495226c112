"""The contract end to end through the runtime, with the sample apps of ``sample_apps.py``:
activity results, the ordered broadcast ``am broadcast`` prints, the logcat result line, and
the truth after the Credit Card App is force-stopped mid-payment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from terminal_emulator.android import (
    RESULT_CANCELED,
    Device,
    Intent,
    LogcatOptions,
    LogFilter,
)
from terminal_emulator.contract import (
    BUSINESS_MAIN_ACTIVITY,
    CREDIT_CARD_PACKAGE,
    CREDIT_CARD_RESULT_RECEIVER,
    RESULT_LOG_TAG,
    Action,
    ErrorCode,
    PaymentRequest,
    QueryRequest,
    ResultCode,
    Status,
    parse_result_log_line,
    result_from_broadcast_output,
)
from tests.terminal_emulator.sample_apps import (
    FakeGateway,
    SampleCallerActivity,
    business_manifest,
    card_manifest,
)


async def _boot(device: Device, gateway: FakeGateway) -> SampleCallerActivity:
    await device.start()
    device.install(business_manifest())
    device.install(card_manifest(gateway))
    started = device.am.start_activity(Intent(component=BUSINESS_MAIN_ACTIVITY))
    caller = started.activity
    assert isinstance(caller, SampleCallerActivity)
    return caller


async def _next_result(caller: SampleCallerActivity) -> None:
    await asyncio.wait_for(caller.got_result.wait(), 5)
    caller.got_result.clear()


def _result_lines(device: Device) -> list[str]:
    return device.logcat.dump(LogFilter.parse([f"{RESULT_LOG_TAG}:I", "*:S"]))


def test_payment_for_result_reaches_the_caller_and_logcat(
    make_device: Callable[..., Device],
) -> None:
    async def scenario() -> None:
        device = make_device()
        gateway = FakeGateway()
        caller = await _boot(device, gateway)
        request = PaymentRequest(
            request_id="r-1", amount=1200, currency="JPY", metadata="order #12 ラーメン"
        )
        caller.pay(request, request_code=7)
        await _next_result(caller)

        request_code, result_code, result = caller.results[0]
        assert (request_code, result_code) == (7, ResultCode.OK)
        assert result is not None
        assert result.status is Status.APPROVED
        assert result.request_id == "r-1"
        assert result.masked_pan == "**** **** **** 4242"
        assert result.metadata == "order #12 ラーメン"
        # the caller is in front again and the payment activity is gone
        assert device.am.foreground_activity is caller
        assert [r.component for r in device.am.activity_stack()] == [BUSINESS_MAIN_ACTIVITY]

        lines = _result_lines(device)
        assert len(lines) == 1
        card_pid = device.am.process_of(CREDIT_CARD_PACKAGE)
        assert card_pid is not None
        assert f" {card_pid.pid} " in lines[0]
        assert f" I {RESULT_LOG_TAG}: " in lines[0]
        assert lines[0].startswith("01-15 10:23:45.123 ")
        assert parse_result_log_line(lines[0]) == result
        await device.shutdown()

    asyncio.run(scenario())


def test_declined_payment_has_its_result_code(make_device: Callable[..., Device]) -> None:
    async def scenario() -> None:
        device = make_device()
        caller = await _boot(device, FakeGateway())
        caller.pay(PaymentRequest(request_id="r-declined", amount=1051, currency="JPY"))
        await _next_result(caller)
        _, result_code, result = caller.results[0]
        assert result_code == ResultCode.DECLINED == 1
        assert result is not None
        assert result.error_code is ErrorCode.DECLINED_INSUFFICIENT_FUNDS
        await device.shutdown()

    asyncio.run(scenario())


def test_same_request_id_returns_the_first_result(make_device: Callable[..., Device]) -> None:
    async def scenario() -> None:
        device = make_device()
        gateway = FakeGateway()
        caller = await _boot(device, gateway)
        request = PaymentRequest(request_id="r-twice", amount=500, currency="JPY")
        caller.pay(request)
        await _next_result(caller)
        caller.pay(request)  # a retry, even with other presentation options, is a replay
        await _next_result(caller)
        caller.pay(PaymentRequest(request_id="r-twice", amount=900, currency="JPY"))
        await _next_result(caller)

        first, second, third = (result for _, _, result in caller.results)
        assert first == second
        assert gateway.calls == 1
        assert third is not None
        assert third.error_code is ErrorCode.REQUEST_ID_REUSED
        await device.shutdown()

    asyncio.run(scenario())


def test_ordered_broadcast_prints_like_am(make_device: Callable[..., Device]) -> None:
    async def scenario() -> None:
        device = make_device()
        await _boot(device, FakeGateway())
        request = PaymentRequest(request_id="r-bc", amount=1200, currency="JPY", tab_id="tab-9")
        outcome = await device.am.broadcast(request.to_intent(via="broadcast"))
        text = outcome.am_output()

        result = result_from_broadcast_output(text)
        assert result is not None
        assert result.status is Status.APPROVED
        assert result.tab_id == "tab-9"
        assert text == (
            f'Broadcast completed: result=-1, data="{result.to_json_text()}", extras: '
            f"{result.to_extras().to_android_string()}"
        )
        assert text.startswith('Broadcast completed: result=-1, data="{"v":1,"status":"approved",')
        assert "extras: Bundle[{" in text
        assert "status=approved" in text
        assert "masked_pan=**** **** **** 4242" in text
        await device.shutdown()

    asyncio.run(scenario())


def test_broadcast_answers_in_progress_then_query_answers_the_outcome(
    make_device: Callable[..., Device],
) -> None:
    async def scenario() -> None:
        device = make_device()
        gateway = FakeGateway()
        await _boot(device, gateway)
        gateway.release.clear()
        request = PaymentRequest(
            request_id="r-slow", amount=800, currency="JPY", broadcast_wait_ms=50
        )
        first = result_from_broadcast_output(
            (await device.am.broadcast(request.to_intent(via="broadcast"))).am_output()
        )
        assert first is not None
        assert first.status is Status.IN_PROGRESS
        assert first.result_code == ResultCode.IN_PROGRESS

        gateway.release.set()
        await asyncio.wait_for(gateway.answered.wait(), 5)
        query = QueryRequest(request_id="r-slow").to_intent(via="broadcast")
        answer = result_from_broadcast_output((await device.am.broadcast(query)).am_output())
        assert answer is not None
        assert answer.status is Status.APPROVED
        assert answer.action is Action.PAYMENT
        await device.shutdown()

    asyncio.run(scenario())


def test_query_of_an_unknown_request_says_not_found(make_device: Callable[..., Device]) -> None:
    async def scenario() -> None:
        device = make_device()
        await _boot(device, FakeGateway())
        outcome = await device.am.broadcast(
            QueryRequest(request_id="never").to_intent(via="broadcast")
        )
        assert outcome.code == ResultCode.NOT_FOUND
        answer = result_from_broadcast_output(outcome.am_output())
        assert answer is not None
        assert answer.error_code is ErrorCode.UNKNOWN_REQUEST
        await device.shutdown()

    asyncio.run(scenario())


def test_invalid_broadcast_request_is_answered_with_a_clear_error(
    make_device: Callable[..., Device],
) -> None:
    async def scenario() -> None:
        device = make_device()
        await _boot(device, FakeGateway())
        intent = Intent(Action.PAYMENT.value, component=CREDIT_CARD_RESULT_RECEIVER)
        intent.extras.put_string("request_id", "r-bad").put_int("amount", 1200).put_string(
            "currency", "JPY"
        )
        outcome = await device.am.broadcast(intent)
        answer = result_from_broadcast_output(outcome.am_output())
        assert answer is not None
        assert answer.error_code is ErrorCode.INVALID_REQUEST
        assert answer.request_id == "r-bad"
        assert answer.error_message is not None
        assert "--el" in answer.error_message
        await device.shutdown()

    asyncio.run(scenario())


def test_force_stop_mid_payment_then_query_tells_the_truth(
    make_device: Callable[..., Device],
) -> None:
    """Killed after the charge was journaled but before the caller heard: the caller gets
    RESULT_CANCELED without data (the result is lost), the query still says approved."""

    async def scenario() -> None:
        device = make_device()
        gateway = FakeGateway()
        caller = await _boot(device, gateway)
        gateway.deliver.clear()
        caller.pay(PaymentRequest(request_id="r-kill", amount=1500, currency="JPY"))
        await asyncio.wait_for(gateway.answered.wait(), 5)
        old = device.am.process_of(CREDIT_CARD_PACKAGE)
        assert old is not None
        work = list(old.tasks)

        device.am.force_stop(CREDIT_CARD_PACKAGE)
        await _next_result(caller)
        assert caller.results == [(1, RESULT_CANCELED, None)]
        assert all(task.cancelled() for task in work)
        assert device.am.process_of(CREDIT_CARD_PACKAGE) is None
        assert device.am.foreground_activity is caller

        # Android skips a stopped package unless the broadcast includes stopped packages.
        bare = Intent(Action.QUERY.value, component=CREDIT_CARD_RESULT_RECEIVER)
        bare.extras.put_string("request_id", "r-kill")
        assert (await device.am.broadcast(bare)).am_output() == "Broadcast completed: result=0"

        answer = result_from_broadcast_output(
            (
                await device.am.broadcast(
                    QueryRequest(request_id="r-kill").to_intent(via="broadcast")
                )
            ).am_output()
        )
        assert answer is not None
        assert answer.status is Status.APPROVED
        assert answer.payment_id == "pay_0001"
        new = device.am.process_of(CREDIT_CARD_PACKAGE)
        assert new is not None
        assert new.pid != old.pid
        await device.shutdown()

    asyncio.run(scenario())


def test_killed_before_the_gateway_answered_query_says_in_progress_and_retry_resumes(
    make_device: Callable[..., Device],
) -> None:
    async def scenario() -> None:
        device = make_device()
        gateway = FakeGateway()
        caller = await _boot(device, gateway)
        gateway.release.clear()
        request = PaymentRequest(request_id="r-mid", amount=700, currency="JPY")
        caller.pay(request)
        await asyncio.wait_for(gateway.entered.wait(), 5)
        device.am.force_stop(CREDIT_CARD_PACKAGE)
        await _next_result(caller)
        assert caller.results[-1] == (1, RESULT_CANCELED, None)

        query = QueryRequest(request_id="r-mid").to_intent(via="broadcast")
        answer = result_from_broadcast_output((await device.am.broadcast(query)).am_output())
        assert answer is not None
        assert answer.status is Status.IN_PROGRESS  # the journal knows it started, not how it ended

        # The retry resumes the abandoned request (the gateway is idempotent by request id).
        gateway.release.set()
        caller.pay(request)
        await _next_result(caller)
        _, code, result = caller.results[-1]
        assert code == ResultCode.OK
        assert result is not None
        assert result.status is Status.APPROVED
        await device.shutdown()

    asyncio.run(scenario())


def test_results_survive_an_emulator_restart(make_device: Callable[..., Device]) -> None:
    async def scenario() -> None:
        device = make_device("EMU-RESTART")
        caller = await _boot(device, FakeGateway())
        caller.pay(PaymentRequest(request_id="r-persist", amount=300, currency="JPY"))
        await _next_result(caller)
        await device.shutdown()

        again = make_device("EMU-RESTART")
        await _boot(again, FakeGateway())
        query = QueryRequest(request_id="r-persist").to_intent(via="broadcast")
        answer = result_from_broadcast_output((await again.am.broadcast(query)).am_output())
        assert answer is not None
        assert answer.status is Status.APPROVED
        assert answer.amount == 300
        await again.shutdown()

    asyncio.run(scenario())


def test_result_line_is_followed_and_filtered_like_adb_logcat(
    make_device: Callable[..., Device],
) -> None:
    async def scenario() -> None:
        device = make_device()
        caller = await _boot(device, FakeGateway())
        options = LogcatOptions.parse(["-s", RESULT_LOG_TAG, "-m", "1", "-v", "brief"])
        reader = asyncio.ensure_future(_collect(device, options))
        await asyncio.sleep(0)
        caller.pay(PaymentRequest(request_id="r-follow", amount=1000, currency="JPY"))
        lines = await asyncio.wait_for(reader, 5)
        assert lines[0] == "--------- beginning of main"
        assert lines[1].startswith(f"I/{RESULT_LOG_TAG}(")
        result = parse_result_log_line(lines[1])
        assert result is not None
        assert result.request_id == "r-follow"
        await device.shutdown()

    asyncio.run(scenario())


async def _collect(device: Device, options: LogcatOptions) -> list[str]:
    return [line async for line in device.logcat.run(options)]
