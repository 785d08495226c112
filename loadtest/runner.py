"""``mpac loadtest run``: locust headless, alone or as a master with worker processes.

Reports go to ``reports/loadtest/<UTC time>/``: locust's CSV files (``locust_stats.csv``,
``locust_stats_history.csv``, ``locust_failures.csv``, ``locust_exceptions.csv``), its HTML
report (``report.html``), the SLO gate's verdict (``slo.json``) and the command lines
(``command.txt``). The exit status is the SLO gate's (locust's own when it failed earlier).
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
DEFAULT_REPORT_ROOT = Path("reports/loadtest")
SHAPES = ("lunch",)
WORKER_EXIT_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class RunPlan:
    fleet: Path
    users: int = 10
    spawn_rate: float = 2.0
    run_time: str = "60s"
    shape: str | None = None
    workers: int = 0
    report_dir: Path | None = None
    locust_args: Sequence[str] = field(default_factory=tuple)
    locustfile: Path = LOCUSTFILE

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError("--users must be at least 1")
        if self.spawn_rate <= 0:
            raise ValueError("--spawn-rate must be positive")
        if self.workers < 0:
            raise ValueError("--workers cannot be negative")
        if self.shape is not None and self.shape not in SHAPES:
            raise ValueError(f"--shape must be one of {', '.join(SHAPES)}")


def new_report_dir(root: Path = DEFAULT_REPORT_ROOT) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    path = root / stamp
    suffix = 1
    while path.exists():
        suffix += 1
        path = root / f"{stamp}-{suffix}"
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def locust_base() -> list[str]:
    return [sys.executable, "-m", "locust"]


def master_command(plan: RunPlan, report_dir: Path, *, master_port: int | None) -> list[str]:
    """The headless locust that runs the test (alone, or as the master of the workers)."""
    command = [
        *locust_base(),
        "-f",
        str(plan.locustfile),
        "--headless",
        "--only-summary",
        "--fleet",
        str(plan.fleet),
        "--users",
        str(plan.users),
        "--spawn-rate",
        f"{plan.spawn_rate:g}",
        "--run-time",
        plan.run_time,
        "--stop-timeout",
        "10",
        "--csv",
        str(report_dir / "locust"),
        "--html",
        str(report_dir / "report.html"),
        "--slo-report",
        str(report_dir / "slo.json"),
    ]
    if master_port is not None:
        command += [
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(master_port),
            "--expect-workers",
            str(plan.workers),
            "--expect-workers-max-wait",
            "60",
        ]
    return command + list(plan.locust_args)


def worker_command(plan: RunPlan, master_port: int) -> list[str]:
    """A worker: it gets every option from the master, it only needs the locustfile."""
    return [
        *locust_base(),
        "-f",
        str(plan.locustfile),
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        str(master_port),
    ]


def _environment(plan: RunPlan) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if plan.shape:
        env["LOAD_SHAPE"] = plan.shape
    else:
        env.pop("LOAD_SHAPE", None)
    return env


def _stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(plan: RunPlan, *, echo: bool = True) -> int:
    """Run locust as ``plan`` says; returns its exit status (the SLO gate's verdict)."""
    if not plan.fleet.exists():
        print(f"mpac loadtest run: no fleet file {plan.fleet} (run `mpac loadtest provision`)")
        return 2
    report_dir = plan.report_dir or new_report_dir()
    report_dir.mkdir(parents=True, exist_ok=True)
    env = _environment(plan)
    master_port = free_port() if plan.workers else None
    master = master_command(plan, report_dir, master_port=master_port)
    commands = [master]
    if master_port is not None:
        commands += [worker_command(plan, master_port)] * plan.workers
    (report_dir / "command.txt").write_text(
        "".join(
            ("LOAD_SHAPE=" + plan.shape + " " if plan.shape else "") + shlex.join(c) + "\n"
            for c in commands
        ),
        encoding="utf-8",
    )
    if echo:
        print(f"reports: {report_dir}", flush=True)
        print("$ " + shlex.join(master), flush=True)
    master_process = subprocess.Popen(master, env=env)  # noqa: S603 - our own interpreter
    workers: list[subprocess.Popen[bytes]] = []
    try:
        if master_port is not None:
            time.sleep(0.5)  # let the master bind before the workers dial it
            workers = [
                subprocess.Popen(worker_command(plan, master_port), env=env)  # noqa: S603
                for _ in range(plan.workers)
            ]
        status = master_process.wait()
    except KeyboardInterrupt:
        master_process.send_signal(signal.SIGINT)
        status = master_process.wait()
    finally:
        for worker in workers:
            _stop(worker, WORKER_EXIT_TIMEOUT_S)
    if echo:
        print(f"locust exited with {status}; reports in {report_dir}", flush=True)
    return status
