"""The emulated device driven by the adb-shell library (what android_bridge uses), over TCP."""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from adb_shell.adb_device import AdbDeviceTcp
from adb_shell.exceptions import DeviceAuthError, TcpTimeoutException

from terminal_emulator.adb import AdbDeviceServer, AdbKeyStore, DeviceIdentity
from terminal_emulator.adb.constants import A_VERSION_MIN, MAX_PAYLOAD_V1
from terminal_emulator.adb.session import SessionState
from tests.helpers import wait_until
from tests.terminal_emulator.adb.conftest import HostKey, StartDevice
from tests.terminal_emulator.adb.fakes import pattern

# Every adb-shell call gets explicit timeouts: its defaults wait 10 s or forever.
TRANSPORT_TIMEOUT_S = 5.0
AUTH_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 10.0


class Client:
    """AdbDeviceTcp with the test timeouts always passed."""

    def __init__(self, port: int) -> None:
        self.device = AdbDeviceTcp(
            "127.0.0.1", port, default_transport_timeout_s=TRANSPORT_TIMEOUT_S
        )

    def connect(self, *keys: HostKey) -> bool:
        return bool(
            self.device.connect(
                rsa_keys=[key.signer for key in keys] or None,
                transport_timeout_s=TRANSPORT_TIMEOUT_S,
                auth_timeout_s=AUTH_TIMEOUT_S,
                read_timeout_s=READ_TIMEOUT_S,
            )
        )

    def shell(self, command: str, *, decode: bool = True) -> Any:
        """The output: str, or bytes with ``decode=False``."""
        return self.device.shell(
            command,
            transport_timeout_s=TRANSPORT_TIMEOUT_S,
            read_timeout_s=READ_TIMEOUT_S,
            timeout_s=READ_TIMEOUT_S,
            decode=decode,
        )

    def close(self) -> None:
        self.device.close()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


class Connect(Protocol):
    def __call__(self, server: AdbDeviceServer, *keys: HostKey) -> Client: ...


@pytest.fixture
def connect(clients: list[Client], host_key: HostKey) -> Connect:
    """A connected client (with ``host_key`` unless keys are given), closed after the test."""

    def make(server: AdbDeviceServer, *keys: HostKey) -> Client:
        client = Client(server.port)
        clients.append(client)
        assert client.connect(*(keys or (host_key,)))
        return client

    return make


def test_an_allowlisted_key_gets_a_shell(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, connect: Connect
) -> None:
    server = start_device(keystore=allowed_keystore)
    client = connect(server)

    assert client.shell("echo hello") == "hello\n"


def test_an_unknown_key_is_refused_and_waits_for_approval(
    start_device: StartDevice,
    allowed_keystore: AdbKeyStore,
    clients: list[Client],
    stranger_key: HostKey,
) -> None:
    server = start_device(keystore=allowed_keystore)
    client = Client(server.port)
    clients.append(client)

    # The signature fails, the library offers its public key, and the device never answers
    # (a phone showing its prompt): the library gives up after auth_timeout_s.
    with pytest.raises(TcpTimeoutException, match="timed out"):
        client.connect(stranger_key)

    assert server.pending_keys() == [stranger_key.public]
    assert [session.state for session in server.sessions] == [SessionState.UNAUTHORIZED]
    assert stranger_key.public not in allowed_keystore.keys


def test_a_client_without_keys_gets_a_clear_error(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, clients: list[Client]
) -> None:
    server = start_device(keystore=allowed_keystore)
    client = Client(server.port)
    clients.append(client)

    with pytest.raises(DeviceAuthError, match="Device authentication required"):
        client.connect()


def test_allow_new_keys_accepts_and_remembers_the_offered_key(
    start_device: StartDevice, tmp_path: Path, stranger_key: HostKey, connect: Connect
) -> None:
    adb_keys = tmp_path / "adb_keys"
    server = start_device(keystore=AdbKeyStore.load(adb_keys, allow_new_keys=True))

    client = connect(server, stranger_key)
    assert client.shell("echo in") == "in\n"

    # "Always allow from this computer": the key is now in adb_keys, so a device that does not
    # auto-accept lets the host in by signature alone.
    assert AdbKeyStore.load(adb_keys).keys == (stranger_key.public,)
    strict = start_device(keystore=AdbKeyStore.load(adb_keys))
    assert connect(strict, stranger_key).shell("echo again") == "again\n"


def test_output_longer_than_maxdata_arrives_intact(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, connect: Connect
) -> None:
    # maxdata 4 KiB: 200 KB of output is 49+ WRTEs, each waiting for the library's OKAY.
    server = start_device(keystore=allowed_keystore, max_payload=MAX_PAYLOAD_V1)
    client = connect(server)

    assert client.shell("big 200000", decode=False) == pattern(200000)
    assert client.shell("stream 3000", decode=False) == b"".join(
        b"line %d\n" % i for i in range(3000)
    )


def test_output_of_several_megabytes_at_full_maxdata(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, connect: Connect
) -> None:
    server = start_device(keystore=allowed_keystore)
    client = connect(server)

    assert client.shell("big 3000000", decode=False) == pattern(3_000_000)


def test_concurrent_streams_on_one_connection(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, connect: Connect
) -> None:
    server = start_device(keystore=allowed_keystore, max_payload=MAX_PAYLOAD_V1)
    client = connect(server)
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            results[number] = client.shell(f"stream 500 t{number}", decode=False)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    for number in range(5):
        assert results[number] == b"".join(b"t%d %d\n" % (number, i) for i in range(500))


def test_a_slow_command_does_not_hold_up_another_client(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, connect: Connect
) -> None:
    server = start_device(keystore=allowed_keystore)
    slow = threading.Thread(target=lambda: connect(server).shell("sleep 2; echo late"))
    slow.start()
    quick = connect(server)
    try:
        wait_until(
            lambda: any(s.streams for s in server.sessions), timeout_s=5, what="sleep stream"
        )
        started = time.monotonic()
        assert quick.shell("echo now") == "now\n"
        assert time.monotonic() - started < 1.5
    finally:
        slow.join(10)


def test_metacharacters_and_unicode_survive_quoting(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, connect: Connect
) -> None:
    server = start_device(keystore=allowed_keystore)
    client = connect(server)
    value = 'it\'s "quoted" $HOME `date` $(id) ; | & && || > < >> \\ \\n * ? [a] {b} ~ # 日本語 🙂\ttab\nnewline'

    output = client.shell(f"printargs {shlex.quote(value)} {shlex.quote('')} plain")

    assert json.loads(output) == [value, "", "plain"]


def test_unknown_command_prints_mksh_message(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, connect: Connect
) -> None:
    server = start_device(keystore=allowed_keystore)
    client = connect(server)

    assert (
        client.shell("frobnicate --now")
        == "/system/bin/sh: frobnicate: inaccessible or not found\n"
    )
    # shell: (v1) merges stderr into the output, as adbd does.
    assert client.shell("warn out err 3") == "out\nerr\n"
    # v1 has no exit status; `; echo $?` is how adb-shell users get one.
    assert client.shell("warn out err 3; echo $?") == "out\nerr\n3\n"


def test_library_checksums_with_version_negotiation(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, connect: Connect
) -> None:
    # adb-shell announces version 0x01000000 and verifies every payload checksum it receives
    # (InvalidChecksumError otherwise): the device must drop to that version and checksum.
    server = start_device(keystore=allowed_keystore, max_payload=MAX_PAYLOAD_V1)
    client = connect(server)

    (session,) = server.sessions
    assert session.version == A_VERSION_MIN
    assert session.max_payload == MAX_PAYLOAD_V1  # min(device 4 KiB, library 1 MiB)
    assert client.device._maxdata == MAX_PAYLOAD_V1  # what the device's CNXN told the library
    assert client.shell("big 50000", decode=False) == pattern(50000)


def test_several_terminals_in_one_process(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, connect: Connect
) -> None:
    first = start_device(keystore=allowed_keystore, identity=DeviceIdentity(product_device="pos_a"))
    second = start_device(
        keystore=allowed_keystore, identity=DeviceIdentity(product_device="pos_b")
    )

    assert first.port != second.port
    assert connect(first).shell("echo a") == "a\n"
    assert connect(second).shell("echo b") == "b\n"
