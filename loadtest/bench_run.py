"""The benchmark's run: platform, tenant, scenarios in order, and the report."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform as host_platform
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

from loadtest.bench_fleet import Fleet, provision
from loadtest.bench_load import (
    CardPayment,
    CpuMeter,
    DeviceToken,
    FanoutTracker,
    Health,
    Notice,
    Result,
    Window,
    close_sockets,
    closed_loop,
    http_client,
    open_sockets,
    percentile,
    process_rss,
    summarize,
)
from loadtest.bench_platform import BenchPlatform, bench_platform, raise_open_files_limit

T = TypeVar("T")

NOTE = (
    "The load generator and every server share this machine's CPUs: the figures are a floor "
    "for this hardware, not the platform's capacity."
)


@dataclass(frozen=True)
class BenchOptions:
    clients: int = 16
    warmup_s: float = 3.0
    duration_s: float = 15.0
    scenarios: tuple[str, ...] = ("payment", "token", "fanout", "idle")
    workers: tuple[int, ...] = (1, 2)
    ws_devices: int = 100
    ws_publishers: int = 4
    idle_connections: int = 2000
    terminals: int = 16
    database_url: str = ""
    redis_url: str = ""
    profile: str | None = None
    # MPAC_DB_POOL_SIZE of every service process (None: the settings' default).
    db_pool_size: int | None = None


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or host_platform.processor(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "system": f"{host_platform.system()} {host_platform.release()}",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


class Runner:
    def __init__(self, options: BenchOptions, platform: BenchPlatform, progress: bool) -> None:
        self.options = options
        self.platform = platform
        self.progress = progress
        self.window = Window(options.warmup_s, options.duration_s)
        self.results: list[Result] = []

    def say(self, text: str) -> None:
        if self.progress:
            print(f"[bench] {text}", file=sys.stderr, flush=True)

    def cpu_meter(self) -> CpuMeter:
        def groups() -> dict[str, list[int]]:
            listed: dict[str, list[int]] = {"generator": [os.getpid()]}
            for name, process in self.platform.services.items():
                listed[name] = process.server_pids()
            listed.update(self.platform.infrastructure_pids())
            return listed

        return CpuMeter(groups)

    async def http_scenario(
        self,
        name: str,
        label: str,
        service: str,
        operation_for: Any,
        *,
        clients: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Result:
        clients = clients or self.options.clients
        self.say(f"{label}: {clients} clients, {self.window.duration_s:g} s")
        meter = self.cpu_meter()
        async with http_client(self.platform.url_of(service)) as http:
            outcome = await closed_loop(
                operation_for(http), clients=clients, window=self.window, cpu=meter
            )
        result = summarize(
            name, label, service, clients=clients, window=self.window, outcome=outcome, extra=extra
        )
        if meter.started:
            result.extra["processes_started"] = meter.started
        self.results.append(result)
        return result

    async def ceiling(
        self, service: str, *, name: str | None = None, label: str | None = None
    ) -> Result:
        return await self.http_scenario(
            name or f"ceiling_{service}",
            label or f"{service} GET /healthz (ceiling)",
            service,
            Health,
        )

    async def payments(self, portal: httpx.AsyncClient, fleet: Fleet, workers: int) -> None:
        suffix = f"_{workers}w"
        if workers != self.platform.services["pgw"].workers:
            self.say(f"restarting pgw with {workers} worker processes")
            self.platform.restart("pgw", workers=workers)
        worker_label = f"{workers} worker{'s' if workers > 1 else ''}"
        ceiling = await self.ceiling(
            "pgw", name=f"ceiling_pgw{suffix}", label=f"pgw GET /healthz (ceiling, {worker_label})"
        )
        result = await self.http_scenario(
            f"payment{suffix}",
            f"payment POST /v1/payments ({worker_label})",
            "pgw",
            lambda http: CardPayment(http, portal, fleet),
            extra={"pgw_workers": workers},
        )
        self._ratio(result, ceiling)

    @staticmethod
    def _ratio(result: Result, ceiling: Result) -> None:
        result.ceiling = ceiling.name
        result.ratio = result.rps / ceiling.rps if ceiling.rps else None

    async def tokens(self, fleet: Fleet) -> None:
        ceiling = await self.ceiling("portal")
        result = await self.http_scenario(
            "token",
            "device token POST /oauth2/token",
            "portal",
            lambda http: DeviceToken(http, fleet),
        )
        self._ratio(result, ceiling)

    async def fanout(self, portal: httpx.AsyncClient, fleet: Fleet) -> None:
        options = self.options
        ceiling = await self.ceiling("smarttab")
        tracker = FanoutTracker(options.ws_devices)
        base_url = self.platform.url_of("smarttab")
        self.say(f"opening {options.ws_devices} device sockets for the fan-out")
        sockets, _, failures = await open_sockets(
            base_url, fleet.devices, portal, options.ws_devices, on_event=tracker.arrived
        )
        if len(sockets) < options.ws_devices:
            await close_sockets(sockets)
            raise RuntimeError(f"could not open the fan-out sockets: {failures[:3]}")
        try:
            label = (
                f"ws fan-out: notice to {options.ws_devices} devices "
                f"({options.ws_publishers} publishers)"
            )
            delivered_before = tracker.deliveries
            started = time.perf_counter()
            result = await self.http_scenario(
                "fanout",
                label,
                "smarttab",
                lambda http: Notice(http, portal, fleet, tracker),
                clients=options.ws_publishers,
            )
            elapsed = time.perf_counter() - started
            result.extra.update(
                devices=options.ws_devices,
                publishers=options.ws_publishers,
                events_per_s=round(result.rps, 1),
                deliveries_per_s=round(result.rps * options.ws_devices, 1),
                deliveries_total=tracker.deliveries - delivered_before,
                deliveries_per_s_whole_run=round(
                    (tracker.deliveries - delivered_before) / elapsed, 1
                ),
                broken_sockets=sum(1 for socket in sockets if socket.closed_with),
            )
            self._ratio(result, ceiling)
        finally:
            await close_sockets(sockets)

    async def idle(self, portal: httpx.AsyncClient, fleet: Fleet) -> dict[str, Any]:
        count = self.options.idle_connections
        self.say("restarting smarttab for a clean memory reading")
        smarttab = self.platform.restart("smarttab")
        base_url = self.platform.url_of("smarttab")
        pids = smarttab.server_pids()
        # Warm-up: the first sockets load code and fill caches, which is not per-connection.
        warm, _, _ = await open_sockets(base_url, fleet.devices, portal, 20)
        await close_sockets(warm)
        await asyncio.sleep(2)
        rss_before = process_rss(pids)
        self.say(f"opening {count} idle device sockets on smarttab (pid {pids})")
        started = time.perf_counter()
        sockets, setup, failures = await open_sockets(base_url, fleet.devices, portal, count)
        open_s = time.perf_counter() - started
        await asyncio.sleep(3)
        rss_after = process_rss(pids)
        alive = sum(1 for socket in sockets if socket.task is not None and not socket.task.done())
        client_rss = process_rss([os.getpid()])
        await close_sockets(sockets)
        held = len(sockets)
        per_connection = (rss_after - rss_before) / held if held else None
        return {
            "requested": count,
            "held": held,
            "alive_after_settle": alive,
            "failed": len(failures),
            "failure_examples": failures[:3],
            "open_s": round(open_s, 2),
            "connections_per_s": round(held / open_s, 1) if open_s else None,
            "setup_p50_ms": _ms(percentile(setup, 0.5)),
            "setup_p95_ms": _ms(percentile(setup, 0.95)),
            "setup_p99_ms": _ms(percentile(setup, 0.99)),
            "server_rss_before_mib": round(rss_before / 2**20, 1),
            "server_rss_after_mib": round(rss_after / 2**20, 1),
            "server_kib_per_connection": round(per_connection / 1024, 1)
            if per_connection is not None
            else None,
            "generator_rss_mib": round(client_rss / 2**20, 1),
        }


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """On uvloop when it is installed (uvicorn[standard] brings it): a lighter generator."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] depends on it
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


async def _set_provider_latency_zero(platform: BenchPlatform) -> dict[str, Any]:
    settings = platform.settings
    headers = {"authorization": f"Bearer {settings.provider_api_key}"}
    async with httpx.AsyncClient(base_url=platform.url_of("provider"), headers=headers) as http:
        response = await http.post(
            "/v1/_control/config", json={"latency_ms": 0, "failure_rate": 0.0}
        )
        response.raise_for_status()
        config: dict[str, Any] = (await http.get("/v1/_control/config")).json()
    if config.get("latency_ms") != 0:
        raise RuntimeError(f"the provider's latency is not zero: {config}")
    return config


async def _run(options: BenchOptions, platform: BenchPlatform, progress: bool) -> dict[str, Any]:
    runner = Runner(options, platform, progress)
    runner.say("provisioning a tenant and enrolling terminals")
    fleet = await provision(platform.settings, terminals=options.terminals)
    provider_config = await _set_provider_latency_zero(platform)
    idle: dict[str, Any] | None = None
    async with httpx.AsyncClient(base_url=platform.url_of("portal"), timeout=30) as portal:
        if "payment" in options.scenarios:
            await runner.payments(portal, fleet, options.workers[0])
        if "token" in options.scenarios:
            await runner.tokens(fleet)
        if "fanout" in options.scenarios:
            await runner.fanout(portal, fleet)
        if "payment" in options.scenarios:
            for workers in options.workers[1:]:
                await runner.payments(portal, fleet, workers)
        if "idle" in options.scenarios and options.idle_connections:
            idle = await runner.idle(portal, fleet)
    settings = platform.settings
    return {
        "results": [result.as_dict() for result in runner.results],
        "idle_websockets": idle,
        "setup": {
            "provider": provider_config,
            "terminals": len(fleet.devices),
            "db_pool_size": settings.db_pool_size,
            "db_max_overflow": settings.db_max_overflow,
            "embedded_postgres": platform.infra.postgres is not None,
            "embedded_redis": platform.infra.redis is not None,
        },
    }


def run_bench(options: BenchOptions, *, progress: bool = True) -> dict[str, Any]:
    """Run the benchmark; the report (also printed as a table unless ``progress`` is off)."""
    limit = raise_open_files_limit(max(4096, 2 * options.idle_connections + 1024))
    report: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "note": NOTE,
        "options": {**options.__dict__, "open_files_limit": limit},
    }
    profile = Path(options.profile).resolve() if options.profile else None
    with bench_platform(
        database_url=options.database_url,
        redis_url=options.redis_url,
        db_pool_size=options.db_pool_size,
    ) as platform:
        if profile is not None:
            platform.restart("pgw", profile_to=profile)
        report.update(run_async(_run(options, platform, progress)))
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["ok"] = all(
        result["errors"] == 0 and result["completed"] > 0 for result in report["results"]
    ) and (report["idle_websockets"] is None or report["idle_websockets"]["failed"] == 0)
    if profile is not None:
        from loadtest.bench_profile import summary

        report["profile"] = str(profile)
        if progress:
            print(summary(str(profile)), file=sys.stderr)
    if progress:
        print(render(report))
    return report


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(report: dict[str, Any]) -> str:
    """The report as the table ``docs/performance.md`` shows."""
    m = report["machine"]
    lines = [
        f"mpac bench, {report['started_at']}: {m['cpus']} CPUs ({m['cpu_model']}), "
        f"{m['memory_gib']} GiB, Python {m['python']}; load average "
        f"{m['load_average_at_start'][0]} at start, {m['load_average_at_end'][0]} at end",
        report["note"],
        "",
        f"{'scenario':<52} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'errors':>6} {'vs ceiling':>10}",
    ]
    for r in report["results"]:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(
            f"{r['label']:<52} {r['clients']:>7} {r['rps']:>8.1f} {_cell(r['p50_ms']):>8} "
            f"{_cell(r['p95_ms']):>8} {_cell(r['p99_ms']):>8} {r['errors']:>6} {ratio:>10}"
        )
    fanout = next((r for r in report["results"] if r["name"] == "fanout"), None)
    if fanout is not None:
        x = fanout["extra"]
        lines.append(
            f"  fan-out: {x['events_per_s']} events/s x {x['devices']} devices = "
            f"{x['deliveries_per_s']} deliveries/s; latency is POST until the last device has "
            "the event"
        )
    idle = report.get("idle_websockets")
    if idle:
        lines += [
            "",
            f"idle device WebSockets on one smarttab process: {idle['held']} of "
            f"{idle['requested']} held ({idle['failed']} failed), opened in {idle['open_s']} s "
            f"({idle['connections_per_s']}/s; setup p50 {idle['setup_p50_ms']} ms, "
            f"p99 {idle['setup_p99_ms']} ms)",
            f"  server RSS {idle['server_rss_before_mib']} -> {idle['server_rss_after_mib']} MiB:"
            f" {idle['server_kib_per_connection']} KiB per connection",
        ]
    lines += [
        "",
        "CPU during each measured window (% of one core; machine: every CPU, anyone's work),",
        "and PostgreSQL connections opened during it (pooled connections churning):",
    ]
    for r in report["results"]:
        usage = ", ".join(f"{name} {value:.0f}" for name, value in r["cpu"].items() if value >= 1)
        opened = r["extra"].get("processes_started", {}).get("postgres")
        churn = f"; {opened} new database connections" if opened else ""
        lines.append(f"  {r['name']:<22} {usage}{churn}")
    return "\n".join(lines)
