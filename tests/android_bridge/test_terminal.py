"""PaymentTerminal over real TCP ADB against enrolled emulated terminals (real portal, pgw and
provider): every operation, idempotency, a link cut through a real TCP proxy, a device gone
for good, timeouts of both kinds, a missing app, and what ``am`` or an impostor app answer
when they do not speak the contract."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from android_bridge.device import AndroidDevice
from android_bridge.errors import (
    AppNotInstalled,
    IntentRejected,
    MalformedResult,
    ResultTimeout,
    ResultUnknown,
)
from android_bridge.fakes import FakeTransport, Reply
from android_bridge.terminal import PaymentTerminal, build_request, new_request_id
from terminal_emulator.adb import split_command
from terminal_emulator.android import (
    CATEGORY_DEFAULT,
    Activity,
    ActivityDeclaration,
    BroadcastReceiver,
    Bundle,
    Context,
    Device,
    DeviceConfig,
    Intent,
    IntentFilter,
    PackageManifest,
    ReceiverDeclaration,
)
from terminal_emulator.contract import (
    CREDIT_CARD_PACKAGE,
    ID_PATTERN,
    Action,
    EntryMode,
    ErrorCode,
    PaymentRequest,
    QueryRequest,
    RefundRequest,
    SettlementScope,
    Status,
    TransactionResult,
)
from terminal_emulator.hardware import SimulatedCardReader
from terminal_emulator.shell import start_adb_endpoint
from terminal_emulator.terminal import EmulatedTerminal
from tests.android_bridge.conftest import StartTerminal, serial_of
from tests.helpers import wait_until
from tests.support.pgw import card_payment
from tests.support.tcp_proxy import TcpProxy
from tests.terminal_emulator.adb.conftest import HostKey, LoopThread

APPROVED = "4242424242424242"
DECLINED = "4000000000000002"
PIN_CARD = "4000000000001000"  # PIN 1234
NASTY_METADATA = "order 'A'; $(reboot) `id` && \"x\" | y\n\t日本語 💳 a,b\\,c ~ # *"

OpenBridge = Callable[..., PaymentTerminal]


@pytest.fixture
def open_bridge(host_key: HostKey) -> Iterator[OpenBridge]:
    """``open_bridge(serial, **PaymentTerminal options)``: a PaymentTerminal on a new
    AndroidDevice (short test timeouts); closed after the test."""
    opened: list[PaymentTerminal] = []

    def open_(serial: str, **options: Any) -> PaymentTerminal:
        device = AndroidDevice.open(serial, key_path=host_key.path)
        settings: dict[str, Any] = {
            "result_timeout_s": 30.0,
            "reconnect_deadline_s": 10.0,
            "query_interval_s": 0.2,
            **options,
        }
        payments = PaymentTerminal(device, **settings)
        opened.append(payments)
        return payments

    yield open_
    for payments in opened:
        payments.close(wait=False)
        payments.device.close()


def reader_of(terminal: EmulatedTerminal) -> SimulatedCardReader:
    reader = terminal.card_reader
    assert isinstance(reader, SimulatedCardReader)
    return reader


def wait_for_reader(terminal: EmulatedTerminal, what: str = "card", timeout_s: float = 15) -> None:
    """Until the Credit Card App waits for a card (or PIN): input before that is dropped."""
    reader = reader_of(terminal)
    wait_until(lambda: reader.waiting_for == what, timeout_s=timeout_s, what=f"the {what} prompt")


def present(terminal: EmulatedTerminal, pan: str, method: str = "tap") -> None:
    wait_for_reader(terminal, "card")
    reader_of(terminal).present_card(method, pan)


def payment(amount: int = 1200, **options: Any) -> PaymentRequest:
    return build_request(
        PaymentRequest,
        request_id=options.pop("request_id", None) or new_request_id(),
        amount=amount,
        currency="JPY",
        **{"skip_result_screen": True, **options},
    )


def pay_with_card(
    payments: PaymentTerminal,
    terminal: EmulatedTerminal,
    request: PaymentRequest,
    pan: str = APPROVED,
    **execute: Any,
) -> TransactionResult:
    future = payments.submit(request, **execute)
    present(terminal, pan)
    return future.result(timeout=30)


def pgw_payments(terminal: EmulatedTerminal, device_loop: LoopThread) -> list[dict[str, Any]]:
    return device_loop.call(
        terminal.pgw.list_payments(terminal_id=str(terminal.identity.terminal_id))
    )


def journal_result(
    terminal: EmulatedTerminal, device_loop: LoopThread, request_id: str
) -> TransactionResult:
    """What the Credit Card App's journal says now (in-process, not through the bridge)."""

    async def read() -> TransactionResult:
        app = terminal.credit_card_app()
        assert app is not None
        return app.journal.query(request_id)

    return device_loop.call(read())


# -- request ids and requests -------------------------------------------------------------------


def test_generated_request_ids_are_valid_time_ordered_uuid7s() -> None:
    ids = [new_request_id() for _ in range(50)]
    assert all(ID_PATTERN.match(value) for value in ids)
    assert len(set(ids)) == 50
    assert all(uuid.UUID(value).version == 7 for value in ids)
    first = new_request_id()
    time.sleep(0.002)
    assert first[:13] < new_request_id()[:13]  # the millisecond timestamp leads


def test_build_request_takes_plain_values() -> None:
    request = build_request(
        PaymentRequest,
        request_id="r1",
        amount=100,
        currency="JPY",
        entry_modes=["contactless"],
        tender_types=["card"],
        receipt_mode="none",
    )
    assert request.entry_modes == (EntryMode.CONTACTLESS,)
    with pytest.raises(ValueError, match="amount"):
        build_request(PaymentRequest, request_id="r1", amount=0, currency="JPY")
    with pytest.raises(TypeError):
        build_request(PaymentRequest, request_id="r1", amount=1, currency="JPY", colour="red")


# -- every operation, over real TCP ADB ---------------------------------------------------------


def test_pay_by_broadcast_is_approved_and_on_record_at_pgw(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge, device_loop: LoopThread
) -> None:
    payments = open_bridge(serial_of(adb_terminal))
    request = payment(1200, metadata=NASTY_METADATA, note="Lunch; 'special'")
    result = pay_with_card(payments, adb_terminal, request)
    assert result.status is Status.APPROVED, result
    assert result.request_id == request.request_id
    assert (result.amount, result.currency, result.masked_pan) == (
        1200,
        "JPY",
        "**** **** **** 4242",
    )
    assert result.metadata == NASTY_METADATA  # echoed unchanged through am and the shell
    at_pgw = device_loop.call(adb_terminal.pgw.get_payment(str(result.payment_id)))
    assert (at_pgw["status"], at_pgw["amount"], at_pgw["description"]) == (
        "captured",
        1200,
        "Lunch; 'special'",
    )


def test_pay_by_activity_reads_the_logcat_line(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge
) -> None:
    payments = open_bridge(serial_of(adb_terminal), via="activity")
    future: Future[TransactionResult] = payments.submit(payment(800, metadata=NASTY_METADATA))
    present(adb_terminal, APPROVED, "insert")
    result = future.result(timeout=30)
    assert result.status is Status.APPROVED, result
    assert (result.amount, result.entry_mode) == (800, EntryMode.CHIP)
    assert result.metadata == NASTY_METADATA


def test_pay_convenience_method_with_pin_card(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge
) -> None:
    payments = open_bridge(serial_of(adb_terminal))
    outcome: list[TransactionResult] = []
    worker = threading.Thread(
        target=lambda: outcome.append(payments.pay(3000, "JPY", tip_amount=300, cashier_id="c7"))
    )
    worker.start()
    present(adb_terminal, PIN_CARD)
    wait_for_reader(adb_terminal, "pin")
    reader_of(adb_terminal).enter_pin("1234")
    worker.join(30)
    (result,) = outcome
    assert result.status is Status.APPROVED, result
    assert (result.amount, result.tip_amount) == (3000, 300)


def test_declined_card_is_a_result_not_an_error(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge
) -> None:
    payments = open_bridge(serial_of(adb_terminal))
    result = pay_with_card(payments, adb_terminal, payment(1500), DECLINED)
    assert result.status is Status.DECLINED
    assert result.error_code is ErrorCode.DECLINED_GENERIC


def test_refund_part_then_void_of_an_authorized_payment_then_end_of_day(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge, device_loop: LoopThread
) -> None:
    payments = open_bridge(serial_of(adb_terminal))
    paid = pay_with_card(payments, adb_terminal, payment(2000))
    assert paid.status is Status.APPROVED
    refund = payments.refund(str(paid.payment_id), amount=500, reason="Cold 'soup'; sorry")
    assert refund.status is Status.APPROVED, refund
    assert (refund.amount, refund.payment_status) == (500, "partially_refunded")
    assert refund.refund_id

    # The Credit Card App takes captured payments only; an authorization (manual capture)
    # is made at pgw with the terminal's own token, then voided through the bridge.
    _, authorized = device_loop.call(
        adb_terminal.pgw.create_payment(
            card_payment(APPROVED, amount=700, capture_method="manual"), uuid.uuid4().hex
        )
    )
    assert authorized["status"] == "authorized"
    void = payments.void(str(authorized["id"]), reason="customer left")
    assert void.status is Status.APPROVED, void
    assert void.payment_id == authorized["id"]
    voided = device_loop.call(adb_terminal.pgw.get_payment(str(authorized["id"])))
    assert voided["status"] in ("voided", "canceled")

    close = payments.end_of_day(scope=SettlementScope.TERMINAL)
    assert close.status is Status.APPROVED, close
    assert close.action is Action.END_OF_DAY
    assert close.settlement_id
    assert (close.payment_count, close.refund_count) == (1, 1)


def test_query_of_an_unknown_request_is_not_found(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge
) -> None:
    payments = open_bridge(serial_of(adb_terminal))
    result = payments.query("never-sent-1")
    assert result.status is Status.NOT_FOUND
    assert result.error_code is ErrorCode.UNKNOWN_REQUEST
    with pytest.raises(ValueError, match="request_id"):
        payments.query("not a valid id")


def test_the_same_request_id_twice_charges_once(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge, device_loop: LoopThread
) -> None:
    payments = open_bridge(serial_of(adb_terminal))
    request = payment(1100)
    first = pay_with_card(payments, adb_terminal, request)
    assert first.status is Status.APPROVED
    again = payments.execute(request)  # no card presented: the journal answers
    by_activity = payments.execute(request, via="activity")
    assert again == first
    assert by_activity == first
    assert payments.query(request.request_id) == first
    assert [p["id"] for p in pgw_payments(adb_terminal, device_loop)] == [first.payment_id]


def test_an_in_progress_answer_is_followed_by_queries(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge
) -> None:
    """broadcast_wait_ms=0: the receiver answers in_progress at once; the bridge queries
    until the card came and the result is final."""
    payments = open_bridge(serial_of(adb_terminal))
    future = payments.submit(payment(900, broadcast_wait_ms=0))
    wait_for_reader(adb_terminal)
    time.sleep(0.3)  # a few queries answer in_progress meanwhile
    reader_of(adb_terminal).present_card("swipe", APPROVED)
    result = future.result(timeout=30)
    assert result.status is Status.APPROVED, result
    assert result.entry_mode is EntryMode.SWIPE


def test_a_second_payment_while_the_card_screen_is_taken_is_refused_busy(
    start_adb_terminal: StartTerminal, open_bridge: OpenBridge
) -> None:
    # Ordered broadcasts go one at a time (as on Android): the first payment's receiver
    # must not hold the queue long, nor its queries, or the second's QUERY waits behind.
    adb_terminal = start_adb_terminal(query_resolve_s=0.3)
    payments = open_bridge(serial_of(adb_terminal))
    first = payments.submit(payment(1000, broadcast_wait_ms=0))
    wait_for_reader(adb_terminal)
    second = payments.execute(payment(2000), via="activity", timeout_s=10)
    assert second.error_code is ErrorCode.TERMINAL_BUSY  # believed: nothing was journaled
    assert payments.query(str(second.request_id)).status is Status.NOT_FOUND
    reader_of(adb_terminal).present_card("tap", APPROVED)
    assert first.result(timeout=30).status is Status.APPROVED


# -- timeouts -----------------------------------------------------------------------------------


def test_no_card_in_time_is_the_contracts_timeout_result(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge
) -> None:
    """The app's own timeout (timeout_ms, shorter than the bridge's): a final result."""
    payments = open_bridge(serial_of(adb_terminal))
    result = payments.execute(payment(timeout_ms=5000), timeout_s=20)
    assert result.status is Status.TIMEOUT
    assert result.error_code is ErrorCode.TIMEOUT


def test_the_bridge_deadline_before_the_card_is_a_result_timeout(
    start_adb_terminal: StartTerminal, open_bridge: OpenBridge
) -> None:
    """The bridge's deadline (shorter than the app's card timeout): ResultTimeout with the
    request id and the last status; the payment goes on and can be queried."""
    # A QUERY of a request still running waits this long for it before answering in_progress.
    adb_terminal = start_adb_terminal(query_resolve_s=0.3)
    payments = open_bridge(serial_of(adb_terminal))
    request = payment(timeout_ms=60_000)
    began = time.monotonic()
    with pytest.raises(ResultTimeout) as raised:
        payments.execute(request, timeout_s=1.5)
    assert time.monotonic() - began < 6
    assert raised.value.request_id == request.request_id
    assert raised.value.last_status == "in_progress"
    assert request.request_id in (raised.value.hint or "")
    assert payments.query(request.request_id, timeout_s=2).status in (Status.IN_PROGRESS,)
    reader_of(adb_terminal).cancel()
    final = payments.execute(request)  # the same id again: the cancelled outcome
    assert final.error_code is ErrorCode.CUSTOMER_CANCELLED


# -- the link dropping --------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["broadcast", "activity"])
def test_a_link_cut_after_sending_recovers_the_first_result(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge, device_loop: LoopThread, via: str
) -> None:
    """The link drops while the bridge waits; the card is paid while it is down; the bridge
    reconnects, asks QUERY and returns that result: one payment at pgw."""
    assert adb_terminal.adb_port is not None
    with TcpProxy(adb_terminal.adb_port) as proxy:
        payments = open_bridge(proxy.address, via=via, reconnect_deadline_s=60)
        request = payment(1300)
        future = payments.submit(request)
        wait_for_reader(adb_terminal)  # the intent arrived
        proxy.cut()
        reader_of(adb_terminal).present_card("tap", APPROVED)
        wait_until(
            lambda: journal_result(adb_terminal, device_loop, request.request_id).is_final,
            timeout_s=15,
            what="the result on the device",
        )
        assert not future.done()
        proxy.restore()
        result = future.result(timeout=30)
        assert result.status is Status.APPROVED, result
        assert proxy.accepted >= 2  # it came back on a new connection
    assert [p["id"] for p in pgw_payments(adb_terminal, device_loop)] == [result.payment_id]


def test_an_intent_lost_with_the_link_is_sent_again_under_the_same_id(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge, device_loop: LoopThread
) -> None:
    """The link is down when the intent is fired: QUERY after the reconnect says not_found,
    and the same request goes again."""
    assert adb_terminal.adb_port is not None
    with TcpProxy(adb_terminal.adb_port) as proxy:
        payments = open_bridge(proxy.address)
        assert payments.query("warm-up").status is Status.NOT_FOUND  # installed: checked
        proxy.cut(for_s=0.5)
        request = payment(1400)
        future = payments.submit(request)
        present(adb_terminal, APPROVED)
        result = future.result(timeout=30)
        assert result.status is Status.APPROVED, result
    assert [p["id"] for p in pgw_payments(adb_terminal, device_loop)] == [result.payment_id]


def test_a_device_gone_past_the_reconnect_deadline_is_result_unknown(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge
) -> None:
    assert adb_terminal.adb_port is not None
    with TcpProxy(adb_terminal.adb_port) as proxy:
        payments = open_bridge(proxy.address, reconnect_deadline_s=1.0)
        request = payment(1500)
        future = payments.submit(request)
        wait_for_reader(adb_terminal)
        proxy.cut()
        with pytest.raises(ResultUnknown) as raised:
            future.result(timeout=20)
        assert raised.value.request_id == request.request_id
        assert "unknown" in str(raised.value)
    reader_of(adb_terminal).cancel()


# -- the app missing, am refusing, answers that are not results ---------------------------------


def _uninstall_credit_card_app(terminal: EmulatedTerminal, device_loop: LoopThread) -> None:
    async def uninstall() -> None:
        terminal.device.uninstall(CREDIT_CARD_PACKAGE)

    device_loop.call(uninstall())


def test_app_not_installed(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge, device_loop: LoopThread
) -> None:
    by_broadcast = open_bridge(serial_of(adb_terminal))
    by_activity = open_bridge(serial_of(adb_terminal), via="activity")
    for bridge in (by_broadcast, by_activity):  # found installed on this connection
        assert bridge.query("warm-up").status is Status.NOT_FOUND
    _uninstall_credit_card_app(adb_terminal, device_loop)
    fresh = open_bridge(serial_of(adb_terminal))
    with pytest.raises(AppNotInstalled) as raised:
        fresh.pay(100, "JPY")  # found out before anything is sent
    assert raised.value.package == CREDIT_CARD_PACKAGE
    # Installed when last checked: the intent goes, and what comes back is checked again.
    with pytest.raises(AppNotInstalled):
        by_broadcast.pay(100, "JPY")  # "Broadcast completed: result=0": nobody answered
    with pytest.raises(AppNotInstalled):
        by_activity.pay(100, "JPY")  # am: "Activity class … does not exist"


def impostor_app(answer: tuple[int, str | None] | None, *, activity: bool) -> PackageManifest:
    """A package under the Credit Card App's name that does not speak the contract: its
    receiver (if any) answers ``answer`` (result code, data); with ``activity`` it also has
    a transaction activity that finishes at once."""

    class Receiver(BroadcastReceiver):
        def on_receive(self, context: Context, intent: Intent) -> None:
            assert answer is not None
            self.set_result(answer[0], answer[1], None)

    class Transaction(Activity):
        def on_create(self, saved_state: Bundle | None) -> None:
            self.finish()

    actions = [action.value for action in Action]
    return PackageManifest(
        CREDIT_CARD_PACKAGE,
        activities=(
            ActivityDeclaration(
                ".TransactionActivity",
                Transaction,
                intent_filters=(IntentFilter.create(actions, categories=[CATEGORY_DEFAULT]),),
                exported=True,
            ),
        )
        if activity
        else (),
        receivers=(
            ReceiverDeclaration(
                ".ResultReceiver",
                Receiver,
                intent_filters=(IntentFilter.create(actions),),
                exported=True,
            ),
        )
        if answer is not None
        else (),
    )


@pytest.fixture
def start_impostor(
    device_loop: LoopThread, host_key: HostKey, tmp_path: Path
) -> Iterator[Callable[..., str]]:
    """``start_impostor(answer, activity=)``: a bare emulated device (no platform) with the
    impostor app, its ADB endpoint on a free port; returns its serial."""
    started: list[tuple[Device, Any]] = []

    def start(answer: tuple[int, str | None] | None, *, activity: bool = False) -> str:
        directory = tmp_path / f"impostor-{len(started)}"
        directory.mkdir()
        adb_keys = directory / "adb_keys"
        adb_keys.write_text(host_key.public.to_line() + "\n")

        async def boot() -> tuple[Device, Any]:
            device = Device(DeviceConfig(serial="IMPOSTOR", state_dir=directory / "device"))
            await device.start()
            device.install(impostor_app(answer, activity=activity))
            return device, await start_adb_endpoint(device, 0, adb_keys)

        device, server = device_loop.call(boot())
        started.append((device, server))
        return f"127.0.0.1:{server.port}"

    yield start
    for device, server in started:
        device_loop.call(server.stop())
        device_loop.call(device.shutdown())


def test_answers_that_are_not_contract_results_are_malformed(
    start_impostor: Callable[..., str], open_bridge: OpenBridge
) -> None:
    payments = open_bridge(start_impostor((-1, "OK, paid!")))
    with pytest.raises(MalformedResult) as raised:
        payments.pay(100, "JPY")
    assert "OK, paid!" in raised.value.raw
    lying = TransactionResult(status=Status.APPROVED, request_id="q-1").to_json_text()
    payments = open_bridge(start_impostor((3, lying)))  # result code 3 is not approved's
    with pytest.raises(MalformedResult, match="result code"):
        payments.query("q-1")


def test_intents_nobody_takes_are_rejected(
    start_impostor: Callable[..., str], open_bridge: OpenBridge
) -> None:
    # no transaction activity: am prints "Error type 3 … does not exist"
    payments = open_bridge(start_impostor((-1, "x")), via="activity")
    with pytest.raises(IntentRejected) as raised:
        payments.pay(100, "JPY")
    assert "does not exist" in raised.value.output
    # no result receiver: "Broadcast completed: result=0", and QUERY gets no answer either
    payments = open_bridge(start_impostor(None, activity=True))
    with pytest.raises(IntentRejected, match="did not answer"):
        payments.execute(
            RefundRequest(request_id=new_request_id(), payment_id="pay_1", skip_result_screen=True)
        )


def test_submit_runs_in_the_background_until_close(
    adb_terminal: EmulatedTerminal, open_bridge: OpenBridge
) -> None:
    payments = open_bridge(serial_of(adb_terminal))
    futures = [payments.submit(QueryRequest(request_id=f"bg-{n}")) for n in range(3)]
    assert [f.result(timeout=20).status for f in futures] == [Status.NOT_FOUND] * 3
    payments.close()
    with pytest.raises(RuntimeError, match="closed"):
        payments.submit(QueryRequest(request_id="late"))


# -- what a real device seldom does: scripted with the fake transport ---------------------------

PAYMENT_PATTERN = re.compile(r"^am broadcast .* -a jp\.mpac\.creditcard\.action\.PAYMENT ")
QUERY_PATTERN = re.compile(r"^am broadcast .* -a jp\.mpac\.creditcard\.action\.QUERY ")


def am_broadcast_output(result: TransactionResult, extras: str = "") -> str:
    return (
        "Broadcasting: Intent { act=jp.mpac.creditcard.action.PAYMENT flg=0x10400020 "
        "cmp=jp.mpac.creditcard/.ResultReceiver (has extras) }\n"
        f'Broadcast completed: result={int(result.result_code)}, data="{result.to_json_text()}"'
        + (f", extras: Bundle[{{{extras}}}]" if extras else "")
        + "\n"
    )


def fake_terminal(**options: Any) -> tuple[FakeTransport, PaymentTerminal]:
    fake = FakeTransport()
    fake.reply(["pm", "path", CREDIT_CARD_PACKAGE], "package:/data/app/creditcard/base.apk\n")
    device = AndroidDevice.open("fake:5555", transport=fake)
    settings: dict[str, Any] = {"result_timeout_s": 5.0, "query_interval_s": 0.01, **options}
    return fake, PaymentTerminal(device, **settings)


def approved(request_id: str, **fields: Any) -> TransactionResult:
    return TransactionResult(
        status=Status.APPROVED, request_id=request_id, action=Action.PAYMENT, **fields
    )


def test_am_exceptions_are_rejections_with_the_output() -> None:
    fake, payments = fake_terminal()
    fake.reply(
        PAYMENT_PATTERN,
        "\nException occurred while executing 'broadcast':\n"
        "java.lang.SecurityException: Permission Denial: not allowed to send broadcast\n"
        "\tat android.os.Parcel.createExceptionOrNull(Parcel.java:2425)\n",
        exit_code=255,
    )
    with pytest.raises(IntentRejected, match="Permission Denial") as raised:
        payments.execute(payment())
    assert raised.value.exit_code == 255
    assert "SecurityException" in raised.value.output


def test_output_that_is_not_ams_is_malformed() -> None:
    fake, payments = fake_terminal()
    fake.reply(PAYMENT_PATTERN, "Broadcasting: Intent { … }\n")  # cut short
    with pytest.raises(MalformedResult, match="Broadcast completed"):
        payments.execute(payment())
    request = payment()
    fake.reply(PAYMENT_PATTERN, am_broadcast_output(approved("someone-else")))
    with pytest.raises(MalformedResult, match="someone-else"):
        payments.execute(request)


def test_printed_extras_cannot_pass_for_an_am_error() -> None:
    """The result extras are printed raw: a metadata echo with "Error: …" on a line of its
    own is still the answer (the JSON data is what counts)."""
    fake, payments = fake_terminal()
    request = payment(metadata="x\nError: not really")
    answer = approved(request.request_id, metadata=request.metadata)
    fake.reply(PAYMENT_PATTERN, am_broadcast_output(answer, "metadata=x\nError: not really"))
    assert payments.execute(request) == answer


def test_a_broadcast_that_does_not_complete_in_time_is_asked_about() -> None:
    fake, payments = fake_terminal()
    request = payment(broadcast_wait_ms=0)
    fake.reply(PAYMENT_PATTERN, "", delay_s=60)  # am never returns (receiver stuck)
    answer = approved(request.request_id)
    fake.reply(QUERY_PATTERN, am_broadcast_output(answer))
    assert payments.execute(request, timeout_s=0.1) == answer
    assert len([c for c in fake.commands if QUERY_PATTERN.search(c)]) == 1


def test_activity_path_takes_the_first_final_line_of_its_request() -> None:
    fake, payments = fake_terminal()
    request = payment()
    fake.reply(["am", "start"], "Starting: Intent { … }\n")
    future = payments.submit(request, via="activity")
    logcat = fake.wait_for_stream(["logcat", "-T", "1", "-s", "MPAC_RESULT"])
    fake.wait_for_command(["am", "start"])  # fired after the follower started
    in_progress = TransactionResult(
        status=Status.IN_PROGRESS, request_id=request.request_id, action=Action.PAYMENT
    )
    other = approved("another-request")
    answer = approved(request.request_id, amount=1200)
    for result in (other, in_progress, answer):
        logcat.feed(f"01-15 10:23:47.514  1042  1049 I MPAC_RESULT: {result.to_json_text()}\n")
    assert future.result(timeout=5) == answer
    assert logcat.closed


def test_activity_path_asks_once_more_at_the_deadline() -> None:
    fake, payments = fake_terminal(via="activity")
    request = payment()
    fake.reply(["am", "start"], "Starting: Intent { … }\n")
    fake.reply_stream(
        ["logcat"],
        "I MPAC_RESULT: "
        + TransactionResult(
            status=Status.IN_PROGRESS, request_id=request.request_id, action=Action.PAYMENT
        ).to_json_text()
        + "\n",
    )
    fake.reply(
        QUERY_PATTERN,
        am_broadcast_output(
            TransactionResult(
                status=Status.IN_PROGRESS, request_id=request.request_id, action=Action.PAYMENT
            )
        ),
    )
    with pytest.raises(ResultTimeout) as raised:
        payments.execute(request, timeout_s=0.3)
    assert raised.value.last_status == "in_progress"
    assert any(QUERY_PATTERN.search(command) for command in fake.commands)
    answer = approved(request.request_id)
    fake.reply(QUERY_PATTERN, am_broadcast_output(answer))
    assert payments.execute(request, timeout_s=0.3) == answer  # by QUERY at the deadline


def test_convenience_methods_build_requests_with_host_defaults() -> None:
    fake, payments = fake_terminal()

    def answer(command: str) -> Reply:
        words = split_command(command)
        request_id = words[words.index("request_id") + 1]
        return Reply(am_broadcast_output(approved(request_id)))

    fake.on(re.compile(r"^am broadcast "), answer)
    result = payments.pay(1200, "JPY", entry_modes=["contactless"], metadata="m")
    assert result.request_id is not None
    assert ID_PATTERN.match(result.request_id)
    sent = split_command(fake.commands[-1])
    assert sent[sent.index("result_screen_timeout_ms") + 1] == "3000"  # returns by itself
    assert sent[sent.index("entry_modes") + 1] == "contactless"
    payments.refund("pay_1", amount=5, request_id="refund-1", skip_result_screen=True)
    sent = split_command(fake.commands[-1])
    assert "result_screen_timeout_ms" not in sent
    assert sent[sent.index("request_id") + 1] == "refund-1"
    assert payments.end_of_day(scope="store").status is Status.APPROVED
    assert "store" in split_command(fake.commands[-1])


def log_line(result: TransactionResult) -> str:
    return f"01-15 10:23:47.514  1042  1049 I MPAC_RESULT: {result.to_json_text()}\n"


def test_activity_path_tells_a_replayed_refusal_from_this_attempts() -> None:
    """``logcat -T 1`` replays the last result line: an earlier attempt's TERMINAL_BUSY for
    this id is not this attempt's answer when the journal knows the request."""
    fake, payments = fake_terminal(via="activity")
    request = payment()
    busy = TransactionResult.failure(
        ErrorCode.TERMINAL_BUSY, request_id=request.request_id, action=Action.PAYMENT
    )
    running = TransactionResult(
        status=Status.IN_PROGRESS, request_id=request.request_id, action=Action.PAYMENT
    )
    fake.reply_stream(["logcat"], log_line(busy))
    fake.reply(["am", "start"], "Starting: Intent { … }\n")
    fake.reply(QUERY_PATTERN, am_broadcast_output(running))
    future = payments.submit(request, timeout_s=5)
    fake.wait_for_command(QUERY_PATTERN)  # the busy line was checked: the request runs
    answer = approved(request.request_id)
    fake.wait_for_stream(["logcat"]).feed(log_line(answer))
    assert future.result(timeout=5) == answer

    # Still busy: the app refused this attempt too, and journaled nothing.
    never_journaled = TransactionResult.failure(
        ErrorCode.UNKNOWN_REQUEST, request_id=request.request_id, action=Action.QUERY
    )
    fake.reply(QUERY_PATTERN, am_broadcast_output(never_journaled))
    assert payments.execute(request, timeout_s=5) == busy
