"""Closed-loop load generators and what they measure.

A scenario is N clients, each sending its next request as soon as its previous one answered
(closed loop: the offered load adapts to the server, so the throughput measured is what the
stack sustains at that concurrency). Requests that start during the warm-up, or end after the
measuring window, are not counted. Only the request itself is timed: preparing it (a fresh
device token when the old one ages, signing a client assertion) is not.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect

from loadtest.bench_fleet import Device, Fleet
from loadtest.bench_http import LeanClient, Response

APPROVED_VISA = "4242424242424242"


class UnexpectedAnswer(Exception):
    """A request answered, but not as the scenario expects (status and start of the body)."""


def expect(response: Response, status: int, check: Callable[[Any], bool]) -> bool:
    """True when ``response`` has ``status`` and a JSON body passing ``check``; else raises."""
    if response.status_code == status:
        try:
            if check(response.json()):
                return True
        except ValueError:
            pass
    raise UnexpectedAnswer(f"{response.status_code} {response.content[:160]!r}")


def percentile(ordered: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), math.ceil(share * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Result:
    """One scenario's figures; latencies in milliseconds, CPU in % of one core."""

    name: str
    label: str
    service: str
    clients: int
    duration_s: float
    completed: int
    errors: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    ceiling: str | None = None
    ratio: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    error_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            key: (round(value, 3) if isinstance(value, float) else value)
            for key, value in self.__dict__.items()
        }


class CpuMeter:
    """CPU seconds used by groups of processes over a window, as % of one core.

    The groups are listed when the window opens (after the warm-up), so that database backends
    and workers started by the warm-up's connections are counted.
    """

    def __init__(self, groups: Callable[[], Mapping[str, Sequence[int]]]) -> None:
        self._list_groups = groups
        self.groups: dict[str, list[int]] = {}
        # Processes that appeared during the window, per group: database backends of new
        # pooled connections (a pool smaller than the concurrency opens and closes them).
        self.started: dict[str, int] = {}
        self._start: dict[str, float] = {}
        self._started_at = 0.0

    @staticmethod
    def _cpu_seconds(pids: Sequence[int]) -> float:
        total = 0.0
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    @staticmethod
    def _machine_busy_seconds() -> float:
        times = psutil.cpu_times()
        return float(sum(times)) - times.idle - getattr(times, "iowait", 0.0)

    def start(self) -> None:
        self.groups = {name: list(pids) for name, pids in self._list_groups().items()}
        self._started_at = time.perf_counter()
        self._start = {
            f"{name}:{pid}": self._cpu_seconds([pid])
            for name, pids in self.groups.items()
            for pid in pids
        }
        self._start["machine"] = self._machine_busy_seconds()

    def stop(self) -> dict[str, float]:
        """% of one core per group, and ``machine``: every CPU of the host (anyone's work).

        A process that ended during the window (a database backend of a connection the pool
        closed) takes its CPU time with it: it is left out rather than counted negative.
        """
        elapsed = max(time.perf_counter() - self._started_at, 1e-9)
        usage: dict[str, float] = {}
        for name, pids in self.groups.items():
            used = 0.0
            for pid in pids:
                if psutil.pid_exists(pid):
                    used += max(self._cpu_seconds([pid]) - self._start[f"{name}:{pid}"], 0.0)
            usage[name] = round(100 * used / elapsed, 1)
        busy = self._machine_busy_seconds() - self._start["machine"]
        usage["machine"] = round(100 * busy / elapsed, 1)
        now = self._list_groups()
        self.started = {
            name: len(set(now.get(name, ())) - set(pids))
            for name, pids in self.groups.items()
            if set(now.get(name, ())) - set(pids)
        }
        return usage


class Operation(Protocol):
    """One kind of request: ``prepare`` is not timed, ``call`` is; ``call`` says if it worked."""

    async def prepare(self, client: int) -> Any: ...

    async def call(self, client: int, prepared: Any) -> bool: ...


@dataclass
class Window:
    warmup_s: float
    duration_s: float


async def closed_loop(
    operation: Operation,
    *,
    clients: int,
    window: Window,
    cpu: CpuMeter | None = None,
) -> tuple[list[float], int, list[str], dict[str, float]]:
    """Run ``clients`` closed loops; (sorted latencies in s, errors, error examples, CPU)."""
    loop_start = time.perf_counter()
    measure_from = loop_start + window.warmup_s
    end = measure_from + window.duration_s
    latencies: list[float] = []
    errors = 0
    examples: Counter[str] = Counter()

    async def client(index: int) -> None:
        nonlocal errors
        while time.perf_counter() < end:
            try:
                prepared = await operation.prepare(index)
            except Exception as exc:
                examples[f"prepare: {type(exc).__name__}: {exc}"[:200]] += 1
                errors += 1
                await asyncio.sleep(0.1)
                continue
            started = time.perf_counter()
            if started >= end:
                return
            try:
                ok = await operation.call(index, prepared)
                problem = "" if ok else "unexpected answer"
            except Exception as exc:
                ok, problem = False, f"{type(exc).__name__}: {exc}"[:200]
            finished = time.perf_counter()
            if started >= measure_from and finished <= end:
                if ok:
                    latencies.append(finished - started)
                else:
                    errors += 1
                    examples[problem] += 1

    async def meter() -> dict[str, float]:
        if cpu is None:
            return {}
        await asyncio.sleep(max(measure_from - time.perf_counter(), 0))
        cpu.start()
        await asyncio.sleep(max(end - time.perf_counter(), 0))
        return cpu.stop()

    meter_task = asyncio.create_task(meter())
    await asyncio.gather(*(client(i) for i in range(clients)))
    usage = await meter_task
    latencies.sort()
    return latencies, errors, [f"{n}x {text}" for text, n in examples.most_common(3)], usage


def summarize(
    name: str,
    label: str,
    service: str,
    *,
    clients: int,
    window: Window,
    outcome: tuple[list[float], int, list[str], dict[str, float]],
    extra: dict[str, Any] | None = None,
) -> Result:
    latencies, errors, examples, usage = outcome

    def ms(value: float | None) -> float | None:
        return None if value is None else value * 1000

    return Result(
        name=name,
        label=label,
        service=service,
        clients=clients,
        duration_s=window.duration_s,
        completed=len(latencies),
        errors=errors,
        rps=len(latencies) / window.duration_s,
        p50_ms=ms(percentile(latencies, 0.50)),
        p95_ms=ms(percentile(latencies, 0.95)),
        p99_ms=ms(percentile(latencies, 0.99)),
        cpu=usage,
        extra=extra or {},
        error_examples=examples,
    )


def http_client(base_url: str) -> LeanClient:
    """Keep-alive connections, one per concurrent client (opened as the clients need them)."""
    return LeanClient(base_url)


# --- the operations ------------------------------------------------------------------------


class Health:
    """``GET /healthz``: the trivial endpoint of a service, its ceiling on this stack."""

    def __init__(self, http: LeanClient) -> None:
        self.http = http

    async def prepare(self, client: int) -> None:
        return None

    async def call(self, client: int, prepared: None) -> bool:
        return expect(await self.http.get("/healthz"), 200, lambda body: True)


class CardPayment:
    """``POST /v1/payments``: a contactless card payment, automatic capture, new key each time.

    Automatic capture makes create the whole payment (authorize and capture at the provider in
    one call, status ``captured``): there is no separate confirm step in this flow.
    """

    def __init__(self, pgw: LeanClient, portal: httpx.AsyncClient, fleet: Fleet) -> None:
        self.pgw = pgw
        self.portal = portal
        self.devices = fleet.devices

    async def prepare(self, client: int) -> dict[str, str]:
        device = self.devices[client % len(self.devices)]
        token = await device.fresh_token(self.portal)
        return {"authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}

    async def call(self, client: int, prepared: dict[str, str]) -> bool:
        response = await self.pgw.post_json(
            "/v1/payments",
            headers=prepared,
            payload={
                "amount": 1200,
                "currency": "JPY",
                "method": "card_present",
                "entry_mode": "contactless",
                "capture_method": "automatic",
                "card": {"pan": APPROVED_VISA, "exp_month": 12, "exp_year": 2030},
            },
        )
        return expect(response, 201, lambda body: body.get("status") == "captured")


class DeviceToken:
    """``POST /oauth2/token``: client_credentials with a fresh ``private_key_jwt`` assertion."""

    def __init__(self, portal: LeanClient, fleet: Fleet) -> None:
        self.portal = portal
        self.devices = fleet.devices

    async def prepare(self, client: int) -> bytes:
        return urlencode(self.devices[client % len(self.devices)].token_form()).encode()

    async def call(self, client: int, prepared: bytes) -> bool:
        response = await self.portal.request(
            "POST",
            "/oauth2/token",
            body=prepared,
            content_type="application/x-www-form-urlencoded",
        )
        return expect(response, 200, lambda body: "access_token" in body)


# --- WebSockets -----------------------------------------------------------------------------


def stream_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/v1/stream"


class FanoutTracker:
    """Counts deliveries of each event seq; knows when all K sockets have one."""

    def __init__(self, sockets: int) -> None:
        self.sockets = sockets
        self._counts: defaultdict[int, int] = defaultdict(int)
        self._done: dict[int, float] = {}
        self._waiters: dict[int, asyncio.Future[float]] = {}
        self.deliveries = 0

    def arrived(self, seq: int) -> None:
        self.deliveries += 1
        self._counts[seq] += 1
        if self._counts[seq] == self.sockets:
            del self._counts[seq]
            now = time.perf_counter()
            waiter = self._waiters.pop(seq, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(now)
            else:
                self._done[seq] = now

    async def all_received(self, seq: int, timeout_s: float) -> float:
        if seq in self._done:
            return self._done.pop(seq)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[seq] = waiter
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        finally:
            self._waiters.pop(seq, None)
            self._counts.pop(seq, None)


class DeviceSocket:
    """One device's ``/v1/stream`` socket: answers pings, reauths, reports events."""

    def __init__(
        self,
        connection: ClientConnection,
        device: Device,
        portal: httpx.AsyncClient,
        on_event: Callable[[int], None] | None,
    ) -> None:
        self.connection = connection
        self.device = device
        self.portal = portal
        self.on_event = on_event
        self.task: asyncio.Task[None] | None = None
        self.closed_with: str | None = None

    @classmethod
    async def open(
        cls,
        base_url: str,
        device: Device,
        portal: httpx.AsyncClient,
        on_event: Callable[[int], None] | None = None,
    ) -> DeviceSocket:
        """Connected past ``hello`` and ``resumed`` (live events only from here on)."""
        token = await device.fresh_token(portal)
        connection = await connect(
            stream_url(base_url),
            additional_headers={"Authorization": f"Bearer {token}"},
            proxy=None,
            open_timeout=60,
            close_timeout=2,
        )
        try:
            hello = json.loads(await asyncio.wait_for(connection.recv(), 30))
            if hello.get("type") != "hello":
                raise RuntimeError(f"expected hello, got {hello}")
            await connection.send(json.dumps({"type": "resume", "last_seq": None}))
            while True:
                message = json.loads(await asyncio.wait_for(connection.recv(), 30))
                if message.get("type") == "resumed":
                    break
        except BaseException:
            await connection.close()
            raise
        socket = cls(connection, device, portal, on_event)
        socket.task = asyncio.create_task(socket._read())
        return socket

    async def _read(self) -> None:
        reauth_at = time.monotonic() + 60
        try:
            async for frame in self.connection:
                message = json.loads(frame)
                kind = message.get("type")
                if kind == "event":
                    if self.on_event is not None:
                        self.on_event(int(message["seq"]))
                elif kind == "ping":
                    await self.connection.send(json.dumps({"type": "pong", "t": message["t"]}))
                if time.monotonic() > reauth_at:
                    reauth_at = time.monotonic() + 60
                    token = await self.device.fresh_token(self.portal)
                    await self.connection.send(json.dumps({"type": "reauth", "token": token}))
        except Exception as exc:
            self.closed_with = f"{type(exc).__name__}: {exc}"
        finally:
            code = self.connection.close_code
            if code not in (None, 1000) and self.closed_with is None:
                self.closed_with = f"closed with {code} {self.connection.close_reason}"

    async def close(self) -> None:
        await self.connection.close()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


async def open_sockets(
    base_url: str,
    devices: Sequence[Device],
    portal: httpx.AsyncClient,
    count: int,
    *,
    on_event: Callable[[int], None] | None = None,
    in_flight: int = 50,
) -> tuple[list[DeviceSocket], list[float], list[str]]:
    """Open ``count`` sockets, ``in_flight`` at a time; (sockets, sorted setup times, errors)."""
    gate = asyncio.Semaphore(in_flight)
    setup: list[float] = []
    failures: list[str] = []

    async def one(index: int) -> DeviceSocket | None:
        async with gate:
            started = time.perf_counter()
            try:
                socket = await DeviceSocket.open(
                    base_url, devices[index % len(devices)], portal, on_event
                )
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                return None
            setup.append(time.perf_counter() - started)
            return socket

    opened = await asyncio.gather(*(one(i) for i in range(count)))
    setup.sort()
    return [socket for socket in opened if socket is not None], setup, failures


async def close_sockets(sockets: Sequence[DeviceSocket]) -> None:
    for start in range(0, len(sockets), 200):
        await asyncio.gather(
            *(socket.close() for socket in sockets[start : start + 200]), return_exceptions=True
        )


class Notice:
    """``POST /v1/stream/notices`` by one device, timed until every socket of the store has it."""

    def __init__(
        self,
        smarttab: LeanClient,
        portal: httpx.AsyncClient,
        fleet: Fleet,
        tracker: FanoutTracker,
        timeout_s: float = 10.0,
    ) -> None:
        self.smarttab = smarttab
        self.portal = portal
        self.devices = fleet.devices
        self.tracker = tracker
        self.timeout_s = timeout_s

    async def prepare(self, client: int) -> dict[str, str]:
        token = await self.devices[client % len(self.devices)].fresh_token(self.portal)
        return {"authorization": f"Bearer {token}"}

    async def call(self, client: int, prepared: dict[str, str]) -> bool:
        response = await self.smarttab.post_json(
            "/v1/stream/notices",
            {"text": "bench: table 4 asks for the bill"},
            headers=prepared,
        )
        expect(response, 201, lambda body: "seq" in body)
        seq = int(response.json()["seq"])
        try:
            await self.tracker.all_received(seq, self.timeout_s)
        except TimeoutError as exc:
            raise UnexpectedAnswer(
                f"event {seq} did not reach all {self.tracker.sockets} sockets "
                f"within {self.timeout_s:g} s"
            ) from exc
        return True


def process_rss(pids: Sequence[int]) -> int:
    """Resident memory of the processes, in bytes."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total
