"""Per-process registry of open streams and the one Redis subscription feeding them.

Each smarttab process holds exactly one Redis pub/sub connection. It subscribes to a store's
channel (``smarttab:store:<id>``) when the first local socket of that store attaches and
unsubscribes when the last one leaves, so a process only receives the stores it serves, and no
socket ever has a Redis connection of its own. Every message is parsed once and handed to the
local sockets of the store named by its channel, after checking that the event inside names the
same store.

Pub/sub is fire-and-forget: whatever is published while the connection is down is lost. After
reconnecting, the hub therefore asks every socket to catch up from the database (sockets also
fill any gap they notice in the live numbering), so nothing is missed, only delayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry.trace import SpanKind
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from backend.observability.tracing import TRACEPARENT, extract_context, tracer
from backend.smarttab.events.service import store_channel

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = store_channel(uuid.UUID(int=0)).removesuffix(str(uuid.UUID(int=0)))
# How long a socket waits for its store's subscription before giving up (Redis unreachable).
SUBSCRIBE_TIMEOUT_S = 5.0
_READ_POLL_S = 1.0
_MAX_BACKOFF_S = 5.0


class HubUnavailable(Exception):
    """The store's channel could not be subscribed to in time (Redis unreachable)."""


class Subscriber(Protocol):
    """A local socket, as the hub sees it."""

    @property
    def store_id(self) -> uuid.UUID: ...

    def offer_live(self, seq: int, text: str) -> None:
        """A live event of the subscriber's store (must not block)."""

    def offer_catch_up(self) -> None:
        """Live events may have been lost: re-read the database (must not block)."""


@dataclass
class HubStats:
    """Counters of this process since it started (metrics-ready; see GET /internal/v1/stream/stats)."""

    connections_total: int = 0
    messages_received: int = 0
    events_sent_live: int = 0
    events_replayed: int = 0
    resyncs: int = 0
    redis_reconnects: int = 0
    closes: Counter[int] = field(default_factory=Counter)


class StreamHub:
    def __init__(self, redis_url: str, *, subscribe_timeout_s: float = SUBSCRIBE_TIMEOUT_S) -> None:
        # A client of its own with retries off: a dropped connection must surface here (to
        # resubscribe and trigger catch-ups), not be silently re-established by redis-py.
        self._redis = Redis.from_url(
            redis_url,
            decode_responses=True,
            socket_connect_timeout=5,
            health_check_interval=15,
            retry=Retry(NoBackoff(), 0),
        )
        self._subscribe_timeout_s = subscribe_timeout_s
        self._subscribers: dict[uuid.UUID, set[Subscriber]] = {}
        # SUBSCRIBE commands sent per channel and not yet confirmed, and the future each store's
        # first socket waits on until its channel is live.
        self._unconfirmed: Counter[str] = Counter()
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        # Confirmed last after a (re)connect: every channel listed before it is live by then.
        self._control_channel = f"smarttab:hub:{uuid.uuid4().hex}"
        self._connected_once = False
        self._catch_up_pending = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.stats = HubStats()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="smarttab-stream-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop_pubsub()
        await self._redis.aclose()

    # --- sockets ---------------------------------------------------------------------------

    async def attach(self, subscriber: Subscriber) -> None:
        """Register a socket; returns once its store's channel is subscribed.

        A socket must attach before it reads the database, so no event can fall between what it
        reads and what it is sent live.
        """
        channel = store_channel(subscriber.store_id)
        async with self._lock:
            local = self._subscribers.setdefault(subscriber.store_id, set())
            local.add(subscriber)
            self.stats.connections_total += 1
            if channel not in self._ready:
                self._ready[channel] = asyncio.get_running_loop().create_future()
                await self._subscribe(channel)
            ready = self._ready[channel]
        try:
            await asyncio.wait_for(asyncio.shield(ready), self._subscribe_timeout_s)
        except TimeoutError as exc:
            await self.detach(subscriber)
            raise HubUnavailable(f"no subscription to {channel} within the timeout") from exc

    async def detach(self, subscriber: Subscriber) -> None:
        channel = store_channel(subscriber.store_id)
        async with self._lock:
            local = self._subscribers.get(subscriber.store_id)
            if local is None or subscriber not in local:
                return
            local.discard(subscriber)
            if local:
                return
            del self._subscribers[subscriber.store_id]
            ready = self._ready.pop(channel, None)
            if ready is not None and not ready.done():
                ready.cancel()
            if self._pubsub is not None:
                try:
                    await self._pubsub.unsubscribe(channel)
                except Exception:
                    # The reader notices the broken connection and resubscribes what is left.
                    logger.warning("could not unsubscribe from %s", channel, exc_info=True)

    def connections(self) -> dict[str, int]:
        return {str(store): len(local) for store, local in self._subscribers.items()}

    def metrics(self) -> list[Metric]:
        """This process's sockets and their traffic, as Prometheus reads them at a scrape."""
        stats = self.stats
        connections = GaugeMetricFamily(
            "mpac_websocket_connections", "Device WebSockets open now.", labels=["service"]
        )
        connections.add_metric(["smarttab"], float(sum(self.connections().values())))
        opened = CounterMetricFamily(
            "mpac_websocket_connections_opened",
            "Device WebSockets accepted since the process started.",
            labels=["service"],
        )
        opened.add_metric(["smarttab"], float(stats.connections_total))
        events = CounterMetricFamily(
            "mpac_websocket_events_sent",
            "Store events sent to devices: live as they happen, or replayed on resume.",
            labels=["service", "mode"],
        )
        events.add_metric(["smarttab", "live"], float(stats.events_sent_live))
        events.add_metric(["smarttab", "replayed"], float(stats.events_replayed))
        closes = CounterMetricFamily(
            "mpac_websocket_closes",
            "Device WebSockets closed by the server, by close code.",
            labels=["service", "code"],
        )
        for code, count in sorted(stats.closes.items()):
            closes.add_metric(["smarttab", str(code)], float(count))
        reconnects = CounterMetricFamily(
            "mpac_websocket_redis_reconnects",
            "Times the hub re-established its Redis subscription.",
            labels=["service"],
        )
        reconnects.add_metric(["smarttab"], float(stats.redis_reconnects))
        return [connections, opened, events, closes, reconnects]

    def snapshot(self) -> dict[str, Any]:
        per_store = self.connections()
        stats = self.stats
        return {
            "connections": sum(per_store.values()),
            "stores": len(per_store),
            "connections_per_store": per_store,
            "connections_total": stats.connections_total,
            "messages_received": stats.messages_received,
            "events_sent_live": stats.events_sent_live,
            "events_replayed": stats.events_replayed,
            "resyncs": stats.resyncs,
            "redis_reconnects": stats.redis_reconnects,
            "closes": {str(code): count for code, count in sorted(stats.closes.items())},
        }

    # --- the subscription ------------------------------------------------------------------

    async def _subscribe(self, *channels: str) -> None:
        """Send SUBSCRIBE (under the lock); a failure is left to the reader's reconnect."""
        if self._pubsub is None:
            return  # the reader subscribes every registered channel when it connects
        self._unconfirmed.update(channels)
        try:
            await self._pubsub.subscribe(*channels)
        except Exception:
            logger.warning("SUBSCRIBE %s failed; waiting for the reconnect", channels)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._connect()
                backoff = 0.1
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "stream hub lost its Redis subscription (%s: %s); reconnecting in %.1f s",
                    type(exc).__name__,
                    exc,
                    backoff,
                )
            await self._drop_pubsub()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def _connect(self) -> None:
        async with self._lock:
            pubsub = self._redis.pubsub()
            channels = [*self._ready, self._control_channel]
            self._unconfirmed = Counter(channels)
            await pubsub.subscribe(*channels)
            self._pubsub = pubsub
            if self._connected_once:
                self.stats.redis_reconnects += 1
                self._catch_up_pending = True
            self._connected_once = True

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _read(self) -> None:
        while self._pubsub is not None:
            message = await self._pubsub.get_message(timeout=_READ_POLL_S)
            if message is None:
                continue
            kind = message.get("type")
            if kind == "message":
                self._dispatch(str(message["channel"]), message["data"])
            elif kind == "subscribe":
                self._confirmed(str(message["channel"]))

    def _confirmed(self, channel: str) -> None:
        self._unconfirmed[channel] -= 1
        if self._unconfirmed[channel] > 0:
            return  # a later SUBSCRIBE of the same channel is still in flight
        del self._unconfirmed[channel]
        ready = self._ready.get(channel)
        if ready is not None and not ready.done():
            ready.set_result(None)
        if channel == self._control_channel and self._catch_up_pending:
            self._catch_up_pending = False
            for local in list(self._subscribers.values()):
                for subscriber in list(local):
                    subscriber.offer_catch_up()

    def _dispatch(self, channel: str, data: Any) -> None:
        self.stats.messages_received += 1
        if not channel.startswith(CHANNEL_PREFIX):
            return
        try:
            store_id = uuid.UUID(channel.removeprefix(CHANNEL_PREFIX))
        except ValueError:
            return
        local = self._subscribers.get(store_id)
        if not local:
            return
        try:
            payload = json.loads(data)
            seq = int(payload["seq"])
            named_store = uuid.UUID(str(payload["store_id"]))
        except (ValueError, TypeError, KeyError):
            logger.warning("dropping a malformed message on %s", channel)
            return
        if named_store != store_id:
            # A device only ever receives its own store's events, whatever lands on the channel.
            logger.error("dropping an event of store %s published on %s", named_store, channel)
            return
        text = data if isinstance(data, str) else json.dumps(payload)
        traceparent = payload.get(TRACEPARENT)
        if not isinstance(traceparent, str):
            for subscriber in list(local):
                subscriber.offer_live(seq, text)
            return
        # The push continues the trace of the request that made the event (the payment that
        # settled a tab): one span per fan-out, as a child of that request's span.
        with tracer("smarttab").start_as_current_span(
            f"push {payload.get('event', 'event')}",
            context=extract_context({TRACEPARENT: traceparent}),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "websocket",
                "messaging.destination.name": channel,
                "mpac.store_id": str(store_id),
                "mpac.event_seq": seq,
                "mpac.recipients": len(local),
            },
        ):
            for subscriber in list(local):
                subscriber.offer_live(seq, text)
