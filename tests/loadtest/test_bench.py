"""``mpac bench`` (loadtest/bench.py): a tiny run that must produce figures for every scenario.

No timing is asserted: the machine running the tests decides the numbers. What is checked is
that every scenario ran, measured something and failed nothing, and that the report holds what
docs/performance.md shows (ratios to the ceilings, 1 and 2 pgw workers, WebSockets held and
memory per connection).
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from backend.cli import build_parser
from loadtest.bench import cmd_bench
from loadtest.bench_load import percentile
from loadtest.bench_run import BenchOptions, render, run_bench
from tests.helpers import run, with_database
from tests.support.platform import _create_database, _drop_database

IDLE_SOCKETS = 10


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_mpac_bench_is_a_command_with_its_options() -> None:
    args = build_parser().parse_args(
        ["bench", "--clients", "4", "--workers", "1,2", "--scenarios", "payment,idle", "--json"]
    )
    assert args.handler is cmd_bench
    assert (args.clients, args.workers, args.scenarios, args.json) == (
        4,
        [1, 2],
        ["payment", "idle"],
        True,
    )


@pytest.mark.parametrize(
    "argv", [["--workers", "0"], ["--workers", "one"], ["--scenarios", "payments"]]
)
def test_mpac_bench_refuses_bad_options(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", *argv])


def test_mpac_bench_refuses_non_positive_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench", "--clients", "0"])
    assert isinstance(args, argparse.Namespace)
    assert cmd_bench(args) == 2
    assert "must be positive" in capsys.readouterr().err


@pytest.fixture
def bench_database_url(postgres_server_url: str) -> Iterator[str]:
    """A database of its own on the tests' PostgreSQL server (the bench migrates it)."""
    name = f"mpac_bench_{secrets.token_hex(6)}"
    run(_create_database(postgres_server_url, name))
    try:
        yield with_database(postgres_server_url, name)
    finally:
        run(_drop_database(postgres_server_url, name))


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_short_bench_measures_every_scenario(bench_database_url: str) -> None:
    # Windows long enough for a few operations each, no more: nothing here judges the figures.
    # Two clients, so one slow first request cannot leave a window without a measurement.
    # What remains is fixed cost in loadtest/ (starting four processes, two restarts, the idle
    # scenario's 5 s of settling, stopping the processes one by one).
    options = BenchOptions(
        clients=2,
        warmup_s=0.2,
        duration_s=0.5,
        workers=(1, 2),
        ws_devices=3,
        ws_publishers=1,
        idle_connections=IDLE_SOCKETS,
        terminals=2,
        database_url=bench_database_url,
    )
    report: dict[str, Any] = run_bench(options, progress=False)

    results = {result["name"]: result for result in report["results"]}
    assert set(results) == {
        "ceiling_pgw_1w",
        "payment_1w",
        "ceiling_portal",
        "token",
        "ceiling_smarttab",
        "fanout",
        "ceiling_pgw_2w",
        "payment_2w",
    }
    for name, result in results.items():
        assert result["errors"] == 0, (name, result["error_examples"])
        assert result["completed"] > 0, name
        assert result["rps"] > 0, name
        for field in ("p50_ms", "p95_ms", "p99_ms"):
            assert result[field] is not None, (name, field)
        assert result["cpu"], name
    for name, ceiling in (
        ("payment_1w", "ceiling_pgw_1w"),
        ("payment_2w", "ceiling_pgw_2w"),
        ("token", "ceiling_portal"),
        ("fanout", "ceiling_smarttab"),
    ):
        assert results[name]["ceiling"] == ceiling
        assert results[name]["ratio"] is not None
    assert results["payment_2w"]["extra"]["pgw_workers"] == 2
    assert results["fanout"]["extra"]["devices"] == 3
    assert results["fanout"]["extra"]["broken_sockets"] == 0

    idle = report["idle_websockets"]
    assert idle["held"] == idle["requested"] == IDLE_SOCKETS
    assert idle["failed"] == 0
    assert idle["server_kib_per_connection"] is not None
    assert report["setup"]["provider"]["latency_ms"] == 0
    assert report["ok"] is True

    table = render(report)
    assert "vs ceiling" in table
    lines = table.splitlines()
    for result in results.values():
        [row] = [line for line in lines if line.startswith(result["label"] + " ")]
        _, rps, p50, p95, p99, errors, _ = row[len(result["label"]) :].split()
        assert all(float(figure) > 0 for figure in (rps, p50, p95, p99)), row
        assert errors == "0", row
    assert "payment POST /v1/payments (2 workers)" in table
    assert (
        f"idle device WebSockets on one smarttab process: {IDLE_SOCKETS} of {IDLE_SOCKETS} held"
        in table
    )
    assert "KiB per connection" in table
