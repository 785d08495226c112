"""The platform a benchmark runs against: its own servers, one OS process per service.

Each service runs as ``mpac serve`` in a process of its own (as it would be deployed), so the
load generator, every service and PostgreSQL/Redis show up as separate processes whose CPU time
and memory can be read, and pgw can be restarted with another ``--workers`` count between
scenarios. PostgreSQL and Redis are embedded in a temporary directory unless URLs are given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from backend.core.migrations import upgrade_all
from backend.core.settings import SERVICE_NAMES, Settings
from backend.runtime.embedded import (
    Infrastructure,
    ensure_field_encryption_keys,
    ensure_s2s_keys,
    infrastructure,
)

logger = logging.getLogger("mpac.bench")

_READY_TIMEOUT_S = 90.0


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports nothing listens on right now."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def raise_open_files_limit(wanted: int) -> int:
    """Raise this process's (and its future children's) open-files limit toward ``wanted``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment under which ``mpac serve`` reads exactly ``settings``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MPAC_")}
    for name, value in settings.model_dump().items():
        env[f"MPAC_{name.upper()}"] = str(value)
    return env


@dataclass
class ServiceProcess:
    """``mpac serve --service NAME`` as an OS process (with ``--workers`` children, if asked)."""

    service: str
    settings: Settings
    log_dir: Path
    workers: int = 1
    # Run under cProfile (loadtest/bench_profile.py), writing the stats here when it stops.
    profile_to: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.settings.url_of(self.service)

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.service}.log"

    def start(self) -> ServiceProcess:
        entry = (
            ["loadtest.bench_profile", str(self.profile_to)] if self.profile_to else ["backend.cli"]
        )
        command = [
            sys.executable,
            "-m",
            *entry,
            "serve",
            "--service",
            self.service,
            "--log-level",
            "warning",
            "--workers",
            str(self.workers),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=settings_env(self.settings),
            )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout_s: float = _READY_TIMEOUT_S) -> ServiceProcess:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.service} exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.service} not ready within {timeout_s:.0f} s:\n{self.output()}")

    def server_pids(self) -> list[int]:
        """The processes that serve requests: the process itself, or its worker children."""
        if self.process is None or self.process.poll() is not None:
            return []
        if self.workers == 1:
            return [self.process.pid]
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []
        return [child.pid for child in children]

    def request_stop(self) -> None:
        """SIGTERM without waiting: several services drain at once (see :func:`stop_all`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout_s: float = 30.0) -> None:
        """Wait for a stop already requested; kill the service (and workers) if it hangs."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for pid in self.server_pids():
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(pid).kill()
            process.kill()
            process.wait(timeout=10)

    def stop(self, timeout_s: float = 30.0) -> None:
        self.request_stop()
        self.wait_stopped(timeout_s)


def stop_all(processes: Iterable[ServiceProcess]) -> None:
    """Stop every service, all draining at the same time rather than one after the other."""
    running = list(processes)
    for process in running:
        process.request_stop()
    for process in running:
        process.wait_stopped()


@dataclass
class BenchPlatform:
    settings: Settings
    infra: Infrastructure
    services: dict[str, ServiceProcess]
    state_dir: Path

    def url_of(self, service: str) -> str:
        return self.settings.url_of(service)

    def restart(
        self, service: str, *, workers: int = 1, profile_to: Path | None = None
    ) -> ServiceProcess:
        self.services[service].stop()
        process = ServiceProcess(
            service, self.settings, self.state_dir, workers=workers, profile_to=profile_to
        )
        self.services[service] = process.start().wait_ready()
        return process

    def infrastructure_pids(self) -> dict[str, list[int]]:
        """PostgreSQL (with its backends) and Redis, when embedded: their CPU counts too."""
        pids: dict[str, list[int]] = {}
        if self.infra.postgres is not None and self.infra.postgres.pid:
            try:
                postmaster = psutil.Process(self.infra.postgres.pid)
                pids["postgres"] = [postmaster.pid] + [c.pid for c in postmaster.children()]
            except psutil.NoSuchProcess:
                pass
        if self.infra.redis is not None and self.infra.redis.pid:
            pids["redis"] = [self.infra.redis.pid]
        return pids


@contextlib.contextmanager
def bench_platform(
    *,
    database_url: str = "",
    redis_url: str = "",
    state_dir: Path | None = None,
    keep_state: bool = False,
    pgw_workers: int = 1,
    db_pool_size: int | None = None,
    settings_overrides: Mapping[str, Any] | None = None,
) -> Iterator[BenchPlatform]:
    """Start PostgreSQL/Redis (embedded unless URLs are given), migrate, run every service."""
    own_dir = state_dir is None
    directory = Path(tempfile.mkdtemp(prefix="mpac-bench-")) if state_dir is None else state_dir
    directory.mkdir(parents=True, exist_ok=True)
    # Embedded PostgreSQL runs as another user when we are root: it must reach its data dir.
    directory.chmod(0o755)
    ports: dict[str, Any] = {
        f"{name}_port": port
        for name, port in zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True)
    }
    pool: dict[str, Any] = {} if db_pool_size is None else {"db_pool_size": db_pool_size}
    settings = Settings(
        **pool,
        database_url=database_url,
        redis_url=redis_url,
        state_dir=directory,
        host="127.0.0.1",
        portal_url="",
        issuer="",
        **ports,
        # The payment path is measured without acquirer latency (docs/performance.md).
        provider_latency_ms=0,
        provider_failure_rate=0.0,
    )
    if settings_overrides:
        # Through the constructor again, so overrides are validated like the environment's.
        settings = Settings(**{**settings.model_dump(), **settings_overrides})
    settings = ensure_s2s_keys(ensure_field_encryption_keys(settings))
    services: dict[str, ServiceProcess] = {}
    try:
        with infrastructure(settings) as infra:
            settings = infra.settings
            upgrade_all(settings.database_url)
            # The portal first (it creates the signing key the others verify with).
            for name in ("portal", "provider", "pgw", "smarttab"):
                workers = pgw_workers if name == "pgw" else 1
                services[name] = ServiceProcess(name, settings, directory, workers=workers).start()
            for process in services.values():
                process.wait_ready()
            platform = BenchPlatform(settings, infra, services, directory)
            try:
                yield platform
            finally:
                stop_all(platform.services.values())
    finally:
        stop_all(services.values())
        if own_dir and not keep_state:
            shutil.rmtree(directory, ignore_errors=True)
