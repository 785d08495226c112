"""The SLO gate's math on synthetic stats (no locust in this process)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from loadtest.config import SloTargets
from loadtest.slo import (
    EndpointStats,
    evaluate,
    format_table,
    gate,
    histogram,
    install,
    percentile,
    round_response_time,
)

TARGETS = SloTargets()  # the seed's: 200 / 500 / 1000 ms, 0.5 %


def entry(
    name: str, samples: list[float], *, method: str = "GET", failures: int = 0
) -> EndpointStats:
    return EndpointStats(method, name, len(samples), failures, histogram(samples))


def test_percentiles_follow_locusts_rule() -> None:
    times = histogram(range(1, 101))  # 1..100 ms, one request each
    assert percentile(times, 0.50) == 51
    assert percentile(times, 0.95) == 96
    assert percentile(times, 0.99) == 100
    assert percentile({}, 0.5) is None
    # locust's buckets: exact below 100 ms, then 10 ms, 100 ms, 1 s steps
    assert [round_response_time(v) for v in (42.4, 123, 4567, 12_345)] == [42, 120, 4600, 12_000]


def test_percentiles_match_locust_itself() -> None:
    """Same histogram, same answer as locust's own function (in a subprocess: gevent)."""
    rng = random.Random(7)
    samples = [rng.lognormvariate(4, 0.8) for _ in range(5000)]
    times = histogram(samples)
    script = (
        "import json, sys\n"
        "from locust.stats import calculate_response_time_percentile as p\n"
        "times = {int(k): v for k, v in json.loads(sys.stdin.read()).items()}\n"
        "n = sum(times.values())\n"
        "print(json.dumps([p(times, n, q) for q in (0.5, 0.95, 0.99)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(times),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    theirs = json.loads(result.stdout)
    assert [percentile(times, q) for q in (0.5, 0.95, 0.99)] == theirs


def test_a_run_within_targets_passes() -> None:
    fast = [20.0 + i % 50 for i in range(1000)]
    result = evaluate(
        [entry("/v1/payments", fast, method="POST"), entry("/v1/tabs", fast)],
        TARGETS,
        duration_s=10,
    )
    assert result.passed
    assert result.exit_code == 0
    assert result.total.requests == 2000
    assert result.total.rps == pytest.approx(200.0)
    assert result.http_rps == pytest.approx(200.0)
    assert all(row.judged for row in result.rows)
    table = format_table(result)
    assert "POST /v1/payments" in table
    assert "GET /v1/tabs" in table
    assert "SLO gate PASSED at 200.0 HTTP req/s" in table


@pytest.mark.parametrize(
    ("samples", "failures", "breach"),
    [
        ([250.0] * 100, 0, "P50 250 ms >= 200 ms"),
        ([50.0] * 90 + [600.0] * 10, 0, "P95 600 ms >= 500 ms"),
        ([50.0] * 98 + [1500.0] * 2, 0, "P99 1500 ms >= 1000 ms"),
        ([50.0] * 200, 1, "errors 0.50 % >= 0.5 %"),
    ],
)
def test_each_target_breaks_the_gate(samples: list[float], failures: int, breach: str) -> None:
    result = evaluate(
        [entry("/v1/payments", samples, method="POST", failures=failures)],
        TARGETS,
        duration_s=5,
    )
    assert not result.passed
    assert result.exit_code == 1
    assert f"POST /v1/payments: {breach}" in result.problems
    assert f"Aggregated: {breach}" in result.problems
    assert "SLO gate FAILED" in format_table(result)


def test_errors_just_under_the_budget_pass() -> None:
    result = evaluate([entry("/v1/tabs", [30.0] * 1000, failures=4)], TARGETS, duration_s=5)
    assert result.passed
    assert result.total.error_rate_percent == pytest.approx(0.4)


def test_small_endpoints_are_shown_not_judged_but_count_in_the_total() -> None:
    slow_login = entry("/v1/auth/login", [900.0] * 3, method="POST")
    busy = entry("/v1/payments", [40.0] * 500, method="POST")
    result = evaluate([slow_login, busy], TARGETS, duration_s=10)
    login_row = next(row for row in result.rows if row.name == "/v1/auth/login")
    assert not login_row.judged
    assert login_row.p50_ms == 900
    assert result.passed
    assert "(not judged)" in format_table(result)

    # ...until the total itself breaks: a slow endpoint cannot hide by being small.
    many_slow = entry("/v1/auth/login", [900.0] * 40, method="POST")
    result = evaluate([many_slow, entry("/v1/payments", [40.0] * 30)], TARGETS, duration_s=10)
    assert result.problems == (
        "Aggregated: P50 900 ms >= 200 ms",
        "Aggregated: P95 900 ms >= 500 ms",
    )


def test_excluded_names_are_never_judged() -> None:
    targets = SloTargets(exclude=r"auth/login$")
    slow_login = entry("/v1/auth/login", [900.0] * 100, method="POST")
    fast = entry("/v1/payments", [40.0] * 1000, method="POST")
    result = evaluate([slow_login, fast], targets, duration_s=10)
    assert result.passed
    assert result.total.requests == 1000  # nor counted in the totals
    assert result.rows[0].p50_ms == 900  # but shown


def test_fast_websocket_messages_cannot_hide_slow_http() -> None:
    slow_http = entry("/v1/tabs", [400.0] * 40, method="POST")  # below min_requests alone
    events = entry("/v1/stream event", [10.0] * 2000, method="WS")
    result = evaluate([slow_http, events], TARGETS, duration_s=10)
    assert result.total.p50_ms == 10  # the aggregate alone would pass
    assert "HTTP requests: P50 400 ms >= 200 ms" in result.problems
    assert result.http_rps == pytest.approx(4.0)
    assert "4.0 HTTP req/s (204.0/s with WebSocket messages)" in format_table(result)


def test_unhandled_exceptions_count_as_errors_and_no_requests_fail() -> None:
    result = evaluate([entry("/v1/tabs", [30.0] * 100)], TARGETS, duration_s=5, unhandled_errors=1)
    assert "Aggregated: errors 0.99 % >= 0.5 %" in result.problems
    assert evaluate([], TARGETS, duration_s=5).problems == ("no requests were made",)


def _environment(entries: list[EndpointStats], *, worker: bool = False) -> Any:
    """The parts of a locust Environment the gate reads."""
    stats_entries = {
        (e.name, e.method): SimpleNamespace(
            method=e.method,
            name=e.name,
            num_requests=e.num_requests,
            num_failures=e.num_failures,
            response_times=e.response_times,
        )
        for e in entries
    }
    return SimpleNamespace(
        stats=SimpleNamespace(
            entries=stats_entries,
            total=SimpleNamespace(start_time=1000.0, last_request_timestamp=1010.0),
        ),
        runner=SimpleNamespace(exceptions={}),
        parsed_options=SimpleNamespace(worker=worker),
        process_exit_code=None,
    )


class _Hook:
    def __init__(self) -> None:
        self.listeners: list[Any] = []

    def add_listener(self, listener: Any) -> None:
        self.listeners.append(listener)


def test_gate_on_quit_sets_the_exit_code_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = SimpleNamespace(quitting=_Hook())
    report = tmp_path / "slo.json"
    install(events, lambda _env: (TARGETS, str(report)))
    (on_quit,) = events.quitting.listeners

    good = _environment([entry("/v1/tabs", [30.0] * 100, method="POST")])
    on_quit(good)
    assert good.process_exit_code == 0
    verdict = json.loads(report.read_text())
    assert verdict["passed"] is True
    assert verdict["endpoints"][0]["name"] == "/v1/tabs"
    assert verdict["http_rps"] == pytest.approx(10.0)
    assert "POST /v1/tabs" in capsys.readouterr().out

    bad = _environment([entry("/v1/tabs", [700.0] * 100, method="POST")])
    on_quit(bad)
    assert bad.process_exit_code == 1
    assert json.loads(report.read_text())["passed"] is False

    worker = _environment([entry("/v1/tabs", [700.0] * 100)], worker=True)
    on_quit(worker)
    assert worker.process_exit_code is None  # the master judges, with every worker's stats


def test_gate_without_a_report_path(capsys: pytest.CaptureFixture[str]) -> None:
    environment = _environment([entry("/v1/tabs", [30.0] * 100)])
    result = gate(environment, TARGETS)
    assert result.passed
    assert environment.process_exit_code == 0
    assert "SLO gate PASSED" in capsys.readouterr().out
