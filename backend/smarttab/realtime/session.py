"""One authenticated socket: hello, replay, live events, heartbeats, reauth and closing.

Four tasks share the socket: the receiver (client messages), the sender (the only writer of
events, so replay and live events cannot interleave), the timer (pings, idle timeout, token
expiry) and a watcher for close requests from outside (the hub, when the socket lags). The
first of them to finish decides how the socket closes.

Ordering without gaps or duplicates: the socket is attached to the hub (its store's channel
subscribed) before anything is read from the database. Live events offered before the client
said where to start are dropped (the start replay reads them from the database); after that
they queue, and the sender skips those at or below its cursor and fills any gap above it from
the database before sending on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.websockets import WebSocketDisconnect

from backend.core.settings import Settings
from backend.core.tokens import TokenVerifier
from backend.smarttab.realtime import protocol
from backend.smarttab.realtime.hub import HubUnavailable, StreamHub
from backend.smarttab.realtime.protocol import (
    MAX_CLIENT_MESSAGE_CHARS,
    AuthMessage,
    ClientMessage,
    Close,
    CloseCode,
    PingMessage,
    PongMessage,
    ProtocolError,
    ReauthMessage,
    ResumeMessage,
)
from backend.smarttab.realtime.service import (
    StreamIdentity,
    StreamRefused,
    authenticate_stream,
    catch_up,
    check_reauth,
    read_head,
)

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S = 5.0
_MIN_TIMER_SLEEP_S = 0.01


class StoreUnavailable(Exception):
    """The event log could not be read."""


@dataclass(frozen=True, slots=True)
class _CatchUpMarker:
    pass


_CATCH_UP = _CatchUpMarker()
_Item = tuple[int, str] | _CatchUpMarker


class StreamSession:
    def __init__(
        self,
        websocket: WebSocket,
        identity: StreamIdentity,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        hub: StreamHub,
        verifier: TokenVerifier,
        start_after: int | None,
    ) -> None:
        self.ws = websocket
        self.identity = identity
        self.id = uuid.uuid4().hex
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.hub = hub
        self.verifier = verifier
        self._store_id = identity.store_id
        self._initial_start = start_after
        loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=settings.ws_send_queue_limit)
        self._start: asyncio.Future[int] = loop.create_future()
        self._close_request: asyncio.Future[Close] = loop.create_future()
        self._started = False
        self._hello_head = 0
        self._cursor = 0
        self._send_lock = asyncio.Lock()
        self._idle_deadline = loop.time() + settings.ws_idle_timeout_s
        # Set while the server waits for a resume message; streaming then starts by itself.
        self._resume_deadline: float | None = None

    # --- what the hub calls ----------------------------------------------------------------

    @property
    def store_id(self) -> uuid.UUID:
        return self._store_id

    def offer_live(self, seq: int, text: str) -> None:
        if not self._started or self._close_request.done():
            return  # the start replay reads it from the database
        try:
            self._queue.put_nowait((seq, text))
        except asyncio.QueueFull:
            self.request_close(
                Close(
                    CloseCode.LAGGING,
                    "too far behind: reconnect with last_seq to replay what you missed",
                )
            )

    def offer_catch_up(self) -> None:
        if not self._started or self._close_request.done():
            return
        try:
            self._queue.put_nowait(_CATCH_UP)
        except asyncio.QueueFull:
            self.request_close(
                Close(
                    CloseCode.LAGGING,
                    "too far behind: reconnect with last_seq to replay what you missed",
                )
            )

    def request_close(self, close: Close) -> None:
        if not self._close_request.done():
            self._close_request.set_result(close)

    # --- the session -----------------------------------------------------------------------

    async def serve(self) -> Close | None:
        """Run until the socket closes; returns the close sent (None: the client left)."""
        try:
            await self.hub.attach(self)
        except HubUnavailable:
            close = Close(CloseCode.TRY_AGAIN_LATER, "real-time fan-out unavailable; retry later")
            await self._close(close)
            return close
        try:
            outcome = await self._supervise()
        except (WebSocketDisconnect, OSError):
            outcome = None  # gone before the hello was out
        finally:
            await self.hub.detach(self)
        if outcome is not None:
            await self._close(outcome)
            self.hub.stats.closes[int(outcome.code)] += 1
        return outcome

    async def _supervise(self) -> Close | None:
        try:
            self._hello_head = await read_head(self.sessionmaker, self.identity.principal)
        except (SQLAlchemyError, OSError):
            logger.warning("stream %s: event log unreadable at hello", self.id, exc_info=True)
            return Close(CloseCode.TRY_AGAIN_LATER, "event log unavailable; retry later")
        waits_for_resume = self._initial_start is None
        await self._send(
            protocol.hello(
                session_id=self.id,
                principal=self.identity.describe(),
                store_id=str(self._store_id),
                head_seq=self._hello_head,
                expires_at=self.identity.token_exp,
                heartbeat_interval_s=self.settings.ws_heartbeat_interval_s,
                idle_timeout_s=self.settings.ws_idle_timeout_s,
                resume_wait_s=self.settings.ws_resume_wait_s if waits_for_resume else None,
            )
        )
        if waits_for_resume:
            loop = asyncio.get_running_loop()
            self._resume_deadline = loop.time() + self.settings.ws_resume_wait_s
        else:
            self._begin_at(self._initial_start)
        tasks = [
            asyncio.create_task(self._guard(self._receiver()), name=f"stream-{self.id}-recv"),
            asyncio.create_task(self._guard(self._sender()), name=f"stream-{self.id}-send"),
            asyncio.create_task(self._guard(self._timer()), name=f"stream-{self.id}-timer"),
            asyncio.create_task(self._watch_close_requests(), name=f"stream-{self.id}-close"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # Several may finish together; any decision to close beats "the client left".
        outcomes = [task.result() for task in tasks if task in done and not task.cancelled()]
        return next((outcome for outcome in outcomes if outcome is not None), None)

    async def _guard(self, work: Any) -> Close | None:
        """Turn how a task ended into a close decision (None: the client is gone)."""
        try:
            result: Close | None = await work
            return result
        except StreamRefused as refused:
            return refused.close
        except (WebSocketDisconnect, OSError):
            return None
        except StoreUnavailable:
            return Close(CloseCode.TRY_AGAIN_LATER, "event log unavailable; reconnect later")
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("stream %s failed", self.id)
            return Close(CloseCode.INTERNAL_ERROR, "internal error; reconnect with last_seq")

    async def _watch_close_requests(self) -> Close:
        return await self._close_request

    # --- receiving -------------------------------------------------------------------------

    async def _receiver(self) -> Close | None:
        loop = asyncio.get_running_loop()
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return None
            self._idle_deadline = loop.time() + self.settings.ws_idle_timeout_s
            text = message.get("text")
            if text is None:
                return Close(CloseCode.PROTOCOL_ERROR, "protocol error: send JSON text frames")
            if len(text) > MAX_CLIENT_MESSAGE_CHARS:
                return Close(CloseCode.MESSAGE_TOO_BIG, "message too big")
            try:
                parsed = protocol.parse_client_message(text)
            except ProtocolError as exc:
                return Close(CloseCode.PROTOCOL_ERROR, f"protocol error: {exc}")
            outcome = await self._handle(parsed)
            if outcome is not None:
                return outcome

    async def _handle(self, message: ClientMessage) -> Close | None:
        if isinstance(message, PongMessage):
            return None
        if isinstance(message, PingMessage):
            await self._send(protocol.pong(message.t))
            return None
        if isinstance(message, ResumeMessage):
            if self._started:
                return Close(
                    CloseCode.PROTOCOL_ERROR,
                    "protocol error: resume comes once, before streaming starts",
                )
            self._begin_at(message.last_seq)
            return None
        if isinstance(message, ReauthMessage):
            renewed = await authenticate_stream(
                self.verifier, message.token, leeway_s=self.settings.clock_skew_leeway_s
            )
            check_reauth(self.identity, renewed)
            self.identity = renewed
            await self._send(protocol.reauthenticated(expires_at=renewed.token_exp))
            return None
        if isinstance(message, AuthMessage):
            return Close(
                CloseCode.PROTOCOL_ERROR,
                "protocol error: already authenticated; send reauth to renew the token",
            )
        return Close(CloseCode.PROTOCOL_ERROR, "protocol error: unexpected message")

    def _begin_at(self, last_seq: int | None) -> None:
        """Fix where the stream starts; from now on the hub's live events are queued."""
        self._started = True
        self._start.set_result(self._hello_head if last_seq is None else last_seq)

    # --- sending ---------------------------------------------------------------------------

    async def _sender(self) -> Close | None:
        after = await self._start
        self._cursor = after
        replayed = await self._catch_up(through=None)
        await self._send(
            protocol.resumed(after_seq=after, replayed=replayed, last_seq=self._cursor)
        )
        while True:
            item = await self._queue.get()
            if isinstance(item, _CatchUpMarker):
                await self._catch_up(through=None)
                continue
            seq, text = item
            if seq <= self._cursor:
                continue  # already sent (replayed, or filled from the database)
            if seq > self._cursor + 1:
                await self._catch_up(through=seq)  # a gap: the database has everything to seq
                continue
            await self._send_text(text)
            self._cursor = seq
            self.hub.stats.events_sent_live += 1

    async def _catch_up(self, *, through: int | None) -> int:
        try:
            result = await catch_up(
                self.sessionmaker,
                self.identity.principal,
                cursor=self._cursor,
                through=through,
                limit=self.settings.ws_replay_limit,
                retention_s=self.settings.store_event_retention_s,
            )
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("stream %s: event log unreadable", self.id, exc_info=True)
            raise StoreUnavailable from exc
        if result.resync is not None:
            await self._send(result.resync)
            self.hub.stats.resyncs += 1
        for text in result.events:
            await self._send_text(text)
        self.hub.stats.events_replayed += len(result.events)
        self._cursor = result.cursor
        return len(result.events)

    async def _send(self, message: dict[str, Any]) -> None:
        await self._send_text(json.dumps(message))

    async def _send_text(self, text: str) -> None:
        async with self._send_lock:
            await self.ws.send_text(text)

    # --- time ------------------------------------------------------------------------------

    async def _timer(self) -> Close:
        loop = asyncio.get_running_loop()
        interval = self.settings.ws_heartbeat_interval_s
        next_ping = loop.time() + interval
        while True:
            now = loop.time()
            if now >= self._idle_deadline:
                idle = self.settings.ws_idle_timeout_s
                return Close(
                    CloseCode.IDLE_TIMEOUT, f"idle timeout: nothing received for {idle:g} s"
                )
            remaining_token_s = self.identity.closes_at - time.time()
            if remaining_token_s <= 0:
                return Close(
                    CloseCode.UNAUTHORIZED, "token expired: send reauth before the token's exp"
                )
            waiting = self._resume_deadline is not None and not self._started
            if waiting and self._resume_deadline is not None and now >= self._resume_deadline:
                self._begin_at(None)  # no resume came: stream from the hello's head_seq
            if now >= next_ping:
                await self._send(protocol.ping())
                next_ping = now + interval
            deadlines = [self._idle_deadline - now, remaining_token_s, next_ping - now]
            if self._resume_deadline is not None and not self._started:
                deadlines.append(self._resume_deadline - now)
            delay = min(deadlines)
            await asyncio.sleep(max(delay, _MIN_TIMER_SLEEP_S))

    # --- closing ---------------------------------------------------------------------------

    async def _close(self, close: Close) -> None:
        # A client that stopped reading can keep a close frame waiting forever.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.ws.close(code=int(close.code), reason=close.wire_reason), _CLOSE_TIMEOUT_S
            )
