"""A device's WebSocket to smarttab (``GET /v1/stream``, ``docs/smarttab.md``) inside locust.

One greenlet per device reads the socket: it answers the server's JSON pings, re-authenticates
when the device gets a new token, keeps the last ``seq`` and reconnects with it after a drop.
Everything measurable goes to locust's statistics with request type ``WS``:

| name | response time |
|---|---|
| ``/v1/stream connect`` | TCP + upgrade + token check, until the ``hello`` message |
| ``/v1/stream event`` | delivery lag of a live event: receipt time - the event's ``at`` |
| ``/v1/stream replay`` | events replayed after a reconnect (time 0: counted, not timed) |
| ``/v1/stream reauth`` | a ``reauth`` until ``reauthenticated`` |
| ``/v1/stream closed`` | an unexpected close (a failure, with the close code) |

The event lag compares the platform's clock with this machine's: exact on one machine, as good
as NTP across machines.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import struct
import time
from collections.abc import Callable
from typing import Any

import gevent
import websocket
from locust.env import Environment

from loadtest.users.common import fire

STREAM = "/v1/stream"
CONNECT_TIMEOUT_S = 10.0
# The server pings every 15 s (ws_heartbeat_interval_s); three missed pings mean a dead link.
READ_TIMEOUT_S = 50.0
RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0)
WS_TYPE = "WS"


class StreamClosed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}" if code else f"closed: {reason}")
        self.code = code
        self.reason = reason


def stream_url(smarttab_url: str, last_seq: int | None) -> str:
    base = smarttab_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    return f"{base}{STREAM}" + ("" if last_seq is None else f"?last_seq={last_seq}")


def event_lag_ms(at: str, now: float) -> float:
    """Milliseconds from an event's ``at`` (ISO 8601) to ``now`` (unix seconds), at least 0."""
    try:
        moment = dt.datetime.fromisoformat(at)
    except (TypeError, ValueError):
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max(0.0, (now - moment.timestamp()) * 1000.0)


class DeviceStream:
    """The socket of one simulated device; ``token()`` gives its current device token."""

    def __init__(
        self, environment: Environment, smarttab_url: str, token: Callable[[], str]
    ) -> None:
        self.environment = environment
        self.smarttab_url = smarttab_url
        self.token = token
        self.last_seq: int | None = None
        self.events = 0
        self._ws: websocket.WebSocket | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = False
        self._reauth_sent_at: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        self._stopping = True
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):  # best effort on the way out
                ws.close(timeout=1)
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def reauth(self, token: str) -> None:
        """Hand a fresh token to the open session (before the old one's ``exp``)."""
        ws = self._ws
        if ws is None:
            return
        try:
            self._reauth_sent_at = time.perf_counter()
            ws.send(json.dumps({"type": "reauth", "token": token}))
        except (websocket.WebSocketException, OSError) as exc:
            fire(self.environment, WS_TYPE, f"{STREAM} reauth", 0.0, exception=exc)

    # --- the reader --------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                self._session()
                failures = 0
            except StreamClosed as exc:
                if self._stopping:
                    return
                fire(self.environment, WS_TYPE, f"{STREAM} closed", 0.0, exception=exc)
                failures += 1
            except (websocket.WebSocketException, OSError) as exc:
                if self._stopping:
                    return
                fire(self.environment, WS_TYPE, f"{STREAM} closed", 0.0, exception=exc)
                failures += 1
            finally:
                self._ws = None
            gevent.sleep(RECONNECT_DELAYS_S[min(failures, len(RECONNECT_DELAYS_S) - 1)])

    def _connect(self) -> websocket.WebSocket:
        started = time.perf_counter()
        try:
            ws = websocket.create_connection(
                stream_url(self.smarttab_url, self.last_seq),
                header=[f"Authorization: Bearer {self.token()}"],
                timeout=CONNECT_TIMEOUT_S,
                enable_multithread=True,
            )
            hello = json.loads(ws.recv())
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            elapsed = (time.perf_counter() - started) * 1000
            fire(self.environment, WS_TYPE, f"{STREAM} connect", elapsed, exception=exc)
            raise StreamClosed(None, f"connect failed: {exc!r}") from exc
        elapsed = (time.perf_counter() - started) * 1000
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            error = StreamClosed(None, f"expected hello, got {str(hello)[:80]}")
            fire(self.environment, WS_TYPE, f"{STREAM} connect", elapsed, exception=error)
            ws.close(timeout=1)
            raise error
        fire(self.environment, WS_TYPE, f"{STREAM} connect", elapsed, length=len(str(hello)))
        ws.settimeout(READ_TIMEOUT_S)
        if self.last_seq is None:
            # A new device: stream from the head at once (no 2 s wait for a resume).
            ws.send(json.dumps({"type": "resume", "last_seq": None}))
        return ws

    def _session(self) -> None:
        ws = self._ws = self._connect()
        replaying = self.last_seq is not None
        while not self._stopping:
            opcode, frame = ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code, reason = _close_details(frame.data)
                raise StreamClosed(code, reason)
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            text = frame.data.decode("utf-8") if isinstance(frame.data, bytes) else frame.data
            message: dict[str, Any] = json.loads(text)
            kind = message.get("type")
            if kind == "event":
                self.last_seq = int(message["seq"])
                self.events += 1
                if replaying:
                    fire(self.environment, WS_TYPE, f"{STREAM} replay", 0.0, length=len(text))
                else:
                    lag = event_lag_ms(str(message.get("at")), time.time())
                    fire(self.environment, WS_TYPE, f"{STREAM} event", lag, length=len(text))
            elif kind == "ping":
                ws.send(json.dumps({"type": "pong", "t": message.get("t")}))
            elif kind == "resumed":
                replaying = False
                if message.get("last_seq") is not None:
                    self.last_seq = int(message["last_seq"])
            elif kind == "resync_required" and message.get("head_seq") is not None:
                self.last_seq = int(message["head_seq"])
            elif kind == "reauthenticated" and self._reauth_sent_at is not None:
                elapsed = (time.perf_counter() - self._reauth_sent_at) * 1000
                self._reauth_sent_at = None
                fire(self.environment, WS_TYPE, f"{STREAM} reauth", elapsed, length=len(text))


def _close_details(data: bytes | str) -> tuple[int | None, str]:
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) < 2:
        return None, "no close code"
    (code,) = struct.unpack("!H", raw[:2])
    return int(code), raw[2:].decode("utf-8", "replace")
