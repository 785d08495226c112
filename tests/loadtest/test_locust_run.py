"""Real locust runs (subprocesses) against the session platform: short, few users.

``mpac loadtest run`` starts locust headless with the fleet; the SLO gate decides the exit
status and prints its table of endpoints. Kept to ~10 s of load each (``slow`` marker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

# Short pauses so that 3 users do every kind of request within 10 seconds.
FAST = ["--think-time", "0.5-1.5", "--step-pause", "0.05-0.2"]


def mpac_loadtest_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOAD_")}
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "loadtest", "run", *args],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=cwd,
        env=env,
        check=False,
    )


def test_a_short_headless_run_passes_the_gate(fleet_file: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = mpac_loadtest_run(
        "--fleet",
        str(fleet_file),
        "-u",
        "3",
        "-r",
        "3",
        "-t",
        "10s",
        *FAST,
        "--report-dir",
        str(reports),
        "--",
        # a webhook burst every few seconds: 10 signed events at once
        "--webhook-burst",
        "10",
        "--webhook-burst-interval",
        "2-3",
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SLO gate PASSED" in result.stdout
    summary = result.stdout[result.stdout.index("SLO gate:") :]
    for endpoint in (
        "POST /oauth2/token",
        "WS /v1/stream connect",
        "WS /v1/stream event",
        "POST /v1/tabs",
        "POST /v1/tabs/{id}/items",
        "POST /v1/tabs/{id}/splits",
        "POST /v1/tabs/{id}/parts/{n}/pay",
        "POST /v1/provider/webhooks",
        "POST /v1/auth/login",
        "HTTP requests",
        "Aggregated",
    ):
        assert endpoint in summary, f"{endpoint} missing from\n{summary}"
    verdict = json.loads((reports / "slo.json").read_text())
    assert verdict["passed"] is True
    assert verdict["total"]["failures"] == 0, output
    assert verdict["http_rps"] > 0
    assert (reports / "report.html").stat().st_size > 0
    assert (reports / "locust_stats.csv").read_text().count("\n") > 5
    assert "locust" in (reports / "command.txt").read_text()


def test_broken_targets_fail_the_run(fleet_file: Path, tmp_path: Path) -> None:
    """One device for 5 s (the lunch shape, compressed), judged against a target no request
    can meet: exit status 1."""
    result = mpac_loadtest_run(
        "--fleet",
        str(fleet_file),
        "-u",
        "1",
        "-t",
        "5s",
        "--shape",
        "lunch",
        *FAST,
        "--portal-users",
        "0",
        "--webhook-users",
        "0",
        "--report-dir",
        str(tmp_path / "reports"),
        "--",
        "--slo-p50",
        "0.001",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Shape test starting" in result.stderr
    assert "SLO gate FAILED" in result.stdout
    assert "Aggregated: P50" in result.stdout
