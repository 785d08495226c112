"""``mpac serve --workers N``: N processes of one service on one port (SO_REUSEPORT)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend.core.settings import Settings
from backend.runtime.server import PlatformStartupError, _listen
from tests.helpers import free_ports
from tests.support.pgw import service_client
from tests.support.realtime import settings_env

pytestmark = pytest.mark.timeout(120)


def _serve(settings: Settings, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "backend.cli",
                "serve",
                "--service",
                "smarttab",
                "--port",
                str(port),
                "--log-level",
                "warning",
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=settings_env(settings),
        )


def _pids_answering(settings: Settings, url: str, want: int, timeout_s: float = 60) -> set[int]:
    """Ask the per-process stats over new connections until ``want`` processes answered."""
    pids: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(pids) < want and time.monotonic() < deadline:
        try:
            with service_client(settings, "smarttab", url) as client:
                response = client.get("/internal/v1/stream/stats")
            if response.status_code == 200:
                pids.add(int(response.json()["pid"]))
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return pids


def test_two_workers_share_the_port_and_stop_together(
    test_settings: Settings, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    log = tmp_path / "serve.log"
    supervisor = _serve(test_settings, port, log, "--workers", "2")
    try:
        pids = _pids_answering(test_settings, f"http://127.0.0.1:{port}", want=2)
        assert len(pids) == 2, log.read_text()
        children = {child.pid for child in psutil.Process(supervisor.pid).children()}
        assert pids == children
        assert "with 2 worker processes" in log.read_text()
    finally:
        supervisor.send_signal(signal.SIGINT)
        status = supervisor.wait(timeout=60)
    assert status == 0, log.read_text()
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_port_in_use_fails_before_any_worker_starts(
    test_settings: Settings, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    holder = _listen("smarttab", "127.0.0.1", port)
    try:
        log = tmp_path / "serve.log"
        supervisor = _serve(test_settings, port, log, "--workers", "2")
        assert supervisor.wait(timeout=60) == 1
        assert "is already in use" in log.read_text()
    finally:
        holder.close()


def test_workers_must_be_positive(test_settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    process = _serve(test_settings, free_ports(1)[0], log, "--workers", "0")
    assert process.wait(timeout=60) == 1
    assert "at least one worker" in log.read_text()


def test_listen_with_reuse_port_lets_two_sockets_bind_one_port() -> None:
    (port,) = free_ports(1)
    first = _listen("pgw", "127.0.0.1", port, reuse_port=True)
    try:
        second = _listen("pgw", "127.0.0.1", port, reuse_port=True)
        second.close()
        # Without SO_REUSEPORT the port stays someone else's.
        with pytest.raises(PlatformStartupError, match="already in use"):
            _listen("pgw", "127.0.0.1", port).close()
    finally:
        first.close()


def _healthz_count(url: str) -> tuple[float, set[str]]:
    """One scrape over a new connection: the /healthz request count and the pids it labels."""
    with httpx.Client(base_url=url, timeout=10) as client:
        text = client.get("/metrics").text
    count, pids = 0.0, set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mpac_http_requests_total" and sample.labels["route"] == "/healthz":
                count += sample.value
            if "pid" in sample.labels:
                pids.add(sample.labels["pid"])
    return count, pids


def test_every_worker_reports_the_requests_of_all_workers(
    test_settings: Settings, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    log = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    supervisor = _serve(test_settings, port, log, "--workers", "2")
    try:
        assert len(_pids_answering(test_settings, url, want=2)) == 2, log.read_text()
        before, _ = _healthz_count(url)
        for _ in range(40):
            # A new connection each time: the kernel spreads them over both workers.
            assert httpx.get(url + "/healthz", timeout=10).status_code == 200

        scrapes = [_healthz_count(url)]
        # New connections until both workers have answered a scrape (the kernel picks).
        while len(set().union(*(pids for _, pids in scrapes))) < 2 and len(scrapes) < 60:
            scrapes.append(_healthz_count(url))
    finally:
        supervisor.send_signal(signal.SIGINT)
        supervisor.wait(timeout=60)

    # Whichever worker answers, the counter is the sum over both (not about half of it).
    assert {count - before for count, _ in scrapes} == {40.0}
    # The gauges read at scrape time are the answering worker's, labelled with its pid.
    assert len(set().union(*(pids for _, pids in scrapes))) == 2
