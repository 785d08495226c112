"""Options, the fleet file, the lunch curve and the runner's command lines (no platform)."""

from __future__ import annotations

import argparse
import stat
import sys
from pathlib import Path

import configargparse
import jwt
import pytest

from backend.cli import build_parser
from loadtest.config import LoadConfig, Range, register_options
from loadtest.fleet import (
    DeviceIdentity,
    Fleet,
    FleetError,
    FleetStore,
    FleetTerminal,
    generate_private_key_pem,
    load_fleet,
    load_private_key,
    save_fleet,
)
from loadtest.lunch import clock_at, lunch_share, steepest_rate, users_at
from loadtest.runner import RunPlan, master_command, worker_command


def parse(argv: list[str]) -> argparse.Namespace:
    """The load options as locust parses them (configargparse, with LOAD_* variables)."""
    parser = configargparse.ArgumentParser()
    register_options(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [("5-20", 5, 20), ("0.5..2", 0.5, 2), ("1, 3", 1, 3), ("10", 10, 10), ("0", 0, 0)],
)
def test_ranges(text: str, low: float, high: float) -> None:
    value = Range.parse(text)
    assert (value.low, value.high) == (low, high)
    assert all(low <= value.sample() <= high for _ in range(20))


@pytest.mark.parametrize("text", ["20-5", "fast", "1-2-3", ""])
def test_bad_ranges(text: str) -> None:
    with pytest.raises(ValueError, match="range"):
        Range.parse(text)


def test_options_defaults_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet(portal_url="http://p", smarttab_url="http://s/", pgw_url="http://g")
    config = LoadConfig.from_options(parse([]), fleet)
    assert (config.think_time, config.step_pause) == (Range(5, 20), Range(0.5, 2))
    assert (config.portal_url, config.smarttab_url, config.pgw_url) == (
        "http://p",
        "http://s",
        "http://g",
    )
    assert config.refund_ratio == 0.05
    assert config.stream
    assert (config.slo.p50_ms, config.slo.p95_ms, config.slo.p99_ms) == (200, 500, 1000)
    assert config.slo.error_rate_percent == 0.5
    assert config.webhook_secrets == ("whsec_test_local",)

    monkeypatch.setenv("LOAD_THINK_TIME", "1-2")
    monkeypatch.setenv("LOAD_SLO_P95", "300")
    options = parse(["--pgw-url", "http://other", "--no-stream", "--webhook-secret", "a, b"])
    config = LoadConfig.from_options(options, fleet)
    assert config.think_time == Range(1, 2)
    assert config.slo.p95_ms == 300
    assert config.pgw_url == "http://other"
    assert not config.stream
    assert config.webhook_secrets == ("a", "b")

    with pytest.raises(ValueError, match="--refund-ratio"):
        LoadConfig.from_options(parse(["--refund-ratio", "1.5"]), fleet)


def _terminal(store: str, n: int, pem: str) -> FleetTerminal:
    return FleetTerminal(
        terminal_id=f"{store}-t{n}",
        client_id=f"{store}-t{n}",
        serial=f"SN-{store}-{n}",
        store_id=store,
        merchant_id="m",
        token_endpoint="http://portal/oauth2/token",
        private_key_pem=pem,
    )


def test_fleet_file_round_trip_merge_and_order(tmp_path: Path) -> None:
    pem = generate_private_key_pem()
    fleet = Fleet(
        portal_url="http://portal",
        smarttab_url="http://smarttab",
        pgw_url="http://pgw",
        stores=[FleetStore("a", "m", "A"), FleetStore("b", "m", "B")],
        terminals=[_terminal("a", 1, pem), _terminal("a", 2, pem), _terminal("b", 1, pem)],
    )
    path = tmp_path / "fleet.json"
    save_fleet(fleet, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_fleet(path) == fleet
    # A few users spread over the stores before a store gets its second device.
    assert [t.terminal_id for t in fleet.terminals_across_stores()] == ["a-t1", "b-t1", "a-t2"]

    more = Fleet(
        "http://portal", "http://smarttab", "http://pgw", terminals=[_terminal("c", 1, pem)]
    )
    merged = fleet.merge(more).merge(more)
    assert [t.terminal_id for t in merged.terminals] == ["a-t1", "a-t2", "b-t1", "c-t1"]

    path.write_text('{"version": 99}')
    with pytest.raises(FleetError, match="version 1"):
        load_fleet(path)
    with pytest.raises(FleetError, match="cannot read"):
        load_fleet(tmp_path / "missing.json")


def test_device_assertions_are_private_key_jwt() -> None:
    pem = generate_private_key_pem()
    identity = DeviceIdentity(_terminal("a", 1, pem))
    form = identity.token_form()
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"].endswith(":jwt-bearer")
    public = load_private_key(pem).public_key()
    claims = jwt.decode(
        form["client_assertion"],
        public,
        algorithms=["ES256"],
        audience="http://portal/oauth2/token",
    )
    assert claims["iss"] == claims["sub"] == "a-t1"
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert identity.assertion() != identity.assertion()  # a new jti each time


def test_the_lunch_curve() -> None:
    assert lunch_share(0) == 0.25
    assert lunch_share(45) == 1.0
    assert lunch_share(90) == 0.25
    assert lunch_share(37.5) == pytest.approx(0.875)
    run_time = 600.0
    assert users_at(0, run_time, peak=100) == 25
    assert users_at(300, run_time, peak=100) == 100  # 12:15 at half time
    assert users_at(599, run_time, peak=100) == 25
    assert users_at(0, run_time, peak=4, floor=3) == 3  # fixed-count users start first
    assert [clock_at(t, run_time) for t in (0, 300, 600)] == ["11:30", "12:15", "13:00"]
    # Steepest segments (11:45 -> 12:00, 12:30 -> 12:45): 30 % of the peak in 15 minutes,
    # which are 100 s of this run.
    assert steepest_rate(run_time, peak=100) == pytest.approx(30 / 100)


def test_runner_command_lines(tmp_path: Path) -> None:
    plan = RunPlan(
        fleet=tmp_path / "fleet.json",
        users=30,
        spawn_rate=5,
        run_time="2m",
        workers=2,
        locust_args=("--think-time", "1-3"),
    )
    master = master_command(plan, tmp_path / "r", master_port=5599)
    assert master[:3] == [sys.executable, "-m", "locust"]
    for flags in (
        ["--headless"],
        ["--users", "30"],
        ["--spawn-rate", "5"],
        ["--run-time", "2m"],
        ["--expect-workers", "2"],
        ["--master-bind-port", "5599"],
        ["--slo-report", str(tmp_path / "r" / "slo.json")],
        ["--think-time", "1-3"],
    ):
        index = master.index(flags[0])
        assert master[index : index + len(flags)] == flags
    assert master_command(plan, tmp_path, master_port=None).count("--master") == 0
    worker = worker_command(plan, 5599)
    assert "--worker" in worker
    assert worker[worker.index("--master-port") + 1] == "5599"
    with pytest.raises(ValueError, match="--shape"):
        RunPlan(fleet=tmp_path, shape="dinner")


def test_run_passes_extra_options_to_locust() -> None:
    args = build_parser().parse_args(
        ["loadtest", "run", "--fleet", "f.json", "-u", "3", "--think-time", "1-2", "--", "--x"]
    )
    assert args.users == 3
    assert args.think_time == "1-2"
    assert args.locust_args == ["--", "--x"]
