"""``mpac up``, ``mpac migrate``, ``mpac seed`` and ``mpac serve``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from backend.core.migrations import upgrade_all
from backend.core.settings import SERVICE_NAMES, Settings
from backend.runtime.embedded import (
    FIELD_KEYS_FILE,
    S2S_KEYS_FILE,
    Infrastructure,
    SetupError,
    derive_settings,
    ensure_field_encryption_keys,
    ensure_s2s_keys,
    infrastructure,
    mask_url,
)
from backend.runtime.log_setup import LOG_FORMATS, LOG_LEVELS, configure_logging
from backend.runtime.server import (
    Platform,
    PlatformError,
    PlatformStartupError,
    run_event_loop,
    serve_until_signalled,
)

logger = logging.getLogger("mpac")


class _DemoSeed(Protocol):
    def lines(self) -> list[str]: ...


def common_options() -> argparse.ArgumentParser:
    """``--state-dir``, ``--log-level`` and ``--log-format``: every command touching the data."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="where embedded data, logs and keys live (default: $MPAC_STATE_DIR or .mpac)",
    )
    common.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="log verbosity (default: info)"
    )
    common.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get("MPAC_LOG_FORMAT", "json"),
        help="json: one object per line with request, trace and tenant ids; text: for reading "
        "(default: $MPAC_LOG_FORMAT or json)",
    )
    return common


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = common_options()

    up = subparsers.add_parser(
        "up",
        parents=[common],
        help="run all three services until Ctrl-C",
        description=(
            "Start portal, smarttab and pgw. PostgreSQL and Redis are embedded unless "
            "MPAC_DATABASE_URL / MPAC_REDIS_URL name existing servers. Migrates first."
        ),
    )
    up.add_argument("--demo", action="store_true", help="seed the demo tenant and print logins")
    up.add_argument("--host", help="interface to listen on (default: $MPAC_HOST or 127.0.0.1)")
    for service in SERVICE_NAMES:
        up.add_argument(
            f"--{service}-port",
            type=int,
            metavar="N",
            help=f"port of {service} (default: settings)",
        )
    up.set_defaults(handler=cmd_up)

    migrate = subparsers.add_parser(
        "migrate", parents=[common], help="apply every service's database migrations and exit"
    )
    migrate.set_defaults(handler=cmd_migrate)

    seed = subparsers.add_parser(
        "seed", parents=[common], help="migrate, seed the demo tenant, print its logins and exit"
    )
    seed.set_defaults(handler=cmd_seed)

    serve = subparsers.add_parser(
        "serve",
        parents=[common],
        help="run ONE service until Ctrl-C (several processes of a service scale it out)",
        description=(
            "Run one service on its own, e.g. a second smarttab process next to `mpac up`. "
            "MPAC_DATABASE_URL and MPAC_REDIS_URL must name running servers (nothing is "
            "embedded) whose database is already migrated. MPAC_FIELD_ENCRYPTION_KEYS and "
            "MPAC_S2S_KEYS come from the environment or, when unset, from the key files of "
            "--state-dir (never generated: every process of the platform must share them)."
        ),
    )
    serve.add_argument("--service", required=True, choices=SERVICE_NAMES, help="which service")
    serve.add_argument("--port", type=int, metavar="N", help="port (default: the service's)")
    serve.add_argument("--host", help="interface to listen on (default: $MPAC_HOST or 127.0.0.1)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N processes of the service on the same port (SO_REUSEPORT; default 1)",
    )
    # Set by the --workers supervisor on its children: bind the shared port with SO_REUSEPORT.
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(handler=cmd_serve)


def _settings_from(args: argparse.Namespace) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        raise SetupError(f"invalid MPAC_* environment: {exc}") from exc
    overrides: dict[str, Any] = {}
    if args.state_dir is not None:
        overrides["state_dir"] = args.state_dir
    if getattr(args, "host", None):
        overrides["host"] = args.host
    for service in SERVICE_NAMES:
        port = getattr(args, f"{service}_port", None)
        if port is not None:
            if not 0 < port < 65536:
                raise SetupError(f"--{service}-port {port} is not a TCP port")
            overrides[f"{service}_port"] = port
    if not overrides:
        return settings
    try:
        return derive_settings(settings, **overrides)
    except ValidationError as exc:
        raise SetupError(f"invalid option: {exc}") from exc


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Until serving starts, SIGTERM unwinds like Ctrl-C, so embedded servers still stop."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _prepared(args: argparse.Namespace) -> Iterator[Infrastructure]:
    """Settings, keys, embedded servers and migrations: what every command starts from."""
    configure_logging(args.log_level, args.log_format)
    settings = _settings_from(args)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings = ensure_s2s_keys(ensure_field_encryption_keys(settings))
    with infrastructure(settings) as infra:
        logger.info("migrating %s", mask_url(infra.settings.database_url))
        upgrade_all(infra.settings.database_url)
        yield infra


def run_prepared(args: argparse.Namespace, body: Callable[[Infrastructure], int]) -> int:
    """Run ``body(infra)`` with the shared preparation, turning known failures into status 1."""
    try:
        with _sigterm_interrupts(), _prepared(args) as infra:
            return body(infra)
    except (SetupError, PlatformStartupError, PlatformError) as exc:
        logger.error("%s", exc)
        print(f"mpac: error: {exc}", file=sys.stderr)
        return 1


def _seed_demo(settings: Settings) -> _DemoSeed:
    from backend.portal.seed import seed_demo

    seed: _DemoSeed = asyncio.run(seed_demo(settings))
    return seed


def banner(infra: Infrastructure, demo_lines: Sequence[str] = ()) -> str:
    settings = infra.settings
    lines = ["", "MPAC SmartPOS simulator is running. Press Ctrl-C to stop.", ""]
    for service in SERVICE_NAMES:
        url = settings.url_of(service)
        lines.append(f"  {service:<9} {url}   docs {url}/docs   health {url}/healthz")
    lines.append(f"  {'JWKS':<9} {settings.jwks_url}")
    lines.append("")
    for label, text in infra.describe():
        lines.append(f"  {label:<11} {text}")
    keys_file = settings.state_dir.resolve() / FIELD_KEYS_FILE
    if keys_file.exists():
        lines.append(f"  {'field keys':<11} {keys_file}")
    if demo_lines:
        lines.append("")
        lines.extend(demo_lines)
    lines.append("")
    return "\n".join(lines)


def _print(text: str) -> None:
    print(text, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    def body(infra: Infrastructure) -> int:
        demo_lines = _seed_demo(infra.settings).lines() if args.demo else []
        platform = Platform(infra.settings, log_level=args.log_level)
        run_event_loop(
            serve_until_signalled(platform, on_started=lambda: _print(banner(infra, demo_lines)))
        )
        logger.info("all services stopped")
        return 0

    return run_prepared(args, body)


def cmd_migrate(args: argparse.Namespace) -> int:
    def body(infra: Infrastructure) -> int:
        _print(f"migrated {mask_url(infra.settings.database_url)}")
        return 0

    return run_prepared(args, body)


def cmd_seed(args: argparse.Namespace) -> int:
    def body(infra: Infrastructure) -> int:
        _print("\n".join(_seed_demo(infra.settings).lines()))
        return 0

    return run_prepared(args, body)


def _shared_key(settings: Settings, value: str, file_name: str) -> str:
    """A key spec from the environment, else from an existing key file of the state dir."""
    if value:
        return value
    key_file = settings.state_dir.expanduser() / file_name
    return key_file.read_text().strip() if key_file.exists() else ""


def _serve_settings(args: argparse.Namespace) -> Settings:
    settings = _settings_from(args)
    missing = [
        f"MPAC_{name.upper()}"
        for name in ("database_url", "redis_url")
        if not getattr(settings, name)
    ]
    if missing:
        raise SetupError(
            f"mpac serve runs against running servers: set {' and '.join(missing)} "
            "(`mpac up` embeds them instead)"
        )
    updates: dict[str, Any] = {
        "field_encryption_keys": _shared_key(
            settings, settings.field_encryption_keys, FIELD_KEYS_FILE
        ),
        "s2s_keys": _shared_key(settings, settings.s2s_keys, S2S_KEYS_FILE),
    }
    if args.port is not None:
        if not 0 < args.port < 65536:
            raise SetupError(f"--port {args.port} is not a TCP port")
        updates[f"{args.service}_port"] = args.port
    try:
        return derive_settings(settings, **updates)
    except ValidationError as exc:
        raise SetupError(f"invalid option: {exc}") from exc


def cmd_serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    # The worker processes of --workers log alike.
    os.environ["MPAC_LOG_FORMAT"] = args.log_format
    service: str = args.service
    try:
        if args.workers < 1:
            raise SetupError(f"--workers {args.workers}: at least one worker is needed")
        settings = _serve_settings(args)
        if args.workers > 1:
            from backend.runtime.workers import run_workers

            state_dir = str(args.state_dir) if args.state_dir is not None else None
            return run_workers(
                service,
                settings,
                workers=args.workers,
                log_level=args.log_level,
                state_dir=state_dir,
            )
        platform = Platform(
            settings, services=(service,), log_level=args.log_level, reuse_port=args.reuse_port
        )
        run_event_loop(
            serve_until_signalled(
                platform,
                on_started=lambda: _print(
                    f"{service} running at {settings.url_of(service)} (pid {os.getpid()}); "
                    "Ctrl-C stops it"
                ),
            )
        )
    except (SetupError, PlatformStartupError, PlatformError) as exc:
        logger.error("%s", exc)
        print(f"mpac: error: {exc}", file=sys.stderr)
        return 1
    logger.info("%s stopped", service)
    return 0
