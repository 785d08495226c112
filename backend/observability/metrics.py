"""Prometheus metrics: one registry per service, served at that service's ``/metrics``.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` histograms, base units);
every series of a service carries its ``service`` label so one scrape config can gather all four.
``mpac up`` runs every service in one process, so the registries are per service, not the
process-wide default: each ``/metrics`` shows its own service only. Labels are bounded: the route
template, never the raw path (ids would make a series per payment), and status codes.

Domain code counts through :func:`service_metrics`, e.g. pgw's payment transitions and the
provider's webhook deliveries; gauges that already exist as state (the database pool, the
smarttab hub's sockets) are read when scraped, so the hot path pays nothing for them.

Under ``mpac serve --workers N`` the supervisor gives its workers one
``PROMETHEUS_MULTIPROC_DIR``: counters, histograms and the in-flight gauge are then kept in
files there, and whichever worker answers a scrape reports the sum over all of them (the
client library's multiprocess mode). The read-at-scrape gauges stay those of the answering
worker, labelled with its ``pid``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics", "render_metrics", "service_metrics"]

# Seconds; spans a health check (~2 ms) to a payment waiting on a slow acquirer (~10 s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class ServiceMetrics:
    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # What is read when scraped (pool, sockets): per process, whatever the mode.
    scrape_time: CollectorRegistry = field(default_factory=CollectorRegistry)
    # Read-at-scrape sources by name; the latest added of each name is read. A stack, not one
    # slot: a second app of the service in the process (tests, a restart) stops without taking
    # the first one's source with it.
    _sources: dict[str, list[Callable[[], Iterable[Metric]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        labels = ["service"]
        registry = self.registry
        self.http_requests = Counter(
            "mpac_http_requests",
            "HTTP requests answered, by route template and status code.",
            [*labels, "method", "route", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "mpac_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            [*labels, "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.http_in_flight = Gauge(
            "mpac_http_requests_in_flight",
            "Requests being handled now.",
            labels,
            registry=registry,
            # Summed over the live workers of `serve --workers` (ignored in one process).
            multiprocess_mode="livesum",
        )
        self.problems = Counter(
            "mpac_problems",
            "Error answers (RFC 9457 problem details) by status and stable code.",
            [*labels, "status", "code"],
            registry=registry,
        )
        self.payments = Counter(
            "mpac_payments",
            "Payments reaching a status (pgw), counted when the change is committed.",
            [*labels, "status", "method"],
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "mpac_webhook_deliveries",
            "Webhook deliveries: attempts by the provider (sent) and their handling by pgw "
            "(received), by outcome.",
            [*labels, "direction", "outcome"],
            registry=registry,
        )
        self.scrape_time.register(_SourceCollector(self))

    def add_source(self, name: str, source: Callable[[], Iterable[Metric]]) -> None:
        """Read ``source`` at every scrape, in place of earlier ones of ``name`` until removed."""
        self._sources.setdefault(name, []).append(source)

    def remove_source(self, name: str, source: Callable[[], Iterable[Metric]]) -> None:
        stack = self._sources.get(name, [])
        if source in stack:
            stack.remove(source)


class _SourceCollector(Collector):
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        worker = str(os.getpid()) if multiprocess_dir() else None
        for stack in list(self.metrics._sources.values()):
            if not stack:
                continue
            for metric in stack[-1]():
                yield _with_worker(metric, worker) if worker else metric


def _with_worker(metric: Metric, pid: str) -> Metric:
    labelled = Metric(metric.name, metric.documentation, metric.type, metric.unit)
    for sample in metric.samples:
        labelled.add_sample(sample.name, {**sample.labels, "pid": pid}, sample.value)
    return labelled


def multiprocess_dir() -> str | None:
    """Where the workers of one ``serve --workers`` share their metrics (None: one process)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


_lock = threading.Lock()
_by_service: dict[str, ServiceMetrics] = {}


def service_metrics(service: str) -> ServiceMetrics:
    """The metrics of ``service`` in this process (created on first use)."""
    with _lock:
        metrics = _by_service.get(service)
        if metrics is None:
            metrics = _by_service[service] = ServiceMetrics(service)
        return metrics


def render_metrics(service: str) -> bytes:
    """The Prometheus text exposition of ``service``: its metrics (summed over the workers of
    ``serve --workers``) and the gauges read from this process."""
    metrics = service_metrics(service)
    if multiprocess_dir():
        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared)
        counted = generate_latest(shared)
    else:
        counted = generate_latest(metrics.registry)
    return counted + generate_latest(metrics.scrape_time)


def database_pool_source(service: str, engine: AsyncEngine) -> Callable[[], Iterable[Metric]]:
    """Gauges of the engine's connection pool, read when scraped."""
    pool = engine.sync_engine.pool

    def collect() -> Iterable[Metric]:
        if not isinstance(pool, QueuePool):
            return []  # a NullPool (tests, PgBouncer setups) keeps nothing to report
        size = GaugeMetricFamily(
            "mpac_db_pool_size", "Connections the pool keeps open.", labels=["service"]
        )
        size.add_metric([service], float(pool.size()))
        connections = GaugeMetricFamily(
            "mpac_db_pool_connections",
            "The pool's connections by state: in use by a request or idle in the pool; "
            "overflow counts those open beyond the pool size.",
            labels=["service", "state"],
        )
        connections.add_metric([service, "in_use"], float(pool.checkedout()))
        connections.add_metric([service, "idle"], float(pool.checkedin()))
        connections.add_metric([service, "overflow"], float(max(0, pool.overflow())))
        return [size, connections]

    return collect
