"""``mpac`` as a real subprocess: embedded servers, banner, Ctrl-C, failures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from backend.cli import build_parser
from backend.core.settings import SERVICE_NAMES
from tests.helpers import free_ports, server_tmp_dir, wait_until

STOP_TIMEOUT_S = 30


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPAC_")}
    # Cheap password hashing: the demo seed hashes one password per demo user.
    env["MPAC_PASSWORD_HASH_TIME_COST"] = "1"
    env["MPAC_PASSWORD_HASH_MEMORY_KIB"] = "8192"
    return env


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _postgres_pid(state_dir: Path) -> int:
    return int((state_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])


def _redis_pid(state_dir: Path) -> int:
    registry = json.loads((state_dir / "redis" / "redis.db.settings").read_text())
    return int(Path(registry["pidfile"]).read_text().strip())


class Mpac:
    """One ``mpac`` process whose output goes to files (a full pipe would block it)."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.stdout_path = tmp_path / "mpac.stdout"
        self.stderr_path = tmp_path / "mpac.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "backend.cli", *args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=_env(),
            )

    def output(self) -> str:
        stdout, stderr = self.stdout_path.read_text(), self.stderr_path.read_text()
        return f"--- stdout\n{stdout}\n--- stderr\n{stderr}"

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"mpac did not exit within {timeout_s:.0f} s\n{self.output()}")

    def stop(self) -> None:
        """Ctrl-C first, so that a failed test still stops the embedded servers it started."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def state_dir() -> Iterator[Path]:
    with server_tmp_dir() as path:
        yield path / "state"


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[list[Mpac]]:
    """Collects started processes; any still running at the end are stopped."""
    processes: list[Mpac] = []
    yield processes
    for process in processes:
        process.stop()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_every_command_is_registered() -> None:
    parser = build_parser()
    for command in ("up", "migrate", "seed"):
        args = parser.parse_args([command])
        assert callable(args.handler)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_mpac_up_serves_all_services_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path, state_dir: Path, launched: list[Mpac]
) -> None:
    ports = dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))
    port_args = [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    mpac = Mpac(tmp_path, "up", "--demo", "--state-dir", str(state_dir), *port_args)
    launched.append(mpac)
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}

    def all_healthy() -> bool:
        if mpac.process.poll() is not None:
            pytest.fail(f"mpac up exited with {mpac.process.returncode}\n{mpac.output()}")
        return all(_healthy(url) for url in urls.values())

    wait_until(all_healthy, timeout_s=90, what="healthz of all three services")
    # The banner is printed once every service listens, so it is complete by now.
    wait_until(lambda: "Ctrl-C" in mpac.stdout_path.read_text(), timeout_s=5, what="banner")
    banner = mpac.stdout_path.read_text()
    for url in urls.values():
        assert f"{url}/docs" in banner
        assert f"{url}/healthz" in banner
    assert f"{urls['portal']}/.well-known/jwks.json" in banner
    assert str(state_dir.resolve()) in banner
    assert "activation code" in banner
    postgres_pid = _postgres_pid(state_dir)
    redis_pid = _redis_pid(state_dir)
    assert not _gone(postgres_pid)

    mpac.process.send_signal(signal.SIGINT)
    assert mpac.wait(STOP_TIMEOUT_S) == 0, mpac.output()
    assert _gone(postgres_pid), "embedded PostgreSQL still runs after mpac up stopped"
    assert _gone(redis_pid), "embedded Redis still runs after mpac up stopped"
    assert not any(_healthy(url) for url in urls.values())


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_mpac_up_with_a_port_in_use_exits_non_zero_and_cleans_up(
    tmp_path: Path, state_dir: Path, launched: list[Mpac]
) -> None:
    ports = dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))
    port_args = [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    pgw = ports["pgw"]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", pgw))
        squatter.listen()
        mpac = Mpac(tmp_path, "up", "--state-dir", str(state_dir), *port_args)
        launched.append(mpac)
        status = mpac.wait(90)
    assert status == 1, mpac.output()
    stderr = mpac.stderr_path.read_text()
    assert f"port {pgw} on 127.0.0.1 is already in use" in stderr
    assert not (state_dir / "postgres" / "postmaster.pid").exists(), mpac.output()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_mpac_seed_migrates_seeds_prints_and_stops_its_servers(
    tmp_path: Path, state_dir: Path, launched: list[Mpac]
) -> None:
    mpac = Mpac(tmp_path, "seed", "--state-dir", str(state_dir))
    launched.append(mpac)
    assert mpac.wait(120) == 0, mpac.output()
    printed = mpac.stdout_path.read_text()
    assert "activation code" in printed
    assert "password" in printed
    assert not (state_dir / "postgres" / "postmaster.pid").exists(), mpac.output()

    # The same state dir serves later commands: its servers start again and nothing re-migrates.
    again = Mpac(tmp_path, "migrate", "--state-dir", str(state_dir))
    launched.append(again)
    assert again.wait(120) == 0, again.output()
    assert "migrated" in again.stdout_path.read_text()
