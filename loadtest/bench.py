"""``mpac bench``: a reproducible single-machine benchmark of the platform's hot paths.

It starts its own platform (embedded PostgreSQL and Redis in a temporary directory unless URLs
are given; every service in its own ``mpac serve`` process), provisions a tenant with enrolled
terminals, sets the simulated acquirer's latency to zero and measures, with closed-loop async
clients (``loadtest/bench_load.py``):

- the payment path: ``POST /v1/payments`` (card, automatic capture) with pgw on 1 worker
  process, then on each other ``--workers`` count;
- device token issuance: ``POST /oauth2/token`` with ``private_key_jwt`` (fresh jti each);
- smarttab WebSocket fan-out: K devices of a store connected, notices posted, latency until all
  K have the event;
- each service's ``GET /healthz`` on the same stack: the ceiling the others are compared with;
- idle device WebSockets held by one smarttab process, and its memory per connection.

The load generator and the servers share the machine's CPUs: the figures are a floor for this
hardware, not the platform's capacity. ``docs/performance.md`` explains the method and results.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_CLIENTS = 16
DEFAULT_WARMUP_S = 3.0
DEFAULT_DURATION_S = 15.0
DEFAULT_WS_DEVICES = 100
DEFAULT_WS_PUBLISHERS = 4
DEFAULT_IDLE_CONNECTIONS = 2000
SCENARIOS = ("payment", "token", "fanout", "idle")


def _workers_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError("worker counts are integers >= 1, e.g. 1,2")
    return values


def _scenarios(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(SCENARIOS)}")
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clients",
        type=int,
        default=DEFAULT_CLIENTS,
        metavar="N",
        help=f"concurrent closed-loop clients per HTTP scenario (default {DEFAULT_CLIENTS})",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=DEFAULT_WARMUP_S,
        metavar="S",
        help=f"seconds of load before measuring starts (default {DEFAULT_WARMUP_S:g})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION_S,
        metavar="S",
        help=f"measured seconds per scenario (default {DEFAULT_DURATION_S:g})",
    )
    parser.add_argument(
        "--scenarios",
        type=_scenarios,
        default=list(SCENARIOS),
        metavar="LIST",
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--workers",
        type=_workers_list,
        default=[1, 2],
        metavar="LIST",
        help="pgw worker process counts to measure the payment path with (default 1,2)",
    )
    parser.add_argument(
        "--ws-devices",
        type=int,
        default=DEFAULT_WS_DEVICES,
        metavar="K",
        help=f"connected devices of the store in the fan-out scenario (default {DEFAULT_WS_DEVICES})",
    )
    parser.add_argument(
        "--ws-publishers",
        type=int,
        default=DEFAULT_WS_PUBLISHERS,
        metavar="N",
        help=f"concurrent notice publishers in the fan-out scenario (default {DEFAULT_WS_PUBLISHERS})",
    )
    parser.add_argument(
        "--idle-connections",
        type=int,
        default=DEFAULT_IDLE_CONNECTIONS,
        metavar="N",
        help=f"idle device WebSockets to open on one smarttab process (default {DEFAULT_IDLE_CONNECTIONS})",
    )
    parser.add_argument(
        "--terminals",
        type=int,
        default=0,
        metavar="N",
        help="terminals to enroll (default: one per client, at least 8)",
    )
    parser.add_argument(
        "--database-url",
        default="",
        metavar="URL",
        help="use this PostgreSQL database (migrated first) instead of an embedded one",
    )
    parser.add_argument(
        "--redis-url",
        default="",
        metavar="URL",
        help="use this Redis instead of an embedded one",
    )
    parser.add_argument(
        "--db-pool-size",
        type=int,
        metavar="N",
        help="MPAC_DB_POOL_SIZE of every service process (default: the settings' 10)",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="run pgw under cProfile and write its stats to FILE (slows pgw down: profile "
        "runs are for finding waste, not for figures)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON only")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="benchmark payments, token issuance and WebSocket fan-out on this machine",
        description=(__doc__ or "").split("\n\n")[0],
    )
    add_arguments(bench)
    bench.set_defaults(handler=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from loadtest.bench_run import BenchOptions, run_bench

    sizes = (args.clients, args.ws_devices, args.ws_publishers, args.db_pool_size or 1)
    if min(sizes) < 1 or args.duration <= 0:
        print(
            "mpac bench: clients, devices, publishers, pool size and duration must be positive",
            file=sys.stderr,
        )
        return 2
    options = BenchOptions(
        clients=args.clients,
        warmup_s=max(args.warmup, 0.0),
        duration_s=args.duration,
        scenarios=tuple(args.scenarios),
        workers=tuple(args.workers),
        ws_devices=args.ws_devices,
        ws_publishers=args.ws_publishers,
        idle_connections=max(args.idle_connections, 0),
        terminals=args.terminals or max(args.clients, 8),
        database_url=args.database_url,
        redis_url=args.redis_url,
        profile=args.profile,
        db_pool_size=args.db_pool_size,
    )
    report: dict[str, Any] = run_bench(options, progress=not args.json)
    if args.json:
        import json

        print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench")
    add_arguments(parser)
    return cmd_bench(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
