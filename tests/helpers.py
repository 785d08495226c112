"""Small helpers shared by the synchronous tests."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run async code (repositories, Redis, asyncpg) from a synchronous test."""
    return asyncio.run(coro)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports nothing listens on right now.

    All sockets stay open until every port is picked, so the kernel cannot hand one out twice.
    """
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


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server (query, e.g. ``host=``, kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy-style URL (``postgresql+asyncpg://``) as a DSN asyncpg itself accepts."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", *parts[1:]))


def wait_until(
    condition: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.1, what: str
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


@contextmanager
def server_tmp_dir(prefix: str = "mpac-test-") -> Iterator[Path]:
    """A temporary directory that embedded PostgreSQL may live in; removed afterwards.

    Run as root, pgserver starts postgres as a separate ``pgserver`` user, which must traverse
    every parent. pytest's ``tmp_path`` lies under ``/tmp/pytest-of-<user>``, which each new
    pytest session resets to mode 700, so a second session (or a developer's parallel run)
    would lock the server out of its own data directory.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
