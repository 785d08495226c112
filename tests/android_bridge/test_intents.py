"""Contract requests as ``am`` command lines: every request class comes back equal after the
device's shell split the line and ``am`` parsed it into an Intent, values full of shell
metacharacters included — in-process (the emulator's shell parser and ``am`` option parser,
and the real ``/bin/sh``), and over a real ADB link to an emulated device whose Credit Card
App records what ``parse_request`` made of it."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from android_bridge.device import AndroidDevice
from android_bridge.intents import (
    am_argv,
    am_command,
    command_line,
    extra_argv,
    extras_argv,
    shell_quote,
)
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
    ExtraType,
    Intent,
    IntentFilter,
    PackageManifest,
    ReceiverDeclaration,
    TypedValue,
)
from terminal_emulator.contract import (
    BROADCAST_FLAGS,
    CREDIT_CARD_PACKAGE,
    CREDIT_CARD_RESULT_RECEIVER,
    CREDIT_CARD_TRANSACTION_ACTIVITY,
    MAX_AMOUNT,
    Action,
    ContractRequest,
    EndOfDayRequest,
    EntryMode,
    PaymentRequest,
    QueryRequest,
    ReceiptMode,
    RefundRequest,
    SettlementScope,
    TenderType,
    VoidRequest,
    parse_request,
)
from terminal_emulator.shell import start_adb_endpoint
from terminal_emulator.shell.am import AmOptions, parse_intent
from terminal_emulator.shell.common import Args
from tests.terminal_emulator.adb.conftest import HostKey, LoopThread

# What a shell could make something of, one at a time and all together.
NASTY = [
    "order 'A' ; 日本",
    'say "hi" && reboot || true',
    "a | b > c < d & e",
    "$(reboot) `id` ${HOME} $? $$ $1 $",
    "back\\slash \\' \\\" trailing\\",
    "line one\nline two\n",
    "tab\there\t",
    "*.txt ~root #not a comment ! {a,b} [x] ?",
    "日本語のメモ 💳🧾 ñ é",
    "'",
    '"',
    "\\",
    "''",
    " leading and trailing ",
    "-es not an option",
    "--el amount 1",
    "a,b\\,c,",
    "=value",
    "\u2028\u00a0\ufeff",
    "#",
    "~",
]
ALL_AT_ONCE = "".join(NASTY)[:500]


def full_payment(text: str = ALL_AT_ONCE) -> PaymentRequest:
    return PaymentRequest(
        request_id="0190b6e2-4b1c-7c3e-9f7a-3a2d1c0b9e8f",
        amount=MAX_AMOUNT - 5,
        currency="JPY",
        tip_amount=5,
        tender_types=(TenderType.CARD,),
        entry_modes=(EntryMode.CHIP, EntryMode.SWIPE),
        tab_id="tab_01:a.b-c",
        note=text[:500],
        timeout_ms=5000,
        cashier_id="cashier.7",
        metadata=text[:1024],
        receipt_mode=ReceiptMode.PRINT,
        skip_result_screen=True,
        result_screen_timeout_ms=1500,
        broadcast_wait_ms=0,
    )


def every_request_class(text: str = ALL_AT_ONCE) -> list[ContractRequest]:
    return [
        full_payment(text),
        PaymentRequest(request_id="p-min", amount=1, currency="USD"),
        RefundRequest(
            request_id="r-1",
            payment_id="pay_123",
            amount=500,
            currency="JPY",
            reason=text[:200],
            metadata=text[:1024],
            cashier_id="c1",
        ),
        RefundRequest(request_id="r-all", payment_id="pay_123"),
        VoidRequest(request_id="v-1", payment_id="pay_123", reason=text[:200], metadata=text),
        QueryRequest(request_id="q-1"),
        EndOfDayRequest(
            request_id="e-1", scope=SettlementScope.STORE, metadata=text, skip_result_screen=True
        ),
        EndOfDayRequest(request_id="e-min"),
    ]


def parsed_by_am(argv: list[str]) -> Intent:
    """What the emulator's ``am`` makes of these words (``am broadcast …`` / ``am start …``)."""
    assert argv[0] == "am"
    return parse_intent(Args(argv[2:], "test"), AmOptions())


# -- shell_quote --------------------------------------------------------------------------------


def test_safe_words_stay_bare_and_the_rest_is_single_quoted() -> None:
    assert shell_quote("am") == "am"
    assert shell_quote("jp.mpac.creditcard/.ResultReceiver") == "jp.mpac.creditcard/.ResultReceiver"
    assert shell_quote("0x10000020") == "0x10000020"
    assert shell_quote("--el") == "--el"
    assert shell_quote("card,qr") == "card,qr"
    assert shell_quote("") == "''"
    assert shell_quote("a b") == "'a b'"
    assert shell_quote("it's") == "'it'\\''s'"
    assert shell_quote("~") == "'~'"
    assert shell_quote("#x") == "'#x'"
    assert shell_quote("a=b") == "'a=b'"
    assert shell_quote("日本") == "'日本'"


@pytest.mark.parametrize("text", [*NASTY, ALL_AT_ONCE])
def test_the_emulator_shell_reads_every_word_back(text: str) -> None:
    argv = ["am", "broadcast", "--es", "note", text, "--es", "empty", ""]
    assert split_command(command_line(argv)) == argv


def test_a_real_posix_shell_reads_every_word_back() -> None:
    """``/bin/sh`` (dash here; mksh on Android) prints each word NUL-terminated."""
    cases = [[text] for text in NASTY] + [NASTY, [""], ["", "x", ""]]
    script = "\n".join(f"printf '%s\\037' {command_line(words)}; printf '\\036'" for words in cases)
    output = subprocess.run(
        ["/bin/sh", "-c", script], capture_output=True, check=True, timeout=10
    ).stdout.decode()
    got = [chunk.split("\x1f")[:-1] for chunk in output.split("\x1e")[:-1]]
    assert got == cases


# -- am argv ------------------------------------------------------------------------------------


def test_broadcast_and_start_command_lines() -> None:
    request = PaymentRequest(request_id="ADB-1", amount=1200, currency="JPY")
    assert am_argv(request, via="broadcast") == [
        "am", "broadcast",
        "-n", "jp.mpac.creditcard/.ResultReceiver",
        "-a", "jp.mpac.creditcard.action.PAYMENT",
        "-f", "0x10000020",
        "--es", "request_id", "ADB-1",
        "--ei", "api_version", "1",
        "--el", "amount", "1200",
        "--es", "currency", "JPY",
    ]  # fmt: skip
    assert am_argv(request, via="activity")[:6] == [
        "am", "start",
        "-n", "jp.mpac.creditcard/.TransactionActivity",
        "-a", "jp.mpac.creditcard.action.PAYMENT",
    ]  # fmt: skip
    assert "-W" not in am_argv(request, via="activity")  # waits for launch, not the result
    assert am_command(request, via="broadcast").startswith(
        "am broadcast -n jp.mpac.creditcard/.ResultReceiver -a jp.mpac.creditcard.action.PAYMENT "
        "-f 0x10000020 --es request_id ADB-1"
    )
    with pytest.raises(ValueError, match="via must be"):
        am_argv(request, via="service")  # type: ignore[arg-type]


def test_extras_carry_their_java_type() -> None:
    words = extras_argv(full_payment("note"))
    flags = {words[i + 1]: words[i] for i in range(0, len(words), 3)}
    assert flags == {
        "request_id": "--es",
        "api_version": "--ei",
        "amount": "--el",
        "currency": "--es",
        "tip_amount": "--el",
        "tender_types": "--esa",
        "entry_modes": "--esa",
        "tab_id": "--es",
        "note": "--es",
        "timeout_ms": "--el",
        "cashier_id": "--es",
        "metadata": "--es",
        "receipt_mode": "--es",
        "skip_result_screen": "--ez",
        "result_screen_timeout_ms": "--el",
        "broadcast_wait_ms": "--el",
    }
    assert words[words.index("entry_modes") + 1] == "chip,swipe"
    assert words[words.index("skip_result_screen") + 1] == "true"


def test_string_arrays_with_commas_and_metacharacters_survive() -> None:
    values = ("a,b", "c d", "it's; $(x)", ",", "日本,語", "back\\slash")
    argv = [
        "am",
        "broadcast",
        "-a",
        "x",
        *extra_argv("k", TypedValue(ExtraType.STRING_ARRAY, values)),
    ]
    intent = parsed_by_am(split_command(command_line(argv)))
    assert intent.extras.get_string_array("k") == values
    with pytest.raises(ValueError, match="not sent by the bridge"):
        extra_argv("k", TypedValue(ExtraType.DOUBLE, 1.5))


@pytest.mark.parametrize("via", ["broadcast", "activity"])
def test_every_request_class_round_trips_through_shell_and_am(via: str) -> None:
    for request in every_request_class():
        argv = am_argv(request, via=via)  # type: ignore[arg-type]
        words = split_command(command_line(argv))
        assert words == argv
        intent = parsed_by_am(words)
        assert parse_request(intent) == request
        assert intent.action == request.ACTION.value
        if via == "broadcast":
            assert intent.component == CREDIT_CARD_RESULT_RECEIVER
            assert intent.flags & BROADCAST_FLAGS == BROADCAST_FLAGS
        else:
            assert intent.component == CREDIT_CARD_TRANSACTION_ACTIVITY


def _random_text(rng: random.Random, length: int) -> str:
    alphabet = (
        [chr(c) for c in range(0x20, 0x7F)]
        + list("'\"\\$`;&|<>(){}[]*?~#!,=\t\n") * 4
        + list("日本語カード¥€ñé\u00a0\u2028\u200b\ufeff")
        + ["💳", "🧾", "👍🏽"]
    )
    text = "".join(rng.choice(alphabet) for _ in range(length))
    return text if text.strip(" ") else text + "x"


def test_random_texts_round_trip_in_every_text_field() -> None:
    """A seeded property test over note, metadata and reason (500 draws)."""
    rng = random.Random(20260115)
    for _ in range(500):
        text = _random_text(rng, rng.randint(1, 120))
        for request in (
            PaymentRequest(request_id="p", amount=1, currency="JPY", note=text, metadata=text),
            RefundRequest(request_id="r", payment_id="x", reason=text, metadata=text),
            VoidRequest(request_id="v", payment_id="x", reason=text),
        ):
            argv = am_argv(request, via="broadcast")
            words = split_command(command_line(argv))
            assert words == argv, text
            assert parse_request(parsed_by_am(words)) == request, text


# -- over a real ADB link -----------------------------------------------------------------------


@dataclass
class Recorder:
    """What the recording Credit Card App received, parsed by the contract."""

    requests: list[tuple[str, ContractRequest]] = field(default_factory=list)
    intents: list[Intent] = field(default_factory=list)

    def record(self, via: str, intent: Intent) -> None:
        self.intents.append(intent)
        self.requests.append((via, parse_request(intent)))


def recording_app(recorder: Recorder) -> PackageManifest:
    class RecordingReceiver(BroadcastReceiver):
        def on_receive(self, context: Context, intent: Intent) -> None:
            recorder.record("broadcast", intent)
            self.set_result(-1, "recorded", None)

    class RecordingActivity(Activity):
        def on_create(self, saved_state: Bundle | None) -> None:
            recorder.record("activity", self.intent)
            self.finish()

    actions = [action.value for action in Action]
    return PackageManifest(
        CREDIT_CARD_PACKAGE,
        activities=(
            ActivityDeclaration(
                ".TransactionActivity",
                RecordingActivity,
                intent_filters=(IntentFilter.create(actions, categories=[CATEGORY_DEFAULT]),),
                exported=True,
            ),
        ),
        receivers=(
            ReceiverDeclaration(
                ".ResultReceiver",
                RecordingReceiver,
                intent_filters=(IntentFilter.create(actions),),
                exported=True,
            ),
        ),
    )


@dataclass
class RecordingDevice:
    device: AndroidDevice
    recorder: Recorder


@pytest.fixture
def recording_device(
    device_loop: LoopThread, host_key: HostKey, tmp_path: Path
) -> Iterator[RecordingDevice]:
    """An emulated device with the recording app, its ADB endpoint on a free port, and an
    AndroidDevice connected to it over TCP."""
    adb_keys = tmp_path / "adb_keys"
    adb_keys.write_text(host_key.public.to_line() + "\n")
    recorder = Recorder()

    async def boot() -> tuple[Device, object]:
        device = Device(DeviceConfig(serial="RECORDER-1", state_dir=tmp_path / "device"))
        await device.start()
        device.install(recording_app(recorder))
        server = await start_adb_endpoint(device, 0, adb_keys)
        return device, server

    device, server = device_loop.call(boot())
    port = server.port  # type: ignore[attr-defined]
    android = AndroidDevice.open(f"127.0.0.1:{port}", key_path=host_key.path)
    try:
        yield RecordingDevice(android, recorder)
    finally:
        android.close()
        device_loop.call(server.stop())  # type: ignore[attr-defined]
        device_loop.call(device.shutdown())


@pytest.mark.parametrize("via", ["broadcast", "activity"])
def test_every_request_class_arrives_intact_over_adb(
    recording_device: RecordingDevice, via: str
) -> None:
    device, recorder = recording_device.device, recording_device.recorder
    sent = every_request_class() + [full_payment(text) for text in NASTY]
    for request in sent:
        shell = device.run(am_argv(request, via=via), timeout_s=10)  # type: ignore[arg-type]
        assert shell.ok, shell.output
        assert "Error" not in shell.output, shell.output
        if via == "broadcast":
            assert 'Broadcast completed: result=-1, data="recorded"' in shell.output
    received = [request for how, request in recorder.requests if how == via]
    assert received == sent
