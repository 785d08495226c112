"""Each command's parsing and output against a device running the sample apps, in-process."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable

import pytest

from terminal_emulator.android import Device, DeviceThread, Intent, ManualClock, Priority
from terminal_emulator.contract import (
    BUSINESS_MAIN_ACTIVITY,
    CREDIT_CARD_PACKAGE,
    CREDIT_CARD_RESULT_RECEIVER,
    CREDIT_CARD_TRANSACTION_ACTIVITY,
    RESULT_LOG_TAG,
    Action,
    Status,
    parse_result_log_line,
    result_from_broadcast_output,
)
from terminal_emulator.shell import InputEvent, add_input_listener, executor_for, parse_intent
from terminal_emulator.shell.am import AmOptions
from terminal_emulator.shell.common import Args, JavaException
from tests.terminal_emulator.sample_apps import FakeGateway
from tests.terminal_emulator.shell.helpers import boot_with_samples, sh

PAY = CREDIT_CARD_TRANSACTION_ACTIVITY.flatten_short()
RECEIVER = CREDIT_CARD_RESULT_RECEIVER.flatten_short()
MakeDevice = Callable[..., Device]


def _intent(line: str) -> tuple[Intent, AmOptions]:
    options = AmOptions()
    return parse_intent(Args(shlex.split(line), "f"), options), options


# -- intent parsing ---------------------------------------------------------------------------


def test_intent_options_and_typed_extras() -> None:
    intent, options = _intent(
        "-W -a jp.mpac.intent.PAYMENT -n jp.mpac.creditcard/.TransactionActivity "
        "--es request_id R-1 --el amount 1200 --ei api_version 1 --ez skip true "
        "--esa tender_types 'card,qr' --eia codes 1,0x10,#ff --ela big 1,2 "
        "--esn gone -f 0x20 --receiver-foreground --user 0"
    )
    assert options.wait
    assert options.user == 0
    assert intent.action == "jp.mpac.intent.PAYMENT"
    assert intent.component == CREDIT_CARD_TRANSACTION_ACTIVITY
    assert intent.flags == 0x10000020
    extras = intent.extras
    assert extras.get_string("request_id") == "R-1"
    assert extras.get_long("amount") == 1200
    assert extras.get_int("amount") == 0
    assert extras.get_int("api_version") == 1
    assert extras.get_boolean("skip") is True
    assert extras.get_string_array("tender_types") == ("card", "qr")
    assert extras.get_int_array("codes") == (1, 16, 255)
    assert extras.get_long_array("big") == (1, 2)
    assert "gone" in extras
    assert extras.get_string("gone") is None
    assert str(intent) == (
        "Intent { act=jp.mpac.intent.PAYMENT flg=0x10000020 "
        "cmp=jp.mpac.creditcard/.TransactionActivity (has extras) }"
    )


def test_string_array_escapes_and_trailing_arguments() -> None:
    intent, _ = _intent(r"--esa k 'a\,b,c,' jp.mpac.business/.MainActivity")
    assert intent.extras.get_string_array("k") == ("a,b", "c")  # Java's split drops the last ""
    assert intent.action == "android.intent.action.MAIN"
    assert intent.categories == {"android.intent.category.LAUNCHER"}
    assert intent.component == BUSINESS_MAIN_ACTIVITY
    with_action, _ = _intent("-a x.Y jp.mpac.business/.MainActivity")
    assert with_action.action == "x.Y"
    assert with_action.categories == set()
    package, _ = _intent("jp.mpac.business")
    assert package.package == "jp.mpac.business"
    uri, _ = _intent("-a android.intent.action.VIEW https://example.com/x")
    assert uri.data == "https://example.com/x"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--bogus", "java.lang.IllegalArgumentException: Unknown option: --bogus"),
        ("-n", 'java.lang.IllegalArgumentException: Argument expected after "-n"'),
        ("-n nocomponent", "java.lang.IllegalArgumentException: Bad component name: nocomponent"),
        ("--ei k abc -a x", 'java.lang.NumberFormatException: For input string: "abc"'),
        (
            "--ei k 2147483648 -a x",
            'java.lang.NumberFormatException: For input string: "2147483648"',
        ),
        ("--el k 0x10 -a x", 'java.lang.NumberFormatException: For input string: "0x10"'),
        ("--ez k maybe -a x", "java.lang.IllegalArgumentException: Invalid boolean value: maybe"),
        ("--es k v", "java.lang.IllegalArgumentException: No intent supplied"),
        ("--user bob -a x", "java.lang.IllegalArgumentException: Bad user number: bob"),
    ],
)
def test_bad_intent_arguments_are_java_exceptions(line: str, message: str) -> None:
    with pytest.raises(JavaException) as caught:
        _intent(line)
    assert f"{caught.value.java_class}: {caught.value.message}" == message


# -- am ---------------------------------------------------------------------------------------


def test_am_start_payment_logs_the_result(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        line = (
            f"am start -n {PAY} -a {Action.PAYMENT.value} --es request_id R-1 --el amount 1200 "
            "--es currency JPY"
        )
        result = await sh(shell, line)
        assert (result.status, result.err) == (0, "")
        assert result.out == (
            f"Starting: Intent {{ act={Action.PAYMENT.value} cmp={PAY} (has extras) }}\n"
        )
        await device.idle()
        for _ in range(50):
            logged = await sh(shell, f"logcat -d -s {RESULT_LOG_TAG}")
            if logged.out:
                break
            await asyncio.sleep(0.01)
        lines = logged.out.splitlines()
        assert lines[0] == "--------- beginning of main"
        parsed = parse_result_log_line(lines[1])
        assert parsed is not None
        assert parsed.status is Status.APPROVED
        assert parsed.request_id == "R-1"
        assert parsed.amount == 1200
        await device.shutdown()

    asyncio.run(scenario())


def test_am_start_wait_prints_the_status_block(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        first = await sh(shell, f"am start -W -n {BUSINESS_MAIN_ACTIVITY.flatten_short()}")
        lines = first.out.splitlines()
        assert lines[0] == "Starting: Intent { cmp=jp.mpac.business/.MainActivity }"
        assert lines[1:4] == [
            "Status: ok",
            "LaunchState: COLD",
            "Activity: jp.mpac.business/.MainActivity",
        ]
        assert lines[4].startswith("TotalTime: ")
        assert int(lines[4].split()[1]) >= 0
        assert lines[5].startswith("WaitTime: ")
        assert lines[6:] == ["Complete"]
        # a bare component is a launcher intent, as on Android
        again = await sh(shell, "am start -W jp.mpac.business/.MainActivity")
        assert again.out.startswith(
            "Starting: Intent { act=android.intent.action.MAIN "
            "cat=[android.intent.category.LAUNCHER] cmp=jp.mpac.business/.MainActivity }\n"
        )
        assert "LaunchState: WARM" in again.out
        await device.shutdown()

    asyncio.run(scenario())


def test_am_start_errors_as_android_12(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        missing = await sh(shell, "am start -n jp.mpac.business/.Nope")
        assert missing.status == 0  # Android 12 and 13 exit 0 here; 14 exits 1
        assert missing.out == "Starting: Intent { cmp=jp.mpac.business/.Nope }\n"
        assert missing.err == (
            "Error type 3\n"
            "Error: Activity class {jp.mpac.business/jp.mpac.business.Nope} does not exist.\n"
        )
        waited = await sh(shell, "am start -W -n jp.mpac.business/.Nope")
        assert "Error type 3\n" in waited.out
        assert waited.err == ""
        unresolved = await sh(shell, "am start -a com.example.NOTHING")
        assert unresolved.err == (
            "Error: Activity not started, unable to resolve "
            "Intent { act=com.example.NOTHING flg=0x10000000 }\n"
        )
        bad = await sh(shell, "am start --foo")
        assert bad.status == 255
        assert bad.out == ""
        assert bad.err.startswith(
            "\nException occurred while executing 'start':\n"
            "java.lang.IllegalArgumentException: Unknown option: --foo\n\tat "
        )
        everyone = await sh(shell, "am start --user all -n jp.mpac.business/.MainActivity")
        assert (everyone.status, everyone.err) == (
            1,
            "Error: Can't start service with user 'all'\n",
        )
        unknown = await sh(shell, "am frobnicate")
        assert (unknown.status, unknown.out) == (255, "Unknown command: frobnicate\n")
        usage = await sh(shell, "am")
        assert usage.status == 255
        assert "Activity manager (activity) commands:" in usage.out
        await device.shutdown()

    asyncio.run(scenario())


def test_am_start_denied_for_a_private_activity(make_device: MakeDevice) -> None:
    from terminal_emulator.android import Activity, ActivityDeclaration, PackageManifest

    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        device.install(
            PackageManifest(
                "com.example.secret", activities=(ActivityDeclaration(".Hidden", Activity),)
            )
        )
        denied = await sh(shell, "am start -n com.example.secret/.Hidden")
        assert denied.status == 255
        assert "java.lang.SecurityException: Permission Denial: starting Intent {" in denied.err
        assert "not exported from uid" in denied.err
        await device.shutdown()

    asyncio.run(scenario())


def test_am_broadcast_prints_the_ordered_result(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        result = await sh(
            shell,
            f"am broadcast -n {RECEIVER} -a {Action.PAYMENT.value} -f 0x10000020 "
            "--es request_id B-1 --el amount 500 --es currency JPY "
            "--receiver-permission android.permission.DUMP",
        )
        assert result.status == 0
        assert result.err == ""
        first, second = result.out.splitlines()
        assert first == (
            f"Broadcasting: Intent {{ act={Action.PAYMENT.value} flg=0x10400020 "
            f"cmp={RECEIVER} (has extras) }}"
        )
        assert second.startswith('Broadcast completed: result=-1, data="{')
        answer = result_from_broadcast_output(result.out)
        assert answer is not None
        assert answer.status is Status.APPROVED
        assert answer.amount == 500
        nobody = await sh(shell, "am broadcast -a com.example.NOBODY")
        assert nobody.out == (
            "Broadcasting: Intent { act=com.example.NOBODY flg=0x400000 }\n"
            "Broadcast completed: result=0\n"
        )
        await device.shutdown()

    asyncio.run(scenario())


def test_shell_metacharacters_and_unicode_arrive_intact(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        note = "a 'b' \"c\" ; d \\ é 日本 && $HOME `x` | > *"
        line = (
            "am broadcast -n "
            + RECEIVER
            + " -a "
            + Action.PAYMENT.value
            + " "
            + " ".join(
                shlex.quote(word)
                for word in [
                    "--es",
                    "request_id",
                    "Q-1",
                    "--el",
                    "amount",
                    "700",
                    "--es",
                    "currency",
                    "JPY",
                    "--es",
                    "note",
                    note,
                    "--es",
                    "metadata",
                    note,
                ]
            )
        )
        result = await sh(shell, line)
        assert result.status == 0, result.err
        answer = result_from_broadcast_output(result.out)
        assert answer is not None
        assert answer.metadata == note
        await device.shutdown()

    asyncio.run(scenario())


def test_am_force_stop_mid_payment(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        gateway = FakeGateway()
        gateway.release.clear()  # the gateway holds the charge
        shell = await boot_with_samples(device, gateway)
        broadcast = asyncio.create_task(
            sh(
                shell,
                f"am broadcast -n {RECEIVER} -a {Action.PAYMENT.value} -f 0x10000020 "
                "--es request_id F-1 --el amount 900 --es currency JPY",
            )
        )
        await asyncio.wait_for(gateway.entered.wait(), 5)
        assert device.am.process_of(CREDIT_CARD_PACKAGE) is not None
        stopped = await sh(shell, f"am force-stop {CREDIT_CARD_PACKAGE}")
        assert stopped == type(stopped)(0, "", "")
        assert device.am.process_of(CREDIT_CARD_PACKAGE) is None
        result = await asyncio.wait_for(broadcast, 5)
        assert result.out.splitlines()[-1] == "Broadcast completed: result=0"
        assert device.pm.is_stopped(CREDIT_CARD_PACKAGE)
        unknown = await sh(shell, "am force-stop com.example.unknown; am kill com.example.unknown")
        assert (unknown.status, unknown.out, unknown.err) == (0, "", "")
        bad = await sh(shell, "am force-stop --bogus x")
        assert (bad.status, bad.err) == (255, "Error: Unknown option: --bogus\n")
        await device.shutdown()

    asyncio.run(scenario())


def test_am_kill_and_start_with_stop_first(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        await sh(shell, "am start -n jp.mpac.business/.MainActivity")
        first = device.am.process_of("jp.mpac.business")
        assert first is not None
        restarted = await sh(shell, "am start -S -W -n jp.mpac.business/.MainActivity")
        assert "LaunchState: COLD" in restarted.out
        second = device.am.process_of("jp.mpac.business")
        assert second is not None
        assert second.pid != first.pid
        assert (await sh(shell, "am kill jp.mpac.business")).status == 0
        assert device.am.process_of("jp.mpac.business") is None
        assert not device.pm.is_stopped("jp.mpac.business")  # kill is not force-stop
        await device.shutdown()

    asyncio.run(scenario())


# -- pm / cmd ---------------------------------------------------------------------------------


def test_pm_commands(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        listed = await sh(shell, "pm list packages")
        assert listed.out == "package:jp.mpac.business\npackage:jp.mpac.creditcard\n"
        assert (await sh(shell, "pm list packages credit")).out == "package:jp.mpac.creditcard\n"
        paths = await sh(shell, "pm list packages -f -3 --show-versioncode -U business")
        assert paths.out == (
            "package:/data/app/jp.mpac.business-1/base.apk=jp.mpac.business versionCode:1 uid:10000\n"
        )
        assert (await sh(shell, "pm list packages -s")).out == ""
        assert (
            await sh(shell, "cmd package list packages business")
        ).out == "package:jp.mpac.business\n"
        path = await sh(shell, "pm path jp.mpac.creditcard")
        assert path.out == "package:/data/app/jp.mpac.creditcard-1/base.apk\n"
        assert await sh(shell, "pm path com.example.nope") == type(path)(1, "", "")
        cleared = await sh(shell, "pm clear jp.mpac.creditcard")
        assert (cleared.status, cleared.out) == (0, "Success\n")
        failed = await sh(shell, "pm clear com.example.nope")
        assert (failed.status, failed.err) == (1, "Failed\n")
        assert (await sh(shell, "pm list")).out == "Error: didn't specify type of data to list\n"
        assert (await sh(shell, "pm list things")).out == "Error: unknown list type 'things'\n"
        bad = await sh(shell, "pm list packages -z")
        assert (bad.status, bad.out) == (255, "Error: Unknown option: -z\n")
        assert (await sh(shell, "pm frob")).out == "Unknown command: frob\n"
        nosvc = await sh(shell, "cmd nothing")
        assert (nosvc.status, nosvc.err) == (20, "cmd: Can't find service: nothing\n")
        assert "  package\n" in (await sh(shell, "cmd -l")).out
        await device.shutdown()

    asyncio.run(scenario())


# -- logcat -----------------------------------------------------------------------------------


def test_logcat_dump_filters_formats_and_clear(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        device.logcat.write(Priority.INFO, "MPAC_RESULT", '{"v":1}', pid=1234, tid=1240)
        device.logcat.write(Priority.DEBUG, "Other", "debug line", pid=1234)
        dumped = await sh(shell, "logcat -d -s MPAC_RESULT")
        assert dumped.out == (
            '--------- beginning of main\n01-15 10:23:45.123  1234  1240 I MPAC_RESULT: {"v":1}\n'
        )
        spec = await sh(shell, "logcat -d -v brief MPAC_RESULT:I '*:S'")
        assert spec.out.splitlines()[1] == 'I/MPAC_RESULT( 1234): {"v":1}'
        raw = await sh(shell, "logcat -d -v raw -s Other")
        assert raw.out.splitlines()[1:] == ["debug line"]
        tail = await sh(shell, "logcat -t 1 -b main")
        assert tail.out.splitlines()[1:] == [
            "01-15 10:23:45.123  1234  1234 D Other   : debug line"
        ]
        system = await sh(shell, "logcat -d -b system -s PackageManager")
        assert system.out.startswith("--------- beginning of system\n")
        # adb logcat's own line: ANDROID_LOG_TAGS applies when the command names no filter
        env = await sh(shell, "export ANDROID_LOG_TAGS='MPAC_RESULT:I *:S'; exec logcat -d")
        assert env.out.splitlines()[1:] == ['01-15 10:23:45.123  1234  1240 I MPAC_RESULT: {"v":1}']
        adb_style = await sh(shell, "export ANDROID_LOG_TAGS=\"''\"; exec logcat -d -b main")
        assert len(adb_style.out.splitlines()) == 3
        bad = await sh(shell, "logcat -v nonsense")
        assert (bad.status, bad.err) == (1, 'logcat: Invalid parameter "nonsense" to -v\n')
        assert (await sh(shell, "logcat -c")).status == 0
        assert (await sh(shell, "logcat -d -b main")).out == ""
        await device.shutdown()

    asyncio.run(scenario())


def test_logcat_follow_streams_until_cancelled(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        seen: list[str] = []
        got = asyncio.Event()

        class Stream:
            async def write(self, data: bytes) -> None:
                seen.append(data.decode())
                if "later" in data.decode():
                    got.set()

        sink = Stream()
        follow = asyncio.create_task(shell.run("logcat -s Test -v tag", None, sink, sink))
        await asyncio.sleep(0.05)
        device.logcat.write(Priority.INFO, "Test", "later", pid=1)
        await asyncio.wait_for(got.wait(), 5)
        assert "".join(seen) == "--------- beginning of main\nI/Test    : later\n"
        follow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follow
        await device.shutdown()

    asyncio.run(scenario())


# -- getprop / input / builtins ---------------------------------------------------------------


def test_getprop(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        every = await sh(shell, "getprop")
        assert "[ro.product.model]: [MPAC SmartPOS]\n" in every.out
        assert every.out == device.properties.getprop_output()
        assert (await sh(shell, "getprop ro.product.model")).out == "MPAC SmartPOS\n"
        assert (await sh(shell, "getprop no.such.prop")).out == "\n"
        assert (await sh(shell, "getprop no.such.prop fallback")).out == "fallback\n"
        await device.shutdown()

    asyncio.run(scenario())


def test_input_goes_to_the_listener(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        # no listener: accepted silently
        assert await sh(shell, "input keyevent KEYCODE_ENTER") == type(await sh(shell, "true"))(
            0, "", ""
        )
        events: list[InputEvent] = []
        add_input_listener(device, events.append)

        async def also(event: InputEvent) -> None:
            events.append(event)

        add_input_listener(device, also)
        assert (await sh(shell, "input keyevent KEYCODE_HOME 66 BACK")).status == 0
        assert (await sh(shell, "input tap 120 340.5")).status == 0
        assert (await sh(shell, "input touchscreen swipe 1 2 3 4 100")).status == 0
        assert (await sh(shell, "input text 'hello%sworld'")).status == 0
        keys = [e.key_name for e in events if e.kind == "key"]
        assert keys == ["KEYCODE_HOME"] * 2 + ["KEYCODE_ENTER"] * 2 + ["KEYCODE_BACK"] * 2
        taps = [(e.x, e.y) for e in events if e.kind == "tap"]
        assert taps == [(120.0, 340.5)] * 2
        swipe = next(e for e in events if e.kind == "swipe")
        assert (swipe.x2, swipe.y2, swipe.duration_ms, swipe.source) == (
            3.0,
            4.0,
            100,
            "touchscreen",
        )
        assert next(e for e in events if e.kind == "text").text == "hello world"
        bad = await sh(shell, "input keyevent KEYCODE_NOPE")
        assert bad.status == 255
        assert "Unknown keycode: KEYCODE_NOPE" in bad.err
        unknown = await sh(shell, "input frob")
        assert unknown.status == 255
        assert unknown.err == "Error: Unknown command: frob\n"
        await device.shutdown()

    asyncio.run(scenario())


def test_builtins_and_unknown_commands(make_device: MakeDevice) -> None:
    async def scenario() -> None:
        device = make_device()
        shell = await boot_with_samples(device)
        assert (await sh(shell, "frobnicate")).err == (
            "/system/bin/sh: frobnicate: inaccessible or not found\n"
        )
        assert (await sh(shell, "am frob; echo $?")).out == "Unknown command: frob\n255\n"
        assert (await sh(shell, "exit 3")).status == 3
        assert (await sh(shell, "/system/bin/getprop ro.product.name")).out == "mpac_smartpos\n"
        await device.shutdown()

    asyncio.run(scenario())


def test_commands_reach_a_device_on_another_thread(tmp_path, clock: ManualClock) -> None:  # type: ignore[no-untyped-def]
    from terminal_emulator.android import DeviceConfig

    gateway_box: list[FakeGateway] = []

    def factory() -> Device:
        from tests.terminal_emulator.sample_apps import business_manifest, card_manifest

        device = Device(DeviceConfig(serial="T-1", state_dir=tmp_path / "T-1"), clock=clock)
        gateway_box.append(FakeGateway())
        device.install(business_manifest())
        device.install(card_manifest(gateway_box[0]))
        return device

    thread = DeviceThread(factory)
    device = thread.start()
    try:
        shell = executor_for(device)

        async def scenario() -> None:  # another loop than the device's
            started = await sh(shell, "am start -W -n jp.mpac.business/.MainActivity")
            assert "Status: ok" in started.out
            sent = await sh(
                shell,
                f"am broadcast -n {RECEIVER} -a {Action.QUERY.value} --es request_id nope",
            )
            assert "Broadcast completed: result=" in sent.out
            answer = result_from_broadcast_output(sent.out)
            assert answer is not None
            listed = await sh(shell, "pm list packages")
            assert listed.out.count("package:") == 2

        asyncio.run(scenario())
    finally:
        thread.stop()
