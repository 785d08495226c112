"""Synchronous drivers of smarttab's real-time channel (``GET /v1/stream``) for tests and steps.

``StreamClient`` is one device's socket: connect (token in the header or in the first message),
receive with a timeout, answer pings, collect events, expect a close code. ``DeviceStream`` is a
device that keeps its last seq across reconnects. The rest publishes events (through the real
HTTP route, or straight into the event log like a writer in another process would), mints
short-lived tokens with the portal's own signing key, and runs ``mpac serve`` processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from backend.core.authz import TenantScope
from backend.core.database import commit_and_run_effects, create_engine, create_sessionmaker
from backend.core.redis import create_redis
from backend.core.settings import Settings
from backend.smarttab.events.service import record_event
from tests.support.portal import EnrolledTerminal, bearer
from tests.support.tokens import forge, published_signing_keys, unverified_parts

DEFAULT_TIMEOUT_S = 5.0


def stream_url(base_url: str, *, last_seq: int | str | None = None) -> str:
    url = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/v1/stream"
    return url if last_seq is None else f"{url}?last_seq={last_seq}"


@dataclass(frozen=True)
class StreamClosed(Exception):
    """The server closed the socket (``code`` None: the connection dropped without a close)."""

    code: int | None
    reason: str

    def __str__(self) -> str:
        return f"stream closed with {self.code}: {self.reason}"


class StreamClient:
    """One WebSocket to ``/v1/stream``; every message received is kept in ``received``."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.received: list[dict[str, Any]] = []
        self.hello: dict[str, Any] | None = None
        self.last_seq: int | None = None
        self.closed: StreamClosed | None = None

    @classmethod
    def connect(
        cls,
        base_url: str,
        token: str | None = None,
        *,
        via: str = "header",
        last_seq: int | None = None,
        query: int | str | None = None,
        headers: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> StreamClient:
        """Open a socket. ``via="header"`` sends the token as ``Authorization: Bearer`` (and
        ``last_seq`` as ``?last_seq=``); ``via="message"`` sends it as the first message (with
        ``last_seq`` in it). ``query`` sets ``?last_seq=`` verbatim; ``options`` go to
        ``websockets.sync.client.connect``. Nothing is awaited."""
        extra = dict(headers or {})
        if via == "header" and token is not None:
            extra.update(bearer(token))
        if via == "header" and last_seq is not None:
            query = last_seq
        connection = connect(
            stream_url(base_url, last_seq=query),
            **(options or {}),
            additional_headers=extra,
            open_timeout=DEFAULT_TIMEOUT_S,
            close_timeout=2,
            proxy=None,
            # A ClientConnection now (websockets' historical behaviour, chosen explicitly).
            legacy=True,
        )
        assert isinstance(connection, ClientConnection)
        client = cls(connection)
        if via == "message" and token is not None:
            client.send({"type": "auth", "token": token, "last_seq": last_seq})
        return client

    # --- sending ---------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        self.connection.send(json.dumps(message))

    def send_raw(self, frame: str | bytes) -> None:
        self.connection.send(frame)

    # --- receiving -------------------------------------------------------------------------

    def recv(self, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
        """The next message of any type; raises :class:`StreamClosed` or ``TimeoutError``."""
        if self.closed is not None:
            raise self.closed
        try:
            frame = self.connection.recv(timeout=timeout)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            self.closed = StreamClosed(
                rcvd.code if rcvd else None, rcvd.reason if rcvd else "no close frame"
            )
            raise self.closed from exc
        message: dict[str, Any] = json.loads(frame)
        self.received.append(message)
        if message.get("type") == "hello":
            self.hello = message
        if message.get("type") == "event":
            self.last_seq = int(message["seq"])
        if message.get("type") == "resumed":
            self.last_seq = int(message["last_seq"])
        if message.get("type") == "resync_required":
            # After refetching state, the device is at the head; the stream goes on from there.
            self.last_seq = int(message["head_seq"])
        return message

    def next(
        self, kind: str, *, timeout: float = DEFAULT_TIMEOUT_S, answer_pings: bool = True
    ) -> dict[str, Any]:
        """The next message of type ``kind``, answering pings and skipping anything else."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(timeout=max(deadline - time.monotonic(), 0.001))
            if message["type"] == kind:
                return message
            if message["type"] == "ping" and answer_pings:
                self.send({"type": "pong", "t": message["t"]})

    def events(self, count: int, *, timeout: float = DEFAULT_TIMEOUT_S) -> list[dict[str, Any]]:
        """The next ``count`` events (pings answered); any other message is a failure."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(events) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"got {len(events)} of {count} events within {timeout} s: {events}"
                )
            try:
                message = self.recv(timeout=remaining)
            except TimeoutError:
                continue
            if message["type"] == "ping":
                self.send({"type": "pong", "t": message["t"]})
            elif message["type"] == "event":
                events.append(message)
            else:
                raise AssertionError(f"expected events, got {message}")
        return events

    def quiet_for(self, seconds: float) -> list[dict[str, Any]]:
        """Everything but pings received within ``seconds`` (pings answered)."""
        others: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = self.recv(timeout=remaining)
            except TimeoutError:
                break
            if message["type"] == "ping":
                self.send({"type": "pong", "t": message["t"]})
            else:
                others.append(message)
        return others

    def expect_close(
        self, *, timeout: float = DEFAULT_TIMEOUT_S, answer_pings: bool = False
    ) -> StreamClosed:
        """Read until the server closes; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the stream was not closed within {timeout} s")
            try:
                message = self.recv(timeout=remaining)
            except StreamClosed as closed:
                return closed
            except TimeoutError:
                continue
            if message["type"] == "ping" and answer_pings:
                self.send({"type": "pong", "t": message["t"]})

    def resume(self, last_seq: int | None, *, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
        self.send({"type": "resume", "last_seq": last_seq})
        return self.next("resumed", timeout=timeout)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_stream(
    base_url: str,
    token: str,
    *,
    last_seq: int | None = None,
    via: str = "header",
    timeout: float = DEFAULT_TIMEOUT_S,
) -> StreamClient:
    """A socket past ``hello`` and ``resumed``: from here on only events (and pings) arrive.

    Without ``last_seq`` it sends ``resume`` with null (stream from the hello's head) rather
    than waiting for the server's resume window.
    """
    client = StreamClient.connect(base_url, token, via=via, last_seq=last_seq)
    client.next("hello", timeout=timeout)
    if last_seq is None:
        client.send({"type": "resume", "last_seq": None})
    client.next("resumed", timeout=timeout)
    return client


@dataclass
class DeviceStream:
    """A terminal that reconnects where it left off (its last seq survives the socket)."""

    terminal: EnrolledTerminal
    portal: httpx.Client
    last_seq: int | None = None
    client: StreamClient | None = field(default=None, repr=False)

    def token(self) -> str:
        return self.terminal.fresh_token(self.portal)

    def connect(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> StreamClient:
        self.disconnect()
        self.client = open_stream(base_url, self.token(), last_seq=self.last_seq, timeout=timeout)
        self._remember()
        return self.client

    def events(self, count: int, *, timeout: float = DEFAULT_TIMEOUT_S) -> list[dict[str, Any]]:
        assert self.client is not None, "connect first"
        events = self.client.events(count, timeout=timeout)
        self._remember()
        return events

    def disconnect(self) -> None:
        if self.client is not None:
            self._remember()
            self.client.close()
            self.client = None

    def _remember(self) -> None:
        if self.client is not None and self.client.last_seq is not None:
            self.last_seq = self.client.last_seq


# --- publishing ------------------------------------------------------------------------------


def post_notice(base_url: str, token: str, text: str) -> dict[str, Any]:
    """``POST /v1/stream/notices`` on the smarttab at ``base_url``: one event for the store."""
    response = httpx.post(
        base_url + "/v1/stream/notices", json={"text": text}, headers=bearer(token), timeout=10
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def record_events(
    settings: Settings,
    scope: TenantScope,
    count: int,
    *,
    publish: bool = True,
    event_type: str = "test.event",
    padding: int = 0,
) -> list[int]:
    """Write ``count`` events for ``scope``'s store, as a smarttab writer does, one transaction
    each. ``publish=False`` commits without publishing to Redis: a writer that died between
    its commit and its publish. ``padding`` adds that many random characters to each event."""

    async def write() -> list[int]:
        engine = create_engine(settings, application_name="tests-realtime")
        redis = create_redis(settings)
        seqs: list[int] = []
        try:
            sessionmaker = create_sessionmaker(engine)
            for index in range(count):
                async with sessionmaker() as session:
                    data: dict[str, Any] = {"index": index, "id": uuid.uuid4().hex}
                    if padding:
                        data["padding"] = secrets.token_urlsafe(padding)[:padding]
                    event = await record_event(session, redis, scope, event_type, data)
                    if publish:
                        await commit_and_run_effects(session)
                    else:
                        await session.commit()
                    seqs.append(event.seq)
        finally:
            await redis.aclose()
            await engine.dispose()
        return seqs

    return asyncio.run(write())


def store_scope(psp_id: str, merchant_id: str, store_id: str) -> TenantScope:
    return TenantScope(
        psp_id=uuid.UUID(psp_id), merchant_id=uuid.UUID(merchant_id), store_id=uuid.UUID(store_id)
    )


def short_lived_device_token(
    settings: Settings, portal: httpx.Client, terminal: EnrolledTerminal, *, ttl_s: int
) -> str:
    """A device token exactly like the portal issues, signed with the portal's own key, but
    living ``ttl_s`` seconds (the portal's minimum lifetime is 60 s)."""
    header, claims = unverified_parts(terminal.fresh_token(portal))
    key = published_signing_keys(settings)[header["kid"]]
    now = int(time.time())
    claims.update(iat=now, nbf=now, exp=now + ttl_s, jti=uuid.uuid4().hex)
    return forge(claims, key)


# --- processes -------------------------------------------------------------------------------


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes another process read exactly ``settings``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MPAC_")}
    for name, value in settings.model_dump().items():
        env[f"MPAC_{name.upper()}"] = str(value)
    return env


class ServiceProcess:
    """``mpac serve --service NAME --port N`` as a real OS process, with its output in a file."""

    def __init__(self, settings: Settings, service: str, port: int, log_dir: Path) -> None:
        self.service = service
        self.url = f"http://{settings.host}:{port}"
        self.log_path = log_dir / f"{service}-{port}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "backend.cli",
                    "serve",
                    "--service",
                    service,
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=settings_env(settings),
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 60.0) -> ServiceProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"mpac serve exited with {self.process.returncode}\n{self.output()}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"mpac serve was not ready within {timeout_s} s\n{self.output()}")

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def wait_for(condition: Callable[[], Any], *, timeout_s: float = 5.0, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
