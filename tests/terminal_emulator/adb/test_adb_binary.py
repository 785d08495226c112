"""The emulated device driven by the real ``adb`` binary, as a developer would drive it.

Each run starts a private adb server (``adb -P <free port>``) with its own HOME and
``ADB_VENDOR_KEYS``, so it neither touches nor sees the user's adb server and keys, and kills
it at the end.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from terminal_emulator.adb import AdbDeviceServer, AdbKeyStore
from tests.helpers import free_ports, wait_until
from tests.terminal_emulator.adb.conftest import HostKey, LoopThread, StartDevice
from tests.terminal_emulator.adb.fakes import pattern

ADB = shutil.which("adb")
pytestmark = pytest.mark.skipif(
    ADB is None, reason="the adb binary is not installed (Debian: apt-get install -y adb)"
)
COMMAND_TIMEOUT_S = 30


@dataclass
class AdbCli:
    """``adb -P <port> ...`` with the isolated environment."""

    server_port: int
    env: dict[str, str]

    def __call__(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        assert ADB is not None
        # stdin is a pipe (never the test's terminal): adb then uses raw mode, as in scripts.
        return subprocess.run(
            [ADB, "-P", str(self.server_port), *args],
            input=stdin,
            capture_output=True,
            env=self.env,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )

    def state_of(self, serial: str) -> str | None:
        for line in self("devices").stdout.decode().splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == serial:
                return parts[1]
        return None


@pytest.fixture(scope="module")
def adb(tmp_path_factory: pytest.TempPathFactory, host_key: HostKey) -> Iterator[AdbCli]:
    home = tmp_path_factory.mktemp("adb-home")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANDROID_", "ADB_")) and key != "HOME"
    }
    env.update(HOME=str(home), ADB_VENDOR_KEYS=str(host_key.path), TERM="xterm-256color")
    cli = AdbCli(free_ports(1)[0], env)
    started = cli("start-server")
    assert started.returncode == 0, started.stderr
    try:
        yield cli
    finally:
        cli("kill-server")


@pytest.fixture
def connected(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, adb: AdbCli
) -> Iterator[str]:
    """The serial of a device the adb server is connected to (with the vendor key)."""
    server = start_device(keystore=allowed_keystore)
    result = adb("connect", server.serial)
    assert result.stdout.decode().strip() == f"connected to {server.serial}", result
    wait_until(lambda: adb.state_of(server.serial) == "device", timeout_s=10, what="device state")
    yield server.serial
    adb("disconnect", server.serial)


def test_adb_connect_lists_the_device_and_runs_commands(adb: AdbCli, connected: str) -> None:
    listing = adb("devices", "-l").stdout.decode()
    (line,) = [line for line in listing.splitlines() if line.startswith(connected)]
    assert line.split()[1] == "device"
    assert "product:mpac_smartpos model:MPAC_SmartPOS device:mpac_smartpos" in line

    result = adb("-s", connected, "shell", "echo", "hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hi\n", b"")


def test_exit_codes_and_stderr_come_through_shell_v2(adb: AdbCli, connected: str) -> None:
    assert adb("-s", connected, "shell", "false").returncode == 1  # `adb shell false; echo $?`
    assert adb("-s", connected, "shell", "exit 42").returncode == 42

    result = adb("-s", connected, "shell", "warn", "to-out", "to-err", "3")
    assert (result.returncode, result.stdout, result.stderr) == (3, b"to-out\n", b"to-err\n")

    result = adb("-s", connected, "shell", "frobnicate")
    assert result.returncode == 127
    assert result.stderr == b"/system/bin/sh: frobnicate: inaccessible or not found\n"

    # -x: the old protocol (shell:), which has no exit status.
    legacy = adb("-s", connected, "shell", "-x", "false")
    assert legacy.returncode == 0


def test_adb_logcat_runs_through_the_shell_builtins(adb: AdbCli, connected: str) -> None:
    # adb sends `export ANDROID_LOG_TAGS="''"; exec logcat -d`.
    result = adb("-s", connected, "logcat", "-d")
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == b"--------- beginning of main\nlogcat -d\n"


def test_quoted_arguments_survive_adb(adb: AdbCli, connected: str) -> None:
    value = 'it\'s "x" $HOME ; | & > 日本語 🙂 \\ *'
    # adb joins its arguments with spaces unquoted, so quoting is the caller's job, as with
    # a real device.
    result = adb("-s", connected, "shell", f"printargs {shlex.quote(value)} ''")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [value, ""]


def test_stdin_and_interactive_shells(adb: AdbCli, connected: str) -> None:
    piped = adb("-s", connected, "shell", "cat", stdin="piped ü\n".encode())
    assert (piped.returncode, piped.stdout) == (0, "piped ü\n".encode())

    # `adb shell < script`: no pty, lines run silently, `exit N` is adb's exit code.
    script = adb("-s", connected, "shell", stdin=b"echo one\nfalse\nexit 3\n")
    assert (script.returncode, script.stdout) == (3, b"one\n")

    # -tt forces a pty: prompt, echo, CRLF.
    terminal = adb("-s", connected, "shell", "-tt", stdin=b"echo two\rexit 4\r")
    assert terminal.returncode == 4
    assert terminal.stdout.decode() == (
        "mpac_smartpos:/ $ echo two\r\ntwo\r\nmpac_smartpos:/ $ exit 4\r\n"
    )


def test_large_output(adb: AdbCli, connected: str) -> None:
    out = adb("-s", connected, "exec-out", "big 3000000")
    assert out.stdout == pattern(3_000_000)
    shell = adb("-s", connected, "shell", "big 1000000")
    assert (shell.returncode, shell.stdout) == (0, pattern(1_000_000))


def test_unsupported_services_fail_cleanly(adb: AdbCli, connected: str, tmp_path: Path) -> None:
    pulled = adb("-s", connected, "pull", "/sdcard/x", str(tmp_path / "x"))
    assert pulled.returncode != 0
    assert adb("-s", connected, "shell", "echo", "alive").stdout == b"alive\n"


def test_an_unknown_key_is_unauthorized_until_allowed(
    adb: AdbCli,
    start_device: StartDevice,
    stranger_key: HostKey,
    device_loop: LoopThread,
) -> None:
    # The device only knows a key the adb server does not have.
    server: AdbDeviceServer = start_device(keystore=AdbKeyStore([stranger_key.public]))
    try:
        adb("connect", server.serial)
        wait_until(
            lambda: adb.state_of(server.serial) == "unauthorized", timeout_s=10, what="unauthorized"
        )
        failed = adb("-s", server.serial, "shell", "echo", "hi")
        assert failed.returncode != 0
        assert b"unauthorized" in failed.stderr

        (offered,) = server.pending_keys()
        device_loop.call(server.allow_key(offered))  # the user taps "Allow"

        wait_until(lambda: adb.state_of(server.serial) == "device", timeout_s=10, what="device")
        assert adb("-s", server.serial, "shell", "echo", "hi").stdout == b"hi\n"
    finally:
        adb("disconnect", server.serial)
