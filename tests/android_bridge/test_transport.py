"""The link: AdbShellTransport over real TCP against the emulator's device side (bare
AdbDeviceServers with the fake shell), failures mapped to the bridge's errors."""

from __future__ import annotations

import json
import os
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from adb_shell.auth.keygen import keygen

from android_bridge.errors import (
    BridgeError,
    CommandTimeout,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
)
from android_bridge.keys import load_host_keys
from android_bridge.transport import (
    AdbShellTransport,
    Timeouts,
    parse_banner,
    parse_serial,
    usb_available,
)
from terminal_emulator.adb import AdbDeviceServer, AdbKeyStore, AdbPublicKey
from tests.helpers import free_ports, wait_until
from tests.terminal_emulator.adb.conftest import HostKey, LoopThread, StartDevice
from tests.terminal_emulator.adb.fakes import Tracker, pattern

FAST = Timeouts(transport_s=2.0, read_s=2.0, auth_s=0.5, command_s=5.0)
StartDeviceAt = Callable[..., AdbDeviceServer]


@pytest.fixture
def transports() -> Iterator[list[AdbShellTransport]]:
    made: list[AdbShellTransport] = []
    yield made
    for transport in made:
        transport.close()


@pytest.fixture
def link(transports: list[AdbShellTransport]) -> Callable[..., AdbShellTransport]:
    """``link(server, *keys)``: a transport to ``server`` signing with ``keys``, not yet
    connected; closed after the test."""

    def make(server: AdbDeviceServer, *keys: HostKey) -> AdbShellTransport:
        transport = AdbShellTransport(server.serial, signers=[key.signer for key in keys])
        transports.append(transport)
        return transport

    return make


# -- serials and banners ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "kind", "normalized", "target"),
    [
        ("127.0.0.1:5557", "tcp", "127.0.0.1:5557", ("127.0.0.1", 5557)),
        ("192.168.1.20", "tcp", "192.168.1.20:5555", ("192.168.1.20", 5555)),
        ("pos-1.local", "tcp", "pos-1.local:5555", ("pos-1.local", 5555)),
        ("localhost", "tcp", "localhost:5555", ("localhost", 5555)),
        ("emulator-5556", "tcp", "127.0.0.1:5557", ("127.0.0.1", 5557)),
        ("[::1]:5037", "tcp", "[::1]:5037", ("::1", 5037)),
        ("fe80::1", "tcp", "[fe80::1]:5555", ("fe80::1", 5555)),
        ("usb:R58M123ABC", "usb", "usb:R58M123ABC", "R58M123ABC"),
        ("usb:", "usb", "usb:", None),
        ("R58M123ABC", "usb", "R58M123ABC", "R58M123ABC"),
    ],
)
def test_serials_name_tcp_endpoints_or_usb_devices(
    serial: str, kind: str, normalized: str, target: object
) -> None:
    endpoint = parse_serial(serial)
    assert endpoint.kind == kind
    assert endpoint.serial == normalized
    if kind == "tcp":
        assert (endpoint.host, endpoint.port) == target
    else:
        assert endpoint.usb_serial == target


@pytest.mark.parametrize("serial", ["", "host:", "host:port", "10.0.0.1:70000", "a:b:c"])
def test_what_is_not_a_serial_is_refused(serial: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  (each case words its own reason)
        parse_serial(serial)
    with pytest.raises(BridgeError) as raised:
        AdbShellTransport(serial)
    assert raised.value.hint


def test_banners_are_read_as_adbd_writes_them() -> None:
    banner = parse_banner(
        b"device::ro.product.name=pos;ro.product.model=P 1;ro.product.device=p1;features=shell_v2,cmd\0"
    )
    assert (banner.state, banner.product, banner.model, banner.device) == (
        "device",
        "pos",
        "P 1",
        "p1",
    )
    assert banner.features == {"shell_v2", "cmd"}
    old = parse_banner(b"device::ro.product.name=old;ro.product.model=O;ro.product.device=o;")
    assert (old.product, old.features) == ("old", frozenset())
    assert parse_banner(b"recovery::").state == "recovery"


# -- connecting ------------------------------------------------------------------------------


def test_connects_and_reads_the_banner(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    host_key: HostKey,
    link: Callable[..., AdbShellTransport],
) -> None:
    transport = link(start_device(keystore=allowed_keystore), host_key)
    assert not transport.connected

    banner = transport.connect(FAST)

    assert transport.connected
    assert banner.state == "device"
    assert (banner.product, banner.model, banner.device) == (
        "mpac_smartpos",
        "MPAC_SmartPOS",
        "mpac_smartpos",
    )
    assert "shell_v2" in banner.features
    assert transport.shell("echo hello", timeout_s=5) == "hello\n"
    again = transport.connect(FAST)  # a new connection, a new banner object
    assert again is not banner
    assert transport.shell("echo again", timeout_s=5) == "again\n"


def test_a_device_without_authentication_needs_no_key(
    start_device: StartDevice, link: Callable[..., AdbShellTransport]
) -> None:
    transport = link(start_device(keystore=None))
    transport.connect(FAST)
    assert transport.shell("echo open", timeout_s=5) == "open\n"


def test_an_unknown_key_is_unauthorized_within_auth_s(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    stranger_key: HostKey,
    link: Callable[..., AdbShellTransport],
) -> None:
    offered: list[AdbPublicKey] = []
    server = start_device(keystore=allowed_keystore, on_unknown_key=offered.append)
    transport = link(server, stranger_key)

    started = time.monotonic()
    with pytest.raises(DeviceUnauthorized) as raised:
        transport.connect(FAST)
    elapsed = time.monotonic() - started

    assert FAST.auth_s <= elapsed < FAST.auth_s + 1.0
    assert not transport.connected
    # The key was offered, as adb does (a real device shows its prompt for it) ...
    assert offered == [stranger_key.public]
    # ... and the error says which key and what to do.
    assert stranger_key.public.fingerprint in str(raised.value)
    assert "Allow" in (raised.value.hint or "")
    assert raised.value.serial == server.serial


def test_no_key_at_all_is_unauthorized_at_once(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    link: Callable[..., AdbShellTransport],
) -> None:
    transport = link(start_device(keystore=allowed_keystore))
    started = time.monotonic()
    with pytest.raises(DeviceUnauthorized):
        transport.connect(FAST)
    assert time.monotonic() - started < FAST.auth_s


def test_tapping_allow_while_the_host_waits_lets_it_in(
    start_device: StartDevice,
    device_loop: LoopThread,
    stranger_key: HostKey,
    link: Callable[..., AdbShellTransport],
) -> None:
    server = start_device(keystore=AdbKeyStore([]))
    transport = link(server, stranger_key)
    outcome: list[object] = []
    waiting = threading.Thread(
        target=lambda: outcome.append(transport.connect(Timeouts(auth_s=10.0)))
    )
    waiting.start()
    wait_until(
        lambda: stranger_key.public in server.pending_keys(),
        timeout_s=5,
        interval_s=0.01,
        what="the key offered",
    )

    device_loop.call(server.allow_key(stranger_key.public))  # the tap on "Allow"

    waiting.join(5)
    assert outcome
    assert transport.connected
    assert transport.shell("echo in", timeout_s=5) == "in\n"


def test_vendor_keys_are_tried_after_the_user_key(
    start_device: StartDevice, tmp_path: Path, transports: list[AdbShellTransport]
) -> None:
    keygen(str(tmp_path / "team.adb_key"))
    team_key = AdbPublicKey.parse((tmp_path / "team.adb_key.pub").read_text())
    server = start_device(keystore=AdbKeyStore([team_key]))
    keys = load_host_keys(tmp_path / "home" / "adbkey", environ={"ADB_VENDOR_KEYS": str(tmp_path)})
    transport = AdbShellTransport(server.serial, host_keys=keys)
    transports.append(transport)

    transport.connect(FAST)

    assert transport.shell("echo vendor", timeout_s=5) == "vendor\n"


def test_nothing_listening_is_device_not_found(transports: list[AdbShellTransport]) -> None:
    (port,) = free_ports(1)
    transport = AdbShellTransport(f"127.0.0.1:{port}", signers=[])
    transports.append(transport)
    started = time.monotonic()
    with pytest.raises(DeviceNotFound) as raised:
        transport.connect(FAST)
    assert time.monotonic() - started < 1.0
    assert "refused" in raised.value.message
    assert not transport.connected


def test_an_unresolvable_host_is_device_not_found(transports: list[AdbShellTransport]) -> None:
    transport = AdbShellTransport("no-such-host.invalid:5555", signers=[])
    transports.append(transport)
    with pytest.raises(DeviceNotFound):
        transport.connect(FAST)


class _SilentPort:
    """A TCP port that accepts connections and then says nothing (or hangs up at once)."""

    def __init__(self, *, hang_up: bool) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hang_up = hang_up
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with self.sock:
            while True:
                try:
                    connection, _ = self.sock.accept()
                except OSError:
                    return
                if self.hang_up:
                    connection.close()
                else:
                    self.accepted.append(connection)

    def close(self) -> None:
        self.sock.close()
        for connection in self.accepted:
            connection.close()


@pytest.mark.parametrize("hang_up", [False, True])
def test_a_port_that_does_not_speak_adb_is_offline(
    hang_up: bool, transports: list[AdbShellTransport]
) -> None:
    silent = _SilentPort(hang_up=hang_up)
    try:
        transport = AdbShellTransport(f"127.0.0.1:{silent.port}", signers=[])
        transports.append(transport)
        started = time.monotonic()
        with pytest.raises(DeviceOffline):
            transport.connect(Timeouts(transport_s=1.0, read_s=0.5, auth_s=0.5))
        assert time.monotonic() - started < 1.5
    finally:
        silent.close()


@pytest.mark.skipif(usb_available(), reason="the USB extra is installed here")
def test_usb_without_the_usb_extra_says_what_to_install(
    transports: list[AdbShellTransport],
) -> None:
    transport = AdbShellTransport("usb:R58M123ABC", signers=[])
    transports.append(transport)
    with pytest.raises(BridgeError) as raised:
        transport.connect(FAST)
    assert "pip install 'adb-shell[usb]'" in str(raised.value)


# -- commands --------------------------------------------------------------------------------


def test_output_comes_back_intact(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    host_key: HostKey,
    link: Callable[..., AdbShellTransport],
) -> None:
    transport = link(start_device(keystore=allowed_keystore), host_key)
    transport.connect(FAST)
    words = ["¥1,200 — ご利用ありがとうございます", "emoji 🧾", 'it\'s "quoted"; $x `y`', ""]

    printed = transport.shell("printargs " + shlex.join(words), timeout_s=5)

    assert json.loads(printed) == words
    assert transport.shell("warn out err 3", timeout_s=5) == "out\nerr\n"  # stderr merged
    big = transport.shell("big 3000000", timeout_s=20)  # many WRTEs, each acknowledged
    assert big == pattern(3_000_000).decode()


def test_the_device_gone_mid_command_is_offline_then_it_comes_back(
    start_device_at: StartDeviceAt,
    allowed_keystore: AdbKeyStore,
    host_key: HostKey,
    device_loop: LoopThread,
    tracker: Tracker,
    link: Callable[..., AdbShellTransport],
) -> None:
    server = start_device_at(0, keystore=allowed_keystore)
    port = server.port
    transport = link(server, host_key)
    transport.connect(FAST)
    failures: list[BaseException] = []
    finished = threading.Event()

    def long_command() -> None:
        try:
            transport.shell("hang", timeout_s=30)
        except BaseException as error:
            failures.append(error)
        finished.set()

    threading.Thread(target=long_command).start()
    wait_until(tracker.started.is_set, timeout_s=5, interval_s=0.01, what="the command started")

    stopped_at = time.monotonic()
    device_loop.call(server.stop())  # the device reboots: its connections drop

    assert finished.wait(2)
    assert time.monotonic() - stopped_at < 1.0
    assert isinstance(failures[0], DeviceOffline)
    assert not transport.connected
    with pytest.raises(DeviceOffline):
        transport.shell("echo anyone", timeout_s=5)

    start_device_at(port, keystore=allowed_keystore)  # back, on the same port
    transport.connect(FAST)
    assert transport.shell("echo back", timeout_s=5) == "back\n"


def test_a_command_over_its_timeout_is_stopped_and_the_link_stays(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    host_key: HostKey,
    tracker: Tracker,
    link: Callable[..., AdbShellTransport],
) -> None:
    transport = link(start_device(keystore=allowed_keystore), host_key)
    transport.connect(FAST)

    started = time.monotonic()
    with pytest.raises(CommandTimeout) as raised:
        transport.shell("hang", timeout_s=0.3)

    assert 0.3 <= time.monotonic() - started < 1.0
    assert "hang" in raised.value.message
    wait_until(
        tracker.cancelled.is_set, timeout_s=5, interval_s=0.01, what="the command cancelled"
    )  # the device stopped the command
    assert transport.connected
    assert transport.shell("echo still here", timeout_s=5) == "still here\n"


def test_short_commands_are_not_held_up_by_a_long_silent_one(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    host_key: HostKey,
    link: Callable[..., AdbShellTransport],
) -> None:
    transport = link(start_device(keystore=allowed_keystore), host_key)
    transport.connect(FAST)
    long_output: list[str] = []
    long_command = threading.Thread(
        target=lambda: long_output.append(transport.shell("sleep 1; echo done", timeout_s=10))
    )
    long_command.start()

    for number in range(10):
        started = time.monotonic()
        assert transport.shell(f"echo {number}", timeout_s=5) == f"{number}\n"
        assert time.monotonic() - started < 0.3
    assert long_command.is_alive()  # they all ran while it was waiting

    long_command.join(5)
    assert long_output == ["done\n"]


def test_many_commands_and_streams_at_once_keep_their_output_apart(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    host_key: HostKey,
    link: Callable[..., AdbShellTransport],
) -> None:
    transport = link(start_device(keystore=allowed_keystore), host_key)
    transport.connect(FAST)
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def command(name: str, line: str) -> None:
        try:
            results[name] = transport.shell(line, timeout_s=20)
        except BaseException as error:
            errors.append(error)

    def streamed(name: str, line: str) -> None:
        try:
            results[name] = "".join(transport.stream(line, read_timeout_s=5))
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=command, args=(f"big{n}", f"big {200_000 + n}")) for n in range(6)
    ]
    threads += [
        threading.Thread(target=streamed, args=(f"stream{n}", f"stream 300 s{n}")) for n in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    for n in range(6):
        assert results[f"big{n}"] == pattern(200_000 + n).decode()
    for n in range(3):
        assert results[f"stream{n}"] == "".join(f"s{n} {i}\n" for i in range(300))


# -- streams ---------------------------------------------------------------------------------


def test_a_stream_is_running_when_it_returns_and_silences_are_empty_chunks(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    host_key: HostKey,
    tracker: Tracker,
    link: Callable[..., AdbShellTransport],
) -> None:
    transport = link(start_device(keystore=allowed_keystore), host_key)
    transport.connect(FAST)

    stream = transport.stream("hang", read_timeout_s=0.1)
    wait_until(tracker.started.is_set, timeout_s=5, interval_s=0.01, what="the command started")

    assert next(stream) == ""  # nothing yet: the stream stays open
    stream.close()
    assert list(stream) == []
    wait_until(tracker.cancelled.is_set, timeout_s=5, interval_s=0.01, what="the command cancelled")
    assert transport.shell("echo after", timeout_s=5) == "after\n"


def test_closing_a_stream_from_another_thread_ends_its_reader(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    host_key: HostKey,
    tracker: Tracker,
    link: Callable[..., AdbShellTransport],
) -> None:
    transport = link(start_device(keystore=allowed_keystore), host_key)
    transport.connect(FAST)
    stream = transport.stream("hang", read_timeout_s=30)
    ended = threading.Event()

    def read_all() -> None:
        for _chunk in stream:
            pass
        ended.set()

    threading.Thread(target=read_all).start()
    wait_until(tracker.started.is_set, timeout_s=5, interval_s=0.01, what="the command started")
    stream.close()

    assert ended.wait(2)
    wait_until(tracker.cancelled.is_set, timeout_s=5, interval_s=0.01, what="the command cancelled")


def test_a_stream_of_a_device_that_goes_away_raises_offline(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    host_key: HostKey,
    device_loop: LoopThread,
    link: Callable[..., AdbShellTransport],
) -> None:
    server = start_device(keystore=allowed_keystore)
    transport = link(server, host_key)
    transport.connect(FAST)
    stream = transport.stream("hang", read_timeout_s=30)

    device_loop.call(server.stop())

    with pytest.raises(DeviceOffline):
        list(stream)


def test_calls_before_connecting_or_after_closing_are_offline(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    host_key: HostKey,
    link: Callable[..., AdbShellTransport],
) -> None:
    transport = link(start_device(keystore=allowed_keystore), host_key)
    with pytest.raises(DeviceOffline):
        transport.shell("echo", timeout_s=1)
    transport.connect(FAST)
    transport.close()
    assert not transport.connected
    with pytest.raises(DeviceOffline):
        transport.stream("echo", read_timeout_s=1)


def test_the_default_key_is_created_where_adb_keeps_it(
    start_device: StartDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANDROID_USER_HOME", str(tmp_path / "android"))
    monkeypatch.delenv("ADB_VENDOR_KEYS", raising=False)
    transport = AdbShellTransport(start_device(keystore=None).serial)
    try:
        transport.connect(FAST)
    finally:
        transport.close()
    assert (tmp_path / "android" / "adbkey").exists()
    assert oct(os.stat(tmp_path / "android" / "adbkey").st_mode & 0o777) == "0o600"


def test_small_packets_and_the_command_line_limit_of_an_old_device(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    host_key: HostKey,
    link: Callable[..., AdbShellTransport],
) -> None:
    transport = link(start_device(keystore=allowed_keystore, max_payload=4096), host_key)
    transport.connect(FAST)  # 4 KiB packets, as Android 6 and older

    assert transport.shell("big 50000", timeout_s=10) == pattern(50_000).decode()
    words = ["お会計 ¥1,200 🧾"] * 60  # multi-byte characters, about 1.8 KB
    assert json.loads(transport.shell("printargs " + shlex.join(words), timeout_s=10)) == words

    with pytest.raises(BridgeError) as raised:
        transport.shell("printargs " + "x" * 5000, timeout_s=5)
    assert "4096" in raised.value.message
    assert transport.connected  # refused before sending: the device never saw it
    assert transport.shell("echo fine", timeout_s=5) == "fine\n"
