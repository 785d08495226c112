"""``mpac serve --workers N``: N processes of one service sharing its port (SO_REUSEPORT).

Every service is stateless (its state lives in PostgreSQL and Redis), so a service scales on one
machine by running more processes of it. The supervisor started by ``--workers N`` runs N
``mpac serve`` children that each bind the same port with SO_REUSEPORT; the kernel spreads new
connections over them. Each child is a complete process of the service: its own event loop,
database pool (``MPAC_DB_POOL_SIZE`` + ``MPAC_DB_MAX_OVERFLOW`` connections at most), Redis
connections and background loops (the reconciler, the outbox relay and the event purge already
share their work through ``FOR UPDATE SKIP LOCKED``; smarttab's WebSocket fan-out goes through
Redis pub/sub, so a device on one worker gets the events written by another).

The children run in their own session: a Ctrl-C reaches the supervisor only, which stops them
gracefully (SIGTERM, each one drains its requests) and waits for them; on Linux a child also gets
SIGTERM if the supervisor itself is killed. If one child dies the supervisor stops the others and
fails, rather than serving at reduced capacity unnoticed.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from types import FrameType

from backend.core.settings import Settings
from backend.runtime.server import PlatformStartupError, _listen

logger = logging.getLogger("mpac")

_POLL_S = 0.2
_STOP_TIMEOUT_S = 30.0
_PR_SET_PDEATHSIG = 1


def _child_command(
    service: str, settings: Settings, *, log_level: str, state_dir: str | None
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "backend.cli",
        "serve",
        "--service",
        service,
        "--port",
        str(settings.port_of(service)),
        "--host",
        settings.host,
        "--log-level",
        log_level,
        "--reuse-port",
    ]
    if state_dir is not None:
        command += ["--state-dir", state_dir]
    return command


def _child_env(settings: Settings) -> dict[str, str]:
    """The caller's environment plus the keys the supervisor resolved (all children share them)."""
    env = dict(os.environ)
    env["MPAC_DATABASE_URL"] = settings.database_url
    env["MPAC_REDIS_URL"] = settings.redis_url
    env["MPAC_FIELD_ENCRYPTION_KEYS"] = settings.field_encryption_keys
    env["MPAC_S2S_KEYS"] = settings.s2s_keys
    return env


def _die_with_supervisor() -> None:
    """In the child before exec (Linux): SIGTERM when the supervisor dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _stop(children: Sequence[subprocess.Popen[bytes]], timeout_s: float = _STOP_TIMEOUT_S) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            logger.warning("worker %s did not stop in time; killing it", child.pid)
            child.kill()
            child.wait()


def run_workers(
    service: str,
    settings: Settings,
    *,
    workers: int,
    log_level: str,
    state_dir: str | None = None,
) -> int:
    """Run ``workers`` processes of ``service`` on its port until SIGINT/SIGTERM; exit status."""
    port = settings.port_of(service)
    # A plain bind first: a port held by anything else (or a stale worker group, which would
    # otherwise silently share its connections with ours) fails here, before any child starts.
    _listen(service, settings.host, port).close()
    stopping = False

    def on_signal(sig: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    children: list[subprocess.Popen[bytes]] = []
    # The workers' shared metrics (backend/observability/metrics.py): a fresh directory per run,
    # since files left by an earlier run's workers would be summed in.
    metrics_dir = tempfile.mkdtemp(prefix=f"mpac-{service}-metrics-")
    try:
        command = _child_command(service, settings, log_level=log_level, state_dir=state_dir)
        env = {**_child_env(settings), "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
        for _ in range(workers):
            children.append(
                subprocess.Popen(  # noqa: S603
                    command,
                    env=env,
                    start_new_session=True,
                    preexec_fn=_die_with_supervisor if sys.platform == "linux" else None,
                )
            )
        pids = ", ".join(str(child.pid) for child in children)
        print(
            f"{service} running at {settings.url_of(service)} with {workers} worker processes "
            f"(pids {pids}; supervisor {os.getpid()}); Ctrl-C stops them",
            flush=True,
        )
        while not stopping:
            ended = [child for child in children if child.poll() is not None]
            if ended:
                codes = ", ".join(f"pid {c.pid} status {c.returncode}" for c in ended)
                raise PlatformStartupError(f"{service}: worker stopped on its own ({codes})")
            time.sleep(_POLL_S)
        logger.info("stopping %d %s workers", len(children), service)
        _stop(children)
        return 0
    except BaseException:
        _stop(children)
        raise
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
