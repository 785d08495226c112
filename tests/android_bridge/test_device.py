"""AndroidDevice and LogcatFollower: exit statuses, properties, packages, logcat, reconnects.

The parsing and retry logic runs on the scripted FakeTransport; everything that depends on a
device's behaviour runs over real TCP against the emulator's ADB endpoint (bare servers with
the fake shell, and an enrolled emulated terminal).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from android_bridge.device import (
    AndroidDevice,
    LogcatFollower,
    exit_marker_command,
    parse_getprop,
    split_exit_marker,
)
from android_bridge.errors import (
    BridgeError,
    CommandTimeout,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
    MalformedResult,
)
from android_bridge.fakes import FakeStream, FakeTransport, Reply
from android_bridge.transport import Timeouts
from terminal_emulator.adb import AdbDeviceServer, AdbKeyStore
from terminal_emulator.android import Priority
from terminal_emulator.contract import CREDIT_CARD_PACKAGE
from terminal_emulator.terminal import EmulatedTerminal
from tests.android_bridge.conftest import serial_of
from tests.helpers import wait_until
from tests.terminal_emulator.adb.conftest import HostKey, LoopThread, StartDevice
from tests.terminal_emulator.adb.fakes import Tracker

FAST = Timeouts(transport_s=2.0, read_s=2.0, auth_s=0.5, command_s=5.0)


@pytest.fixture
def fake() -> FakeTransport:
    return FakeTransport(serial="fake:5555")


@pytest.fixture
def devices() -> Iterator[list[AndroidDevice]]:
    made: list[AndroidDevice] = []
    yield made
    for device in made:
        device.close()


@pytest.fixture
def open_device(devices: list[AndroidDevice], host_key: HostKey) -> Callable[[str], AndroidDevice]:
    """``open_device(serial)``: connected with the allowed host key, closed after the test."""

    def make(serial: str) -> AndroidDevice:
        device = AndroidDevice.open(serial, key_path=host_key.path, timeouts=FAST)
        devices.append(device)
        return device

    return make


# -- the exit-status marker ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello\nmpac-exit-ab12:0\n", ("hello\n", 0)),
        ("no newline at the endmpac-exit-ab12:1\n", ("no newline at the end", 1)),
        ("crlf\r\nmpac-exit-ab12:127\r\n", ("crlf\r\n", 127)),
        ("mpac-exit-ab12:255", ("", 255)),
        (
            "mentions mpac-exit-ab12:9 early\nmpac-exit-ab12:3\n",
            ("mentions mpac-exit-ab12:9 early\n", 3),
        ),
        ("cut short", None),
        ("mpac-exit-ab12:", None),
        ("mpac-exit-ab12:1\ntrailing text\n", None),
    ],
)
def test_the_exit_marker_is_split_off_the_output(
    raw: str, expected: tuple[str, int] | None
) -> None:
    assert split_exit_marker(raw, "mpac-exit-ab12") == expected


def test_the_marker_line_follows_the_command_on_a_line_of_its_own() -> None:
    assert exit_marker_command("am start -n x/.Y;", "m1") == 'am start -n x/.Y;\necho "m1:$?"'


def test_run_returns_output_and_exit_status(fake: FakeTransport) -> None:
    fake.reply("pm clear x", "Failed\n", exit_code=1)
    device = AndroidDevice("fake:5555", transport=fake)

    result = device.run("pm clear x")

    assert (result.output, result.exit_code, result.ok) == ("Failed\n", 1, False)
    assert fake.commands == ["pm clear x"]  # connected on first use; the marker is not shown
    assert fake.connects == 1
    assert device.run("true").ok
    assert device.run("false").exit_code == 1


def test_a_list_is_quoted_word_by_word(fake: FakeTransport) -> None:
    device = AndroidDevice("fake:5555", transport=fake)
    device.run(["am", "broadcast", "--es", "note", "two words; $x", "--es", "empty", ""])
    assert fake.commands == ["am broadcast --es note 'two words; $x' --es empty ''"]


def test_output_without_its_exit_status_is_malformed(fake: FakeTransport) -> None:
    fake.reply("logcat -d", "half a li", exit_code=None)
    fake.reply("echo 'unclosed", "/system/bin/sh: syntax error: no closing quote\n", exit_code=None)
    device = AndroidDevice("fake:5555", transport=fake)

    with pytest.raises(MalformedResult) as cut:
        device.run("logcat -d")
    assert cut.value.raw == "half a li"
    with pytest.raises(MalformedResult) as unparsable:
        device.run("echo 'unclosed")
    assert "could not parse" in unparsable.value.message


def test_after_a_drop_calls_fail_until_someone_reconnects(fake: FakeTransport) -> None:
    device = AndroidDevice("fake:5555", transport=fake)
    first = device.connect()
    fake.drop()

    with pytest.raises(DeviceOffline):
        device.run("true")
    assert fake.connects == 1  # no silent reconnect: the caller decides what may be retried
    assert device.banner is first

    second = device.reconnect(deadline_s=1)
    assert second is not first
    assert device.banner is second
    assert device.run("true").ok


def test_getprop_and_properties(fake: FakeTransport) -> None:
    fake.reply("getprop ro.product.model", "MPAC SmartPOS\n")
    fake.reply("getprop ro.unset", "\n")
    fake.reply(
        "getprop",
        "[persist.sys.locale]: [ja-JP]\n"
        "[ro.build.fingerprint]: [mpac/smartpos:12/SP1A/1:user/release-keys]\r\n"
        "[ro.empty]: []\n"
        "[ro.multi]: [first line\nsecond ] line]\n"
        "[ro.product.model]: [MPAC SmartPOS]\n",
    )
    device = AndroidDevice("fake:5555", transport=fake)

    assert device.getprop("ro.product.model") == "MPAC SmartPOS"
    assert device.getprop("ro.unset") is None
    assert device.properties() == {
        "persist.sys.locale": "ja-JP",
        "ro.build.fingerprint": "mpac/smartpos:12/SP1A/1:user/release-keys",
        "ro.empty": "",
        "ro.multi": "first line\nsecond ] line",
        "ro.product.model": "MPAC SmartPOS",
    }
    assert parse_getprop("") == {}


def test_is_installed_reads_pm_path(fake: FakeTransport) -> None:
    fake.reply(["pm", "path", "jp.mpac.creditcard"], "package:/data/app/~~x==/base.apk\n")
    fake.reply(["pm", "path", "jp.old.release"], "", exit_code=0)  # Android 6 and older
    fake.reply(["pm", "path", "jp.missing"], "", exit_code=1)
    fake.reply(
        ["pm", "path", "jp.broken"], "Error: could not access the Package Manager\n", exit_code=1
    )
    device = AndroidDevice("fake:5555", transport=fake)

    assert device.is_installed("jp.mpac.creditcard")
    assert not device.is_installed("jp.old.release")
    assert not device.is_installed("jp.missing")
    with pytest.raises(MalformedResult):
        device.is_installed("jp.broken")


def test_logcat_dump_keeps_the_last_lines(fake: FakeTransport) -> None:
    fake.reply(["logcat", "-d"], "".join(f"line {n}\r\n" for n in range(10)))
    fake.reply(["logcat", "-d", "-b", "nope"], "logcat: unknown buffer nope\n", exit_code=1)
    device = AndroidDevice("fake:5555", transport=fake)

    assert device.logcat_dump(max_lines=3) == ["line 7", "line 8", "line 9"]
    with pytest.raises(BridgeError) as raised:
        device.logcat_dump("-b", "nope")
    assert "unknown buffer" in raised.value.message


# -- reconnecting ----------------------------------------------------------------------------


def test_reconnect_retries_with_back_off_until_the_device_is_back(fake: FakeTransport) -> None:
    device = AndroidDevice("fake:5555", transport=fake)
    device.connect()
    fake.drop()
    fake.fail_connect(
        DeviceNotFound("refused"), DeviceOffline("booting"), DeviceUnauthorized("asks again")
    )

    started = time.monotonic()
    banner = device.reconnect(deadline_s=5)

    assert 0.1 + 0.2 + 0.4 <= time.monotonic() - started < 1.5
    assert device.banner is banner
    assert fake.connects == 2


def test_reconnect_gives_up_at_the_deadline_with_the_last_error(fake: FakeTransport) -> None:
    device = AndroidDevice("fake:5555", transport=fake)
    fake.fail_connect(DeviceNotFound("refused"), *[DeviceOffline("still booting")] * 50)

    started = time.monotonic()
    with pytest.raises(DeviceOffline):
        device.reconnect(deadline_s=0.5)
    assert time.monotonic() - started < 1.0


def test_reconnect_does_not_retry_what_waiting_cannot_fix(fake: FakeTransport) -> None:
    fake.fail_connect(BridgeError("USB devices need the libusb1 package"))
    device = AndroidDevice("fake:5555", transport=fake)
    started = time.monotonic()
    with pytest.raises(BridgeError, match="libusb1"):
        device.reconnect(deadline_s=5)
    assert time.monotonic() - started < 0.5


def test_threads_reconnecting_after_the_same_drop_share_one_connection(
    fake: FakeTransport,
) -> None:
    device = AndroidDevice("fake:5555", transport=fake)
    device.connect()
    fake.drop()
    fake.connect_delay_s = 0.3
    banners: list[object] = []

    threads = [
        threading.Thread(target=lambda: banners.append(device.reconnect(deadline_s=5)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(5)

    assert fake.connects == 2
    assert len(banners) == 3
    assert all(banner is device.banner for banner in banners)


# -- following logcat (fake stream) ----------------------------------------------------------


def test_following_logcat_opens_the_stream_before_returning(fake: FakeTransport) -> None:
    device = AndroidDevice("fake:5555", transport=fake)
    with device.follow_logcat("-T", "1", "-s", "MPAC_RESULT") as follower:
        stream = fake.wait_for_stream(["logcat"], timeout_s=0)
        assert stream.command == "logcat -T 1 -s MPAC_RESULT"
        assert fake.commands == ["true"]  # the round trip after the stream was open

        stream.feed("first li")
        stream.feed("ne\r\nsecond\nthi")
        stream.feed("rd\n")

        assert follower.wait_for(lambda line: line.startswith("third"), timeout_s=1) == "third"
        assert follower.lines() == ["first line", "second", "third"]
    assert stream.closed


def test_wait_for_sees_lines_that_come_later_and_times_out_quietly(fake: FakeTransport) -> None:
    device = AndroidDevice("fake:5555", transport=fake)
    follower = device.follow_logcat()
    stream = fake.wait_for_stream(["logcat"])
    threading.Timer(0.1, stream.feed, args=("I MPAC_RESULT: {}\n",)).start()

    assert follower.wait_for(lambda line: "MPAC_RESULT" in line, timeout_s=2) == "I MPAC_RESULT: {}"
    started = time.monotonic()
    assert follower.wait_for(lambda line: "never" in line, timeout_s=0.2) is None
    assert 0.2 <= time.monotonic() - started < 0.6
    follower.close()


def test_the_buffer_keeps_the_newest_lines(fake: FakeTransport) -> None:
    device = AndroidDevice("fake:5555", transport=fake)
    follower = device.follow_logcat(max_lines=3)
    stream = fake.wait_for_stream(["logcat"])
    stream.feed("".join(f"{n}\n" for n in range(10)))

    assert follower.wait_for(lambda line: line == "9", timeout_s=1) == "9"
    assert follower.lines() == ["7", "8", "9"]
    assert follower.wait_for(lambda line: line == "2", timeout_s=0.05) is None  # dropped
    follower.close()


def test_a_broken_stream_is_offline_after_the_lines_that_came(fake: FakeTransport) -> None:
    device = AndroidDevice("fake:5555", transport=fake)
    follower = device.follow_logcat()
    stream = fake.wait_for_stream(["logcat"])
    stream.feed("before the drop\n")
    wait_until(lambda: bool(follower.lines()), timeout_s=1, interval_s=0.01, what="the line")

    fake.drop()

    assert follower.wait_for(lambda line: "before" in line, timeout_s=1) == "before the drop"
    with pytest.raises(DeviceOffline):
        follower.wait_for(lambda line: "after" in line, timeout_s=5)
    lines: list[str] = []
    with pytest.raises(DeviceOffline):
        lines.extend(follower)
    assert lines == ["before the drop"]
    assert isinstance(follower.error, DeviceOffline)
    follower.close()


def test_when_logcat_ends_waiting_ends_too(fake: FakeTransport) -> None:
    fake.reply_stream(["logcat", "-m", "1"], "only line\n", end=True)
    device = AndroidDevice("fake:5555", transport=fake)
    follower = device.follow_logcat("-m", "1")

    started = time.monotonic()
    assert follower.wait_for(lambda line: "other" in line, timeout_s=5) is None
    assert time.monotonic() - started < 1.0
    assert list(follower) == ["only line"]
    assert not follower.running


def test_closing_the_device_closes_its_followers(fake: FakeTransport) -> None:
    device = AndroidDevice("fake:5555", transport=fake)
    follower = device.follow_logcat()
    iterated: list[list[str]] = []
    reader = threading.Thread(target=lambda: iterated.append(list(follower)))
    reader.start()

    device.close()

    reader.join(2)
    assert iterated == [[]]
    assert fake.wait_for_stream(["logcat"]).closed
    assert follower.error is None


def test_a_follower_reads_any_text_stream() -> None:
    stream = FakeStream("logcat", read_timeout_s=0.05)
    follower = LogcatFollower(stream, max_lines=10, serial="x")
    stream.feed("a\nb\n")
    stream.end()
    assert list(follower) == ["a", "b"]


def test_scripted_replies_can_be_computed_and_delayed(fake: FakeTransport) -> None:
    fake.on(re.compile(r"^echo "), lambda command: Reply(command[5:] + "\n"))
    fake.reply("slow", "done\n", delay_s=0.5)
    device = AndroidDevice("fake:5555", transport=fake)

    assert device.run("echo computed").output == "computed\n"
    with pytest.raises(CommandTimeout):
        device.run("slow", timeout_s=0.1)
    assert device.run("nope").exit_code == 127


# -- over real TCP: a bare device with the fake shell ----------------------------------------


def test_exit_statuses_and_output_come_back_intact(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    open_device: Callable[[str], AndroidDevice],
) -> None:
    device = open_device(start_device(keystore=allowed_keystore).serial)
    words = ["¥1,200 — お買い上げ", "🧾", "it's; $x `y`\nnext line", ""]

    assert device.run("false").exit_code == 1
    assert device.run("true").exit_code == 0
    assert device.run("warn out err 3") == device.run(["warn", "out", "err", "3"])
    assert device.run("warn out err 3").output == "out\nerr\n"
    assert device.run("nosuchcommand").exit_code == 127
    printed = device.run(["printargs", *words])
    assert printed.ok
    assert json.loads(printed.output) == words
    # A command ending in ";" or a comment still reaches the marker line.
    assert device.run("echo a;").output == "a\n"
    assert device.run("false # a comment").exit_code == 1


def test_a_command_the_shell_refuses_is_malformed_not_a_status(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    open_device: Callable[[str], AndroidDevice],
) -> None:
    device = open_device(start_device(keystore=allowed_keystore).serial)
    with pytest.raises(MalformedResult) as raised:
        device.run("echo 'unclosed")
    assert "syntax error" in raised.value.raw


def test_the_device_gone_then_back_on_its_port_is_reconnected(
    start_device_at: Callable[..., AdbDeviceServer],
    allowed_keystore: AdbKeyStore,
    device_loop: LoopThread,
    tracker: Tracker,
    open_device: Callable[[str], AndroidDevice],
) -> None:
    server = start_device_at(0, keystore=allowed_keystore)
    device = open_device(server.serial)
    before = device.banner
    failure: list[BaseException] = []
    running = threading.Thread(target=lambda: _record(failure, device.run, "hang", timeout_s=30))
    running.start()
    wait_until(tracker.started.is_set, timeout_s=5, interval_s=0.01, what="hang started")

    device_loop.call(server.stop())
    running.join(2)

    assert isinstance(failure[0], DeviceOffline)
    assert not device.connected
    # Back after half a second: reconnect keeps trying meanwhile.
    threading.Timer(0.5, lambda: start_device_at(server.port, keystore=allowed_keystore)).start()
    started = time.monotonic()
    banner = device.reconnect(deadline_s=5)
    assert 0.4 < time.monotonic() - started < 3
    assert banner is not before
    assert device.run("echo back").output == "back\n"


def _record(
    into: list[BaseException], call: Callable[..., object], *args: object, **kwargs: object
) -> None:
    try:
        call(*args, **kwargs)
    except BaseException as error:
        into.append(error)


def test_a_timed_out_command_leaves_the_device_usable(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    tracker: Tracker,
    open_device: Callable[[str], AndroidDevice],
) -> None:
    device = open_device(start_device(keystore=allowed_keystore).serial)
    with pytest.raises(CommandTimeout):
        device.run("hang", timeout_s=0.2)
    wait_until(tracker.cancelled.is_set, timeout_s=5, interval_s=0.01, what="hang cancelled")
    assert device.run("echo ok").output == "ok\n"


def test_a_long_command_a_follower_and_short_commands_run_side_by_side(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    open_device: Callable[[str], AndroidDevice],
) -> None:
    device = open_device(start_device(keystore=allowed_keystore).serial)
    long_result: list[object] = []
    long_command = threading.Thread(
        target=lambda: long_result.append(device.run("sleep 1; echo paid"))
    )
    long_command.start()
    with device.follow_logcat("-s", "MPAC_RESULT") as follower:
        assert follower.wait_for(lambda line: "MPAC_RESULT" in line, timeout_s=2)
        for _ in range(5):
            started = time.monotonic()
            assert device.run("true").ok
            assert time.monotonic() - started < 0.3
    assert long_command.is_alive()
    long_command.join(5)
    assert [getattr(result, "output", None) for result in long_result] == ["paid\n"]


# -- over real TCP: an enrolled emulated terminal --------------------------------------------


def test_the_terminal_answers_like_an_android_device(
    adb_terminal: EmulatedTerminal, open_device: Callable[[str], AndroidDevice]
) -> None:
    device = open_device(serial_of(adb_terminal))

    assert device.banner is not None
    assert device.banner.model == "MPAC SmartPOS"
    assert device.getprop("ro.product.model") == "MPAC SmartPOS"
    assert device.getprop("ro.no.such.property") is None
    properties = device.properties()
    assert properties["ro.product.model"] == "MPAC SmartPOS"
    assert properties["ro.adb.secure"] == "1"
    assert device.is_installed(CREDIT_CARD_PACKAGE)
    assert not device.is_installed("jp.example.not.installed")
    assert device.run(["pm", "path", "jp.example.not.installed"]).exit_code == 1
    assert any(CREDIT_CARD_PACKAGE in line for line in device.logcat_dump("-b", "all"))
    assert len(device.logcat_dump("-b", "all", max_lines=2)) == 2
    assert device.run("false").exit_code == 1


def test_follow_logcat_misses_no_line_written_right_after_it_returns(
    adb_terminal: EmulatedTerminal, open_device: Callable[[str], AndroidDevice]
) -> None:
    device = open_device(serial_of(adb_terminal))
    log = adb_terminal.device.logcat

    for round_number in range(20):
        with device.follow_logcat("-T", "1", "-s", "LINK_TEST") as follower:
            # Written at once, from this thread, without a round trip to the device.
            for line in range(3):
                log.write(Priority.INFO, "LINK_TEST", f"round {round_number} line {line}", pid=4242)
            for line in range(3):
                wanted = f"round {round_number} line {line}"
                assert follower.wait_for(_ends_with(wanted), timeout_s=5), (
                    f"{wanted} was missed: {follower.lines()}"
                )


def _ends_with(wanted: str) -> Callable[[str], bool]:
    return lambda text: text.endswith(wanted)


def test_a_key_path_that_does_not_exist_yet_is_created(
    start_device: StartDevice, tmp_path: Path, devices: list[AndroidDevice]
) -> None:
    server = start_device(keystore=None)
    device = AndroidDevice.open(server.serial, key_path=tmp_path / "keys" / "adbkey", timeouts=FAST)
    devices.append(device)
    assert (tmp_path / "keys" / "adbkey.pub").exists()
    assert device.run("true").ok
