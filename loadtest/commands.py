"""``mpac loadtest provision`` and ``mpac loadtest run`` (``docs/loadtest.md``).

Imports stay inside the handlers: every ``mpac`` command loads this module, and locust must
never be imported in the ``mpac`` process (it monkey-patches the standard library).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from loadtest.provision import (
        DEFAULT_PGW_URL,
        DEFAULT_PORTAL_URL,
        DEFAULT_SMARTTAB_URL,
        DEMO_ADMIN_EMAIL,
        DEMO_ADMIN_PASSWORD,
    )

    group = subparsers.add_parser(
        "loadtest",
        help="provision a load-test fleet and run the locust scenarios with the SLO gate",
        description="Load tests of the platform (docs/loadtest.md).",
    )
    commands = group.add_subparsers(dest="loadtest_command", metavar="SUBCOMMAND", required=True)

    provision = commands.add_parser(
        "provision",
        help="create merchants, stores, users and enrolled terminals; write the fleet file",
        description=(
            "Create N merchants x M stores x K terminals through the portal API as a PSP admin "
            "(terminals enroll their own EC P-256 keys with activation codes), wait until pgw "
            "accepts every terminal, and write (or extend) the fleet file."
        ),
    )
    provision.add_argument("--merchants", type=int, default=2, metavar="N")
    provision.add_argument("--stores-per-merchant", type=int, default=2, metavar="M")
    provision.add_argument("--terminals-per-store", type=int, default=3, metavar="K")
    provision.add_argument("--out", type=Path, default=Path("fleet.json"), help="fleet file")
    provision.add_argument("--portal-url", default=DEFAULT_PORTAL_URL)
    provision.add_argument("--smarttab-url", default=DEFAULT_SMARTTAB_URL)
    provision.add_argument("--pgw-url", default=DEFAULT_PGW_URL)
    provision.add_argument(
        "--admin-email", default=DEMO_ADMIN_EMAIL, help="a psp_admin (default: the demo one)"
    )
    provision.add_argument("--admin-password", default=DEMO_ADMIN_PASSWORD)
    provision.add_argument(
        "--concurrency", type=int, default=16, help="requests in flight (default 16)"
    )
    provision.add_argument(
        "--no-users",
        action="store_true",
        help="no merchant/store users (PortalUser needs them)",
    )
    provision.add_argument(
        "--no-wait", action="store_true", help="do not wait until pgw knows the terminals"
    )
    provision.add_argument("--wait-timeout", type=float, default=120.0, metavar="SECONDS")
    provision.add_argument(
        "--replace", action="store_true", help="overwrite --out instead of adding to it"
    )
    provision.set_defaults(handler=cmd_provision)

    run = commands.add_parser(
        "run",
        help="run locust headless (or distributed) against the fleet; exit status = SLO gate",
        description=(
            "Run loadtest/locustfile.py headless. With --workers W, a master and W worker "
            "processes (locust's distributed mode). Reports (CSV, HTML, slo.json) go to "
            "reports/loadtest/<time>/. Options after `--` go to locust unchanged "
            "(e.g. -- --tab-share 0.8 --slo-p95 300)."
        ),
    )
    run.add_argument("--fleet", type=Path, default=Path("fleet.json"))
    run.add_argument("-u", "--users", type=int, default=10, help="users (the peak with a shape)")
    run.add_argument("-r", "--spawn-rate", type=float, default=2.0, help="users started per s")
    run.add_argument("-t", "--run-time", default="60s", help="e.g. 60s, 10m (default 60s)")
    run.add_argument("--shape", choices=("lunch",), help="load shape (lunch: 11:30-13:00 peak)")
    run.add_argument("--workers", type=int, default=0, help="worker processes (0: one process)")
    run.add_argument("--report-dir", type=Path, help="default reports/loadtest/<UTC time>")
    run.add_argument("--think-time", help="device: seconds between sales (default 5-20)")
    run.add_argument("--step-pause", help="device: seconds between steps of a sale (0.5-2)")
    run.add_argument("--portal-users", type=int, help="PortalUser count (default 1)")
    run.add_argument("--webhook-users", type=int, help="WebhookBurstUser count (default 1)")
    run.add_argument("--webhook-burst", type=int, help="events per webhook burst (0: steady)")
    run.add_argument("locust_args", nargs=argparse.REMAINDER, help="-- then locust options")
    run.set_defaults(handler=cmd_run)


def cmd_provision(args: argparse.Namespace) -> int:
    from loadtest.provision import ProvisionError, ProvisionPlan, provision, write_fleet

    try:
        plan = ProvisionPlan(
            merchants=args.merchants,
            stores_per_merchant=args.stores_per_merchant,
            terminals_per_store=args.terminals_per_store,
            portal_url=args.portal_url.rstrip("/"),
            smarttab_url=args.smarttab_url.rstrip("/"),
            pgw_url=args.pgw_url.rstrip("/"),
            admin_email=args.admin_email,
            admin_password=args.admin_password,
            users=not args.no_users,
            concurrency=args.concurrency,
            wait_for_pgw=not args.no_wait,
            wait_timeout_s=args.wait_timeout,
        )
    except ValueError as exc:
        print(f"mpac loadtest provision: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        new = asyncio.run(provision(plan, progress=lambda line: print(line, flush=True)))
        fleet = write_fleet(new, args.out, replace=args.replace)
    except ProvisionError as exc:
        print(f"mpac loadtest provision: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"fleet {args.out}: +{len(new.terminals)} terminals, +{len(new.stores)} stores, "
        f"+{len(new.users)} users in {time.monotonic() - started:.1f} s "
        f"(now {len(fleet.terminals)} terminals, {len(fleet.stores)} stores, "
        f"{len(fleet.merchants)} merchants)"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from loadtest.runner import RunPlan, run

    passthrough = list(args.locust_args)
    if passthrough[:1] == ["--"]:
        passthrough = passthrough[1:]
    for flag, value in (
        ("--think-time", args.think_time),
        ("--step-pause", args.step_pause),
        ("--portal-users", args.portal_users),
        ("--webhook-users", args.webhook_users),
        ("--webhook-burst", args.webhook_burst),
    ):
        if value is not None:
            passthrough += [flag, str(value)]
    try:
        plan = RunPlan(
            fleet=args.fleet,
            users=args.users,
            spawn_rate=args.spawn_rate,
            run_time=args.run_time,
            shape=args.shape,
            workers=args.workers,
            report_dir=args.report_dir,
            locust_args=tuple(passthrough),
        )
    except ValueError as exc:
        print(f"mpac loadtest run: {exc}", file=sys.stderr)
        return 2
    return run(plan)
