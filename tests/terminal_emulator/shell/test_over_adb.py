"""The shell over real TCP: the adb-shell library (what android_bridge uses) and the ``adb``
binary (skipped when not installed) against a device's endpoint from ``start_adb_endpoint``."""

from __future__ import annotations

import json
import shlex
import shutil
import threading
from collections.abc import Iterator

import pytest
from adb_shell.exceptions import TcpTimeoutException

from terminal_emulator.android import Priority
from terminal_emulator.contract import (
    CREDIT_CARD_PACKAGE,
    CREDIT_CARD_RESULT_RECEIVER,
    CREDIT_CARD_TRANSACTION_ACTIVITY,
    RESULT_LOG_TAG,
    Action,
    Status,
    parse_am_broadcast_output,
    parse_result_log_line,
    result_from_broadcast_output,
)
from tests.helpers import wait_until
from tests.terminal_emulator.adb.conftest import HostKey
from tests.terminal_emulator.adb.test_adb_shell_client import Client
from tests.terminal_emulator.shell.conftest import ECHO_RECEIVER, Terminal

PAY = CREDIT_CARD_TRANSACTION_ACTIVITY.flatten_short()
RECEIVER = CREDIT_CARD_RESULT_RECEIVER.flatten_short()
NASTY = "a 'b' \"c\" ; d \\ é 日本 && $HOME `x` | > * \t end"


def quote(*words: str) -> str:
    return " ".join(shlex.quote(word) for word in words)


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


@pytest.fixture
def client(terminal: Terminal, host_key: HostKey, clients: list[Client]) -> Client:
    made = Client(terminal.port)
    clients.append(made)
    assert made.connect(host_key)
    return made


def test_auth_refuses_an_unknown_key_and_accepts_an_allowed_one(
    terminal: Terminal, host_key: HostKey, stranger_key: HostKey, clients: list[Client]
) -> None:
    stranger = Client(terminal.port)
    clients.append(stranger)
    with pytest.raises(TcpTimeoutException):
        stranger.connect(stranger_key)
    assert terminal.server.pending_keys() == [stranger_key.public]

    allowed = Client(terminal.port)
    clients.append(allowed)
    assert allowed.connect(host_key)
    assert allowed.shell("getprop ro.product.model") == "MPAC SmartPOS\n"
    assert terminal.server.identity.product_model == "MPAC SmartPOS"


def test_am_start_payment_then_the_result_from_logcat(terminal: Terminal, client: Client) -> None:
    command = (
        "am start -n "
        + PAY
        + " -a "
        + Action.PAYMENT.value
        + " "
        + quote(
            "--es",
            "request_id",
            "R-1200",
            "--el",
            "amount",
            "1200",
            "--es",
            "currency",
            "JPY",
            "--es",
            "metadata",
            "table 4",
        )
        + "; echo status=$?"
    )
    out = client.shell(command)
    assert out == (
        f"Starting: Intent {{ act={Action.PAYMENT.value} cmp={PAY} (has extras) }}\nstatus=0\n"
    )
    found: list[str] = []

    def logged() -> bool:
        found[:] = client.shell(f"logcat -d -s {RESULT_LOG_TAG}").splitlines()
        return len(found) >= 2

    wait_until(logged, timeout_s=10, what="the MPAC_RESULT line")
    assert found[0] == "--------- beginning of main"
    result = parse_result_log_line(found[1])
    assert result is not None
    assert (result.status, result.request_id, result.amount, result.metadata) == (
        Status.APPROVED,
        "R-1200",
        1200,
        "table 4",
    )


def test_am_broadcast_prints_the_ordered_result_exactly(client: Client) -> None:
    out = client.shell(f"am broadcast -n {ECHO_RECEIVER} --es k v --el n 5")
    assert out == (
        "Broadcasting: Intent { flg=0x400000 cmp=com.example.echo/.Echo (has extras) }\n"
        'Broadcast completed: result=7, data="{"k": {"type": "string", "value": "v"}, '
        '"n": {"type": "long", "value": 5}}"\n'
    )
    payment = client.shell(
        f"am broadcast -n {RECEIVER} -a {Action.PAYMENT.value} -f 0x10000020 "
        "--es request_id B-77 --el amount 800 --es currency JPY"
    )
    lines = payment.splitlines()
    assert lines[0] == (
        f"Broadcasting: Intent {{ act={Action.PAYMENT.value} flg=0x10400020 cmp={RECEIVER} "
        "(has extras) }"
    )
    assert lines[1].startswith('Broadcast completed: result=-1, data="{"v":1,')
    result = result_from_broadcast_output(payment)
    assert result is not None
    assert result.status is Status.APPROVED
    assert result.amount == 800


def test_metacharacters_and_unicode_arrive_intact(client: Client) -> None:
    out = client.shell(
        "am broadcast -n "
        + ECHO_RECEIVER
        + " "
        + quote("--es", "note", NASTY, "--esa", "list", "x\\,y,z")
    )
    parsed = parse_am_broadcast_output(out)
    assert parsed is not None
    assert parsed.data is not None
    extras = json.loads(parsed.data)
    assert extras["note"] == {"type": "string", "value": NASTY}
    assert extras["list"] == {"type": "string_array", "value": ["x,y", "z"]}


def test_force_stop_mid_operation(
    terminal: Terminal, client: Client, host_key: HostKey, clients: list[Client]
) -> None:
    terminal.loop.loop.call_soon_threadsafe(terminal.gateway.release.clear)
    outputs: list[str] = []
    payer = Client(terminal.port)
    clients.append(payer)
    assert payer.connect(host_key)
    thread = threading.Thread(
        target=lambda: outputs.append(
            payer.shell(
                f"am broadcast -n {RECEIVER} -a {Action.PAYMENT.value} -f 0x10000020 "
                "--es request_id K-1 --el amount 900 --es currency JPY"
            )
        ),
        daemon=True,
    )
    thread.start()
    wait_until(terminal.gateway.entered.is_set, timeout_s=10, what="the charge to start")
    assert client.shell(f"am force-stop {CREDIT_CARD_PACKAGE}; echo $?") == "0\n"
    thread.join(10)
    assert outputs
    assert outputs[0].splitlines()[-1] == "Broadcast completed: result=0"
    assert terminal.device.am.process_of(CREDIT_CARD_PACKAGE) is None
    # the journal tells the truth afterwards
    query = client.shell(
        f"am broadcast -n {RECEIVER} -a {Action.QUERY.value} -f 0x10000020 --es request_id K-1"
    )
    answer = result_from_broadcast_output(query)
    assert answer is not None
    assert answer.request_id == "K-1"
    assert answer.status is Status.IN_PROGRESS


def test_logcat_follow_streams_a_line_logged_later(terminal: Terminal, client: Client) -> None:
    device = terminal.device
    terminal.loop.loop.call_soon_threadsafe(
        lambda: device.logcat.write(Priority.INFO, "Follow", "before", pid=42)
    )
    seen: list[str] = []
    done = threading.Event()

    def follow() -> None:
        for chunk in client.device.streaming_shell(
            "logcat -v tag -s Follow", transport_timeout_s=5, read_timeout_s=10
        ):
            seen.append(chunk)
            if "after" in "".join(seen):
                break
        done.set()

    threading.Thread(target=follow, daemon=True).start()
    wait_until(lambda: "before" in "".join(seen), timeout_s=10, what="the backlog line")
    terminal.loop.loop.call_soon_threadsafe(
        lambda: device.logcat.write(Priority.INFO, "Follow", "after", pid=42)
    )
    assert done.wait(10)
    assert "".join(seen) == ("--------- beginning of main\nI/Follow  : before\nI/Follow  : after\n")


# -- the adb binary ---------------------------------------------------------------------------

ADB = shutil.which("adb")
needs_adb = pytest.mark.skipif(ADB is None, reason="the adb binary is not installed")


@needs_adb
def test_adb_binary_shell_am_broadcast_and_logcat(
    terminal: Terminal, host_key: HostKey, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import os

    from tests.helpers import free_ports
    from tests.terminal_emulator.adb.test_adb_binary import AdbCli

    home = tmp_path_factory.mktemp("adb-home")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANDROID_", "ADB_")) and key != "HOME"
    }
    env.update(HOME=str(home), ADB_VENDOR_KEYS=str(host_key.path))
    adb = AdbCli(free_ports(1)[0], env)
    assert adb("start-server").returncode == 0
    serial = terminal.server.serial
    try:
        assert adb("connect", serial).stdout.decode().strip() == f"connected to {serial}"
        wait_until(lambda: adb.state_of(serial) == "device", timeout_s=10, what="device")
        listing = adb("devices", "-l").stdout.decode()
        assert "product:mpac_smartpos model:MPAC_SmartPOS device:mpac_smartpos" in listing

        sent = adb(
            "-s",
            serial,
            "shell",
            "am broadcast -n " + ECHO_RECEIVER + " " + quote("--es", "note", NASTY),
        )
        assert sent.returncode == 0, sent.stderr
        lines = sent.stdout.decode().splitlines()
        assert (
            lines[0]
            == "Broadcasting: Intent { flg=0x400000 cmp=com.example.echo/.Echo (has extras) }"
        )
        parsed = parse_am_broadcast_output(sent.stdout.decode())
        assert parsed is not None
        assert parsed.result_code == 7
        assert parsed.data is not None
        assert json.loads(parsed.data)["note"]["value"] == NASTY

        missing = adb("-s", serial, "shell", "am", "start", "-n", "jp.mpac.business/.Nope")
        assert missing.returncode == 0
        assert missing.stderr.decode() == (
            "Error type 3\n"
            "Error: Activity class {jp.mpac.business/jp.mpac.business.Nope} does not exist.\n"
        )
        unknown = adb("-s", serial, "shell", "am", "frob")
        assert (unknown.returncode, unknown.stdout) == (255, b"Unknown command: frob\n")

        logcat = adb("-s", serial, "logcat", "-d")
        assert logcat.returncode == 0, logcat.stderr
        text = logcat.stdout.decode()
        assert "--------- beginning of system" in text
        assert "SystemServer: Boot completed: MPAC SmartPOS serial=SHELL-0001" in text
        filtered = adb("-s", serial, "logcat", "-d", "-s", "PackageManager")
        assert all("PackageManager" in line for line in filtered.stdout.decode().splitlines()[1:])
        assert "Installed com.example.echo" in filtered.stdout.decode()
    finally:
        adb("disconnect", serial)
        adb("kill-server")
