"""``mpac adb`` as a real subprocess against an enrolled emulated terminal's ADB endpoint (real
TCP, real platform): the card is presented in process when the command says it waits; output
(human and ``--json``) and exit statuses are checked as a script would read them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from android_bridge import commands
from android_bridge.commands import (
    EXIT_BRIDGE_ERROR,
    EXIT_CANCELLED,
    EXIT_DECLINED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNKNOWN,
    EXIT_USAGE,
)
from terminal_emulator.contract import Status, TransactionResult
from terminal_emulator.hardware import SimulatedCardReader
from terminal_emulator.terminal import EmulatedTerminal
from tests.android_bridge.conftest import StartTerminal, serial_of
from tests.helpers import wait_until
from tests.terminal_emulator.adb.conftest import HostKey

APPROVED_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
WAITING = "waiting for the customer's card on"
COMMAND_TIMEOUT_S = 60


class Mpac:
    """Runs ``mpac adb …`` with its own HOME / ANDROID_USER_HOME (holding ``adbkey``), so the
    developer's keys and remembered devices are never read or written."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {
            name: value
            for name, value in os.environ.items()
            if name not in ("ANDROID_SERIAL", "ADB_VENDOR_KEYS", "ANDROID_SDK_HOME")
        }
        self.env.update(HOME=str(home), ANDROID_USER_HOME=str(home / ".android"))

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "backend.cli", "adb", *args]

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            timeout=COMMAND_TIMEOUT_S,
        )

    def start(self, *args: str) -> Running:
        return Running(self, args)


class Running:
    """A command left running (output to files: a full pipe would block it)."""

    def __init__(self, mpac: Mpac, args: tuple[str, ...]) -> None:
        name = args[0]
        self.stdout_path = mpac.home / f"{name}.stdout"
        self.stderr_path = mpac.home / f"{name}.stderr"
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                mpac.argv(*args), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=mpac.env
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_for_stderr(self, text: str) -> None:
        def said() -> bool:
            if self.process.poll() is not None and text not in self.stderr:
                pytest.fail(f"exited {self.process.returncode} first\n{self.stdout}{self.stderr}")
            return text in self.stderr

        wait_until(said, timeout_s=30, what=repr(text))

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"did not exit\n{self.stdout}{self.stderr}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def mpac(tmp_path: Path, host_key: HostKey) -> Mpac:
    home = tmp_path / "home"
    (home / ".android").mkdir(parents=True)
    shutil.copy(host_key.path, home / ".android" / "adbkey")
    shutil.copy(host_key.path.with_name("adbkey.pub"), home / ".android" / "adbkey.pub")
    return Mpac(home)


def reader_of(terminal: EmulatedTerminal) -> SimulatedCardReader:
    reader = terminal.card_reader
    assert isinstance(reader, SimulatedCardReader)
    return reader


def pay_with_card(
    mpac: Mpac, terminal: EmulatedTerminal, pan: str, *options: str
) -> tuple[int, str, str]:
    """``mpac adb pay …``; the card is tapped once the command says it waits and the Credit
    Card App asks for it."""
    running = mpac.start("pay", "--serial", serial_of(terminal), *options)
    try:
        running.wait_for_stderr(WAITING)
        reader = reader_of(terminal)
        assert reader.wait_for_prompt_blocking("card", timeout_s=30) is not None
        reader.present_card("tap", pan)
        status = running.wait()
    finally:
        running.kill()
    return status, running.stdout, running.stderr


def json_of(output: str) -> dict[str, Any]:
    document = json.loads(output)
    assert isinstance(document, dict)
    return document


def field(block: str, label: str) -> str:
    """The value of ``  label  value`` in a result block."""
    for line in block.splitlines():
        words = line.split()
        if line.startswith("  ") and words and words[0] == label:
            return words[1]
    raise AssertionError(f"no {label!r} in\n{block}")


def test_pay_refund_query_and_the_results_in_logcat(
    mpac: Mpac, adb_terminal: EmulatedTerminal
) -> None:
    serial = serial_of(adb_terminal)
    status, out, err = pay_with_card(
        mpac, adb_terminal, APPROVED_CARD, "--amount", "1200", "--currency", "JPY", "--note", "席 4"
    )
    assert status == EXIT_OK, out + err
    headline = out.splitlines()[0]
    assert headline.startswith("APPROVED")
    assert "¥1,200" in headline
    assert "visa **** **** **** 4242 (contactless)" in headline
    assert " auth " in headline
    request_id = field(out, "request")
    payment_id = field(out, "payment")
    assert f"payment {request_id} on {serial}" in err  # announced before anything was sent
    assert f"{WAITING} {serial}" in err
    assert "(captured)" in out

    refund = mpac.run("refund", "-s", serial, "--payment-id", payment_id, "--amount", "500")
    assert refund.returncode == EXIT_OK, refund.stdout + refund.stderr
    assert refund.stdout.startswith("APPROVED  refund  ¥500")
    assert field(refund.stdout, "payment") == payment_id
    assert field(refund.stdout, "refund")

    # The serial from ANDROID_SERIAL, as adb takes it.
    query = mpac.run("query", "--request-id", request_id, env={"ANDROID_SERIAL": serial})
    assert query.returncode == EXIT_OK, query.stdout + query.stderr
    assert query.stdout.startswith("APPROVED")
    assert field(query.stdout, "payment") == payment_id

    unknown = mpac.run("query", "-s", serial, "--request-id", "never-sent-1")
    assert unknown.returncode == EXIT_NOT_FOUND
    assert unknown.stdout.startswith("NOT FOUND")
    assert "UNKNOWN_REQUEST" in unknown.stdout

    dump = mpac.run("--json", "logcat", "-s", serial, "-d", "--results")
    assert dump.returncode == EXIT_OK, dump.stderr
    results = [TransactionResult.from_json(document) for document in json.loads(dump.stdout)]
    assert [(r.request_id, r.status) for r in results if r.payment_id == payment_id][:1] == [
        (request_id, Status.APPROVED)
    ]
    human = mpac.run("logcat", "-s", serial, "-d", "--results")
    assert human.returncode == EXIT_OK
    assert f"  request    {request_id}" in human.stdout
    assert "NOT FOUND" in human.stdout


def test_pay_json_declined_is_a_result_with_its_own_exit_status(
    mpac: Mpac, adb_terminal: EmulatedTerminal
) -> None:
    status, out, err = pay_with_card(
        mpac,
        adb_terminal,
        DECLINED_CARD,
        "--json",
        "--amount",
        "800",
        "--request-id",
        "cli-json-1",
        "--metadata",
        '{"order": "A-1"}',
    )
    assert status == EXIT_DECLINED, out + err
    document = json_of(out)  # one document, nothing else on stdout
    result = TransactionResult.from_json(document)
    assert result.status is Status.DECLINED
    assert document["request_id"] == "cli-json-1"
    assert document["error_code"] == "DECLINED_GENERIC"
    assert document["metadata"] == '{"order": "A-1"}'
    assert document["amount"] == 800


def test_an_unknown_outcome_is_never_reported_as_failed(
    mpac: Mpac, start_adb_terminal: StartTerminal
) -> None:
    """The bridge stops waiting before the customer taps: exit 9 with the request id; the
    query says in progress (9 again) until the customer cancels (4)."""
    # A QUERY of a running payment waits this long for it to finish before answering.
    terminal = start_adb_terminal(query_resolve_s=0.2)
    serial = serial_of(terminal)
    waited = mpac.run(
        "pay", "-s", serial, "--amount", "300", "--request-id", "cli-slow-1", "--timeout", "1"
    )
    assert waited.returncode == EXIT_UNKNOWN, waited.stdout + waited.stderr
    assert waited.stdout.startswith("UNKNOWN")
    assert "do not treat it as failed" in waited.stdout
    assert f"mpac adb query --serial {serial} --request-id cli-slow-1" in waited.stdout

    pending = mpac.run("--json", "query", "-s", serial, "--request-id", "cli-slow-1")
    assert pending.returncode == EXIT_UNKNOWN
    assert json_of(pending.stdout)["status"] == "in_progress"

    reader_of(terminal).cancel()  # the customer presses Cancel on the card screen

    def cancelled() -> bool:
        return mpac.run("query", "-s", serial, "--request-id", "cli-slow-1").returncode == (
            EXIT_CANCELLED
        )

    wait_until(cancelled, timeout_s=20, interval_s=0.2, what="the cancelled outcome")

    # Ctrl-C while the customer has not tapped yet: interrupted, and unknown (not failed).
    interrupted = mpac.start("pay", "-s", serial, "--amount", "400", "--request-id", "cli-int-1")
    try:
        interrupted.wait_for_stderr(WAITING)
        interrupted.process.send_signal(signal.SIGINT)
        assert interrupted.wait() == EXIT_INTERRUPTED
        assert "Traceback" not in interrupted.stderr
        assert "unknown, not failed" in interrupted.stderr
        assert "--request-id cli-int-1" in interrupted.stderr
    finally:
        interrupted.kill()


def test_devices_connect_disconnect_getprop_and_shell(
    mpac: Mpac, adb_terminal: EmulatedTerminal
) -> None:
    serial = serial_of(adb_terminal)
    connected = mpac.run("connect", serial)
    assert (connected.returncode, connected.stdout) == (EXIT_OK, f"connected to {serial}\n")

    listed = mpac.run("devices", "-l")
    assert listed.returncode == EXIT_OK
    assert listed.stdout.startswith("List of devices attached\n")
    line = next(line for line in listed.stdout.splitlines() if line.startswith(serial + " "))
    assert line.split()[1] == "device"
    assert "product:mpac_smartpos" in line
    as_json = json.loads(mpac.run("devices", "--json").stdout)
    assert {"serial": serial, "state": "device"}.items() <= next(
        entry for entry in as_json if entry["serial"] == serial
    ).items()

    model = mpac.run("getprop", "-s", serial, "ro.product.model")
    assert model.returncode == EXIT_OK
    assert model.stdout == adb_terminal.device.properties.get("ro.product.model") + "\n"
    shell = mpac.run("shell", "-s", serial, "echo", "'two  words'", "&&", "false")
    assert (shell.returncode, shell.stdout) == (1, "two  words\n")

    forgotten = mpac.run("disconnect", serial)
    assert (forgotten.returncode, forgotten.stdout) == (EXIT_OK, f"disconnected {serial}\n")
    assert serial not in (mpac.home / ".android" / "mpac-bridge-devices.json").read_text()


def test_following_logcat_ends_cleanly_on_ctrl_c(
    mpac: Mpac, adb_terminal: EmulatedTerminal
) -> None:
    serial = serial_of(adb_terminal)
    follower = mpac.start("logcat", "-s", serial, "--results")
    try:
        # A QUERY answer is logged as a result too; the follower must show it as it comes.
        query = mpac.run("query", "-s", serial, "--request-id", "cli-follow-1")
        assert query.returncode == EXIT_NOT_FOUND
        wait_until(
            lambda: "cli-follow-1" in follower.stdout, timeout_s=20, what="the followed line"
        )
        follower.process.send_signal(signal.SIGINT)
        assert follower.wait() == EXIT_OK
        assert "Traceback" not in follower.stderr
        assert follower.stdout.startswith("NOT FOUND")
    finally:
        follower.kill()


def test_a_key_the_device_does_not_allow(
    mpac: Mpac, adb_terminal: EmulatedTerminal, stranger_key: HostKey
) -> None:
    serial = serial_of(adb_terminal)
    options = ("--adb-key", str(stranger_key.path), "--auth-timeout", "0.5", "-s", serial)
    human = mpac.run("getprop", *options)
    assert human.returncode == EXIT_BRIDGE_ERROR
    assert human.stdout == ""
    assert "Allow" in human.stderr  # what to do: tap Allow, or add the key to adb_keys

    paid = mpac.run("pay", "--json", *options, "--amount", "100", "--request-id", "cli-unauth")
    assert paid.returncode == EXIT_BRIDGE_ERROR
    document = json_of(paid.stdout)
    assert document["error"] == "device_unauthorized"
    assert document["request_id"] == "cli-unauth"
    assert document["hint"]


def test_nothing_listening_and_invalid_requests(mpac: Mpac) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    serial = f"127.0.0.1:{port}"
    human = mpac.run("pay", "-s", serial, "--amount", "1200", "--request-id", "cli-nobody")
    assert human.returncode == EXIT_BRIDGE_ERROR
    assert human.stdout == ""
    assert f"{serial}: nothing listens" in human.stderr
    assert "cli-nobody" in human.stderr

    as_json = mpac.run("--json", "getprop", "-s", serial)
    assert as_json.returncode == EXIT_BRIDGE_ERROR
    assert json_of(as_json.stdout)["error"] == "device_not_found"

    invalid = mpac.run("--json", "pay", "-s", serial, "--amount", "0")
    assert invalid.returncode == EXIT_USAGE  # refused before connecting
    assert json_of(invalid.stdout)["error"] == "invalid_request"


def test_the_documented_exit_statuses_are_the_commands() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "android-bridge.md").read_text()
    table = doc.split("### Exit status", 1)[1].split("\n\n", 2)[1]
    documented = {int(row.split("|")[1]) for row in table.splitlines()[2:]}
    constants = {
        value
        for name, value in vars(commands).items()
        if name.startswith("EXIT_") and isinstance(value, int)
    }
    assert documented == constants


@pytest.mark.parametrize(
    ("given", "serial"),
    [
        ("192.168.1.20", "192.168.1.20:5555"),
        ("192.168.1.20:5557", "192.168.1.20:5557"),
        ("pos-7", "pos-7:5555"),
        ("fe80::1", "[fe80::1]:5555"),
        ("[fe80::1]:6000", "[fe80::1]:6000"),
    ],
)
def test_connect_endpoints(given: str, serial: str) -> None:
    assert commands.normalize_endpoint(given) == serial
