"""The SLO gate: a load run fails when latency percentiles or the error rate break the targets.

The seed's targets (``shared/reference/technical-architecture.txt``): P50 < 200 ms, P95 < 500 ms,
P99 < 1000 ms, errors < 0.5 %. The gate judges every endpoint (locust's stats entry: request
type + name, i.e. ``POST /v1/payments``) with at least ``min_requests`` requests, the HTTP
requests and the WebSocket messages apart (many fast WebSocket messages must not hide slow HTTP),
and the aggregate of all of them; it prints a table with those figures per endpoint. Endpoints
matching ``exclude`` are shown but neither judged nor counted in the totals.

The math works on locust's own histogram (``StatsEntry.response_times``: response time rounded
the way locust rounds it → count) with locust's percentile rule, so the gate's figures are the
ones locust prints. :func:`install` hooks it on ``events.quitting``; it runs where the stats are
complete (the master in distributed mode, the only process otherwise) and sets
``environment.process_exit_code``: 0 when every judged figure meets its target, else 1 (so a
run within the error budget passes even though some requests failed).

Nothing here imports locust: the unit tests feed it synthetic stats.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtest.config import SloTargets

AGGREGATE = "Aggregated"
HTTP_SUBTOTAL = "HTTP requests"
WS_SUBTOTAL = "messages"
WS = "WS"


@dataclass(frozen=True)
class EndpointStats:
    """What the gate needs of one locust stats entry."""

    method: str
    name: str
    num_requests: int
    num_failures: int
    # locust's histogram: rounded response time (ms) -> number of requests
    response_times: Mapping[int, int]


def round_response_time(ms: float) -> int:
    """locust's bucketing (``StatsEntry._log_response_time``), for synthetic stats."""
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return int(round(ms, -1))
    if ms < 10000:
        return int(round(ms, -2))
    return int(round(ms, -3))


def histogram(samples_ms: Iterable[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for sample in samples_ms:
        key = round_response_time(sample)
        counts[key] = counts.get(key, 0) + 1
    return counts


def percentile(response_times: Mapping[int, int], percent: float) -> float | None:
    """locust's ``calculate_response_time_percentile``: the smallest bucket below which at
    least ``percent`` of the requests fall; None without requests."""
    total = sum(response_times.values())
    if total == 0:
        return None
    wanted = int(total * percent)
    processed = 0
    for response_time in sorted(response_times, reverse=True):
        processed += response_times[response_time]
        if total - processed <= wanted:
            return float(response_time)
    return float(min(response_times))  # pragma: no cover - the loop always returns


def merge(entries: Iterable[EndpointStats], method: str, name: str) -> EndpointStats:
    times: dict[int, int] = {}
    requests = failures = 0
    for entry in entries:
        requests += entry.num_requests
        failures += entry.num_failures
        for key, count in entry.response_times.items():
            times[key] = times.get(key, 0) + count
    return EndpointStats(method, name, requests, failures, times)


@dataclass(frozen=True)
class Row:
    method: str
    name: str
    requests: int
    failures: int
    rps: float
    error_rate_percent: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    judged: bool
    breaches: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.method} {self.name}".strip()


@dataclass(frozen=True)
class GateResult:
    targets: SloTargets
    duration_s: float
    rows: tuple[Row, ...]
    subtotals: tuple[Row, ...]
    total: Row
    problems: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def http_rps(self) -> float:
        """HTTP requests per second (the seed's RPS), without WebSocket messages."""
        return sum(row.rps for row in self.rows if row.method != WS)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "targets": asdict(self.targets),
            "duration_s": round(self.duration_s, 3),
            "http_rps": self.http_rps,
            "problems": list(self.problems),
            "total": asdict(self.total),
            "subtotals": [asdict(row) for row in self.subtotals],
            "endpoints": [asdict(row) for row in self.rows],
        }


def _row(entry: EndpointStats, targets: SloTargets, duration_s: float, *, judged: bool) -> Row:
    p50 = percentile(entry.response_times, 0.50)
    p95 = percentile(entry.response_times, 0.95)
    p99 = percentile(entry.response_times, 0.99)
    rate = 100.0 * entry.num_failures / entry.num_requests if entry.num_requests else 0.0
    breaches: list[str] = []
    if judged:
        for label, value, target in (
            ("P50", p50, targets.p50_ms),
            ("P95", p95, targets.p95_ms),
            ("P99", p99, targets.p99_ms),
        ):
            if value is not None and value >= target:
                breaches.append(f"{label} {value:.0f} ms >= {target:.0f} ms")
        if rate >= targets.error_rate_percent and entry.num_failures:
            breaches.append(f"errors {rate:.2f} % >= {targets.error_rate_percent:g} %")
    return Row(
        method=entry.method,
        name=entry.name,
        requests=entry.num_requests,
        failures=entry.num_failures,
        rps=entry.num_requests / duration_s if duration_s > 0 else 0.0,
        error_rate_percent=rate,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        judged=judged,
        breaches=tuple(breaches),
    )


def evaluate(
    entries: Iterable[EndpointStats],
    targets: SloTargets,
    *,
    duration_s: float,
    unhandled_errors: int = 0,
) -> GateResult:
    """Judge every endpoint with enough requests, and the aggregate of all of them.

    ``unhandled_errors`` (exceptions raised in user code, which locust keeps apart from the
    request stats) count as failed requests of the aggregate.
    """
    entries = sorted(entries, key=lambda e: (e.name, e.method))
    excluded = re.compile(targets.exclude) if targets.exclude else None

    def is_excluded(entry: EndpointStats) -> bool:
        return excluded is not None and bool(excluded.search(f"{entry.method} {entry.name}"))

    rows = tuple(
        _row(
            entry,
            targets,
            duration_s,
            judged=not is_excluded(entry) and entry.num_requests >= targets.min_requests,
        )
        for entry in entries
    )
    # Excluded endpoints stay out of the totals too; small ones count there.
    counted = [entry for entry in entries if not is_excluded(entry)]
    # WebSocket messages are many and fast: judged on their own, so they cannot hide slow HTTP.
    subtotals: list[Row] = []
    http = [entry for entry in counted if entry.method != WS]
    ws = [entry for entry in counted if entry.method == WS]
    if http and ws:
        subtotals.append(_row(merge(http, "", HTTP_SUBTOTAL), targets, duration_s, judged=True))
        subtotals.append(_row(merge(ws, WS, WS_SUBTOTAL), targets, duration_s, judged=True))
    aggregate = merge(counted, "", AGGREGATE)
    if unhandled_errors:
        aggregate = EndpointStats(
            aggregate.method,
            aggregate.name,
            aggregate.num_requests + unhandled_errors,
            aggregate.num_failures + unhandled_errors,
            aggregate.response_times,
        )
    total = _row(aggregate, targets, duration_s, judged=True)
    problems = [f"{row.label}: {breach}" for row in (*rows, *subtotals) for breach in row.breaches]
    problems += [f"{AGGREGATE}: {breach}" for breach in total.breaches]
    if total.requests == 0:
        problems.append("no requests were made")
    return GateResult(
        targets=targets,
        duration_s=duration_s,
        rows=rows,
        subtotals=tuple(subtotals),
        total=total,
        problems=tuple(problems),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_table(result: GateResult) -> str:
    """The gate's summary: one line per endpoint, the subtotals, the aggregate, the verdict."""
    targets = result.targets
    rows = [*result.rows, *result.subtotals, result.total]
    width = max([len(row.label) for row in rows] + [len("endpoint")])
    header = (
        f"{'endpoint':<{width}}  {'reqs':>8} {'fails':>6} {'err %':>6} {'req/s':>8} "
        f"{'p50':>6} {'p95':>6} {'p99':>6}  verdict"
    )
    lines = [
        f"SLO gate: P50 < {targets.p50_ms:g} ms, P95 < {targets.p95_ms:g} ms, "
        f"P99 < {targets.p99_ms:g} ms, errors < {targets.error_rate_percent:g} % "
        f"(endpoints judged from {targets.min_requests} requests; "
        f"{result.duration_s:.1f} s measured)",
        header,
        "-" * len(header),
    ]

    def line(row: Row) -> str:
        verdict = ("FAIL: " + "; ".join(row.breaches)) if row.breaches else "ok"
        if not row.judged:
            verdict = "(not judged)"
        return (
            f"{row.label:<{width}}  {row.requests:>8} {row.failures:>6} "
            f"{row.error_rate_percent:>6.2f} {row.rps:>8.2f} {_ms(row.p50_ms):>6} "
            f"{_ms(row.p95_ms):>6} {_ms(row.p99_ms):>6}  {verdict}"
        )

    lines += [line(row) for row in result.rows]
    lines.append("-" * len(header))
    lines += [line(row) for row in result.subtotals]
    lines.append(line(result.total))
    lines.append("")
    rate = f"{result.http_rps:.1f} HTTP req/s"
    if result.http_rps != result.total.rps:
        rate += f" ({result.total.rps:.1f}/s with WebSocket messages)"
    if result.passed:
        lines.append(f"SLO gate PASSED at {rate}")
    else:
        lines.append(f"SLO gate FAILED at {rate}:")
        lines += [f"  - {problem}" for problem in result.problems]
    return "\n".join(lines)


# --- locust glue (duck-typed: no locust import) --------------------------------------------


def collect(environment: Any) -> tuple[list[EndpointStats], float, int]:
    """The entries, measured duration and unhandled exception count of a locust environment."""
    stats = environment.stats
    entries = [
        EndpointStats(
            method=str(entry.method or ""),
            name=str(entry.name),
            num_requests=int(entry.num_requests),
            num_failures=int(entry.num_failures),
            response_times=dict(entry.response_times),
        )
        for entry in stats.entries.values()
    ]
    total = stats.total
    duration = max(0.0, float(total.last_request_timestamp or 0) - float(total.start_time or 0))
    runner = environment.runner
    exceptions = getattr(runner, "exceptions", {}) if runner is not None else {}
    unhandled = sum(int(item.get("count", 1)) for item in exceptions.values())
    return entries, duration, unhandled


def is_worker(environment: Any) -> bool:
    options = environment.parsed_options
    if options is not None and getattr(options, "worker", False):
        return True
    return type(environment.runner).__name__ == "WorkerRunner"


def gate(environment: Any, targets: SloTargets, *, report: str = "") -> GateResult:
    """Judge a finished run, print the table, set the process exit code (and write JSON)."""
    entries, duration, unhandled = collect(environment)
    result = evaluate(entries, targets, duration_s=duration, unhandled_errors=unhandled)
    print("\n" + format_table(result) + "\n", flush=True)
    environment.process_exit_code = result.exit_code
    if report:
        path = Path(report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result.to_json(), indent=1) + "\n", encoding="utf-8")
    return result


def install(events: Any, targets_of: Callable[[Any], tuple[SloTargets, str]]) -> None:
    """Run :func:`gate` when locust quits (not on workers: their stats went to the master).

    ``targets_of(environment)`` gives the targets and the JSON report path (from the options).
    """

    def on_quitting(environment: Any, **_kwargs: Any) -> None:
        if is_worker(environment):
            return
        targets, report = targets_of(environment)
        gate(environment, targets, report=report)

    events.quitting.add_listener(on_quitting)
