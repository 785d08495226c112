"""The load run's options: locust command-line flags, each with an ``LOAD_*`` environment twin.

``register_options`` adds them to locust's parser (``events.init_command_line_parser``); in
distributed mode the master sends its values to every worker, so only the master needs them.
``LoadConfig.from_options`` turns the parsed values into a typed, validated configuration.
Nothing here imports locust.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from loadtest.fleet import Fleet

# The seed's targets (shared/reference/technical-architecture.txt, "Performance Targets").
SLO_P50_MS = 200.0
SLO_P95_MS = 500.0
SLO_P99_MS = 1000.0
SLO_ERROR_RATE_PERCENT = 0.5
DEFAULT_WEBHOOK_SECRET = "whsec_test_local"  # the provider's default test secret


@dataclass(frozen=True)
class Range:
    """Seconds drawn uniformly from ``[low, high]`` (a think time, a pause)."""

    low: float
    high: float

    @classmethod
    def parse(cls, text: str | float) -> Range:
        """``"5-20"``, ``"5..20"``, ``"5,20"`` or a single ``"10"``."""
        if isinstance(text, int | float):
            return cls.checked(float(text), float(text))
        parts = [part for part in re.split(r"\s*(?:\.\.|,|-(?=\s*\d))\s*", text.strip()) if part]
        try:
            values = [float(part) for part in parts]
        except ValueError:
            raise ValueError(f"not a range of seconds: {text!r} (try 5-20)") from None
        if len(values) == 1:
            return cls.checked(values[0], values[0])
        if len(values) == 2:
            return cls.checked(values[0], values[1])
        raise ValueError(f"not a range of seconds: {text!r} (try 5-20)")

    @classmethod
    def checked(cls, low: float, high: float) -> Range:
        if low < 0 or high < low:
            raise ValueError(f"a range needs 0 <= low <= high, got {low}-{high}")
        return cls(low, high)

    def sample(self) -> float:
        return random.uniform(self.low, self.high)  # noqa: S311 - load shaping, not security

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    def __str__(self) -> str:
        return f"{self.low:g}-{self.high:g} s"


@dataclass(frozen=True)
class SloTargets:
    p50_ms: float = SLO_P50_MS
    p95_ms: float = SLO_P95_MS
    p99_ms: float = SLO_P99_MS
    error_rate_percent: float = SLO_ERROR_RATE_PERCENT
    # Endpoints with fewer requests are shown but not judged (their P99 is one sample).
    min_requests: int = 50
    # Names ("METHOD /path", regular expression, searched) shown, but neither judged nor
    # counted in the totals.
    exclude: str = ""


@dataclass(frozen=True)
class LoadConfig:
    fleet_path: str
    portal_url: str
    smarttab_url: str
    pgw_url: str
    think_time: Range
    step_pause: Range
    portal_think_time: Range
    tab_share: float
    split_share: float
    refund_ratio: float
    decline_ratio: float
    close_ratio: float
    token_refresh_margin_s: float
    stream: bool
    portal_users: int
    webhook_users: int
    webhook_secrets: tuple[str, ...]
    webhook_interval: Range
    webhook_burst: int
    webhook_burst_interval: Range
    webhook_burst_concurrency: int
    webhook_duplicate_ratio: float
    slo: SloTargets

    @classmethod
    def from_options(cls, options: Any, fleet: Fleet | None = None) -> LoadConfig:
        def get(name: str) -> Any:
            return getattr(options, name)

        def ratio(name: str) -> float:
            value = float(get(name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1")
            return value

        secrets = tuple(s.strip() for s in str(get("webhook_secret")).split(",") if s.strip())
        return cls(
            fleet_path=str(get("fleet")),
            portal_url=(get("portal_url") or (fleet.portal_url if fleet else "")).rstrip("/"),
            smarttab_url=(get("smarttab_url") or (fleet.smarttab_url if fleet else "")).rstrip("/"),
            pgw_url=(get("pgw_url") or (fleet.pgw_url if fleet else "")).rstrip("/"),
            think_time=Range.parse(get("think_time")),
            step_pause=Range.parse(get("step_pause")),
            portal_think_time=Range.parse(get("portal_think_time")),
            tab_share=ratio("tab_share"),
            split_share=ratio("split_share"),
            refund_ratio=ratio("refund_ratio"),
            decline_ratio=ratio("decline_ratio"),
            close_ratio=ratio("close_ratio"),
            token_refresh_margin_s=float(get("token_refresh_margin")),
            stream=not bool(get("no_stream")),
            portal_users=int(get("portal_users")),
            webhook_users=int(get("webhook_users")),
            webhook_secrets=secrets or (DEFAULT_WEBHOOK_SECRET,),
            webhook_interval=Range.parse(get("webhook_interval")),
            webhook_burst=int(get("webhook_burst")),
            webhook_burst_interval=Range.parse(get("webhook_burst_interval")),
            webhook_burst_concurrency=max(1, int(get("webhook_burst_concurrency"))),
            webhook_duplicate_ratio=ratio("webhook_duplicate_ratio"),
            slo=slo_targets_from(options),
        )


def slo_targets_from(options: Any) -> SloTargets:
    targets = SloTargets(
        p50_ms=float(options.slo_p50),
        p95_ms=float(options.slo_p95),
        p99_ms=float(options.slo_p99),
        error_rate_percent=float(options.slo_error_rate),
        min_requests=int(options.slo_min_requests),
        exclude=str(options.slo_exclude or ""),
    )
    if targets.exclude:
        re.compile(targets.exclude)
    return targets


# (flag, environment variable, default, type, help)
_OPTIONS: tuple[tuple[str, str, Any, Any, str], ...] = (
    ("--fleet", "LOAD_FLEET", "fleet.json", str, "fleet file of `mpac loadtest provision`"),
    ("--portal-url", "LOAD_PORTAL_URL", "", str, "portal base URL (default: the fleet's)"),
    ("--smarttab-url", "LOAD_SMARTTAB_URL", "", str, "smarttab base URL (default: the fleet's)"),
    ("--pgw-url", "LOAD_PGW_URL", "", str, "pgw base URL (default: the fleet's)"),
    ("--think-time", "LOAD_THINK_TIME", "5-20", str, "device: seconds between two sales"),
    ("--step-pause", "LOAD_STEP_PAUSE", "0.5-2", str, "device: seconds between steps of a sale"),
    ("--portal-think-time", "LOAD_PORTAL_THINK_TIME", "5-20", str, "portal user: between pages"),
    ("--tab-share", "LOAD_TAB_SHARE", 0.6, float, "share of sales paid through smarttab tabs"),
    ("--split-share", "LOAD_SPLIT_SHARE", 0.2, float, "share of tabs split in two parts"),
    ("--refund-ratio", "LOAD_REFUND_RATIO", 0.05, float, "share of sales refunded"),
    ("--decline-ratio", "LOAD_DECLINE_RATIO", 0.02, float, "share of first card taps declined"),
    ("--close-ratio", "LOAD_CLOSE_RATIO", 0.002, float, "share of sales followed by a Z-close"),
    (
        "--token-refresh-margin",
        "LOAD_TOKEN_REFRESH_MARGIN",
        15.0,
        float,
        "device: seconds before expires_in a new token is fetched",
    ),
    ("--portal-users", "LOAD_PORTAL_USERS", 1, int, "number of PortalUser (fixed count)"),
    ("--webhook-users", "LOAD_WEBHOOK_USERS", 1, int, "number of WebhookBurstUser (fixed)"),
    (
        "--webhook-secret",
        "LOAD_WEBHOOK_SECRET",
        DEFAULT_WEBHOOK_SECRET,
        str,
        "provider webhook secret(s), comma-separated (pgw's MPAC_PROVIDER_WEBHOOK_SECRETS)",
    ),
    ("--webhook-interval", "LOAD_WEBHOOK_INTERVAL", "0.5-2", str, "steady: between events"),
    ("--webhook-burst", "LOAD_WEBHOOK_BURST", 0, int, "events per burst (0: steady mode)"),
    ("--webhook-burst-interval", "LOAD_WEBHOOK_BURST_INTERVAL", "20-40", str, "between bursts"),
    (
        "--webhook-burst-concurrency",
        "LOAD_WEBHOOK_BURST_CONCURRENCY",
        20,
        int,
        "deliveries in flight during a burst",
    ),
    (
        "--webhook-duplicate-ratio",
        "LOAD_WEBHOOK_DUPLICATE_RATIO",
        0.1,
        float,
        "share of events delivered again (at least once)",
    ),
    ("--slo-p50", "LOAD_SLO_P50", SLO_P50_MS, float, "SLO gate: P50 target, ms"),
    ("--slo-p95", "LOAD_SLO_P95", SLO_P95_MS, float, "SLO gate: P95 target, ms"),
    ("--slo-p99", "LOAD_SLO_P99", SLO_P99_MS, float, "SLO gate: P99 target, ms"),
    (
        "--slo-error-rate",
        "LOAD_SLO_ERROR_RATE",
        SLO_ERROR_RATE_PERCENT,
        float,
        "SLO gate: largest error rate, percent",
    ),
    (
        "--slo-min-requests",
        "LOAD_SLO_MIN_REQUESTS",
        50,
        int,
        "SLO gate: endpoints with fewer requests are shown, not judged (the total always is)",
    ),
    (
        "--slo-exclude",
        "LOAD_SLO_EXCLUDE",
        "",
        str,
        'SLO gate: regex of "METHOD name"s neither judged nor in the totals',
    ),
    ("--slo-report", "LOAD_SLO_REPORT", "", str, "SLO gate: also write the verdict as JSON here"),
)


def register_options(parser: Any) -> None:
    """Add the load options to locust's (configargparse) parser."""
    group = parser.add_argument_group("MPAC load test (loadtest/)")
    for flag, env, default, kind, text in _OPTIONS:
        group.add_argument(flag, type=kind, default=default, env_var=env, help=text)
    group.add_argument(
        "--no-stream",
        action="store_true",
        default=False,
        env_var="LOAD_NO_STREAM",
        help="device: no WebSocket to smarttab",
    )
