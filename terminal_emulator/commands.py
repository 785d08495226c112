"""``mpac terminal``: run emulated SmartPOS terminals, headless (``--headless``, any number with
``--count``) or in a window (the Kivy UI, one terminal).

Each terminal keeps its state under ``<state dir>/<serial>/`` (device data, device key,
enrollment, ``adb_keys``), so running the command again is the same terminal after a reboot;
``--activation-code`` is needed only until it has enrolled. With ``--count N`` the serials are
``<serial>-0001`` … and the ADB ports ``--adb-port``, ``--adb-port + 1`` …; activation codes
are given once per terminal (repeat ``--activation-code``, in order). ``--webview chromium``
shows the Business App's web pages (``am start -n jp.mpac.business/.WebViewActivity -d URL``)
in headless Chromium; the browser starts only when a page is opened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path

from terminal_emulator.apps.common import AppConfig
from terminal_emulator.backend_client import BackendUrls
from terminal_emulator.terminal import EmulatedTerminal, TerminalConfig
from terminal_emulator.webview import engine_named

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "terminal",
        help="run emulated SmartPOS terminals (Business App + Credit Card App)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--headless", action="store_true", help="no window (any number of terminals)"
    )
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="default: <MPAC state dir>/terminals"
    )
    parser.add_argument("--portal-url", default=None, help="default: from the settings")
    parser.add_argument("--pgw-url", default=None, help="default: from the settings")
    parser.add_argument("--smarttab-url", default=None, help="default: from the settings")
    parser.add_argument(
        "--activation-code",
        action="append",
        default=[],
        help="enroll with this code (once per terminal; repeat for --count)",
    )
    parser.add_argument(
        "--serial", default="EMU-0001", help="the terminal's serial (prefix with --count)"
    )
    parser.add_argument("--name", default="MPAC SmartPOS", help="shown in the status bar")
    parser.add_argument(
        "--adb-port", type=int, default=None, help="serve ADB on this port (0: any)"
    )
    parser.add_argument(
        "--adb-allow-new-keys",
        action="store_true",
        help="accept ADB keys not yet in the terminal's adb_keys (development)",
    )
    parser.add_argument("--count", type=int, default=1, help="how many terminals (headless)")
    parser.add_argument(
        "--webview",
        choices=("fake", "chromium"),
        default="fake",
        help="what shows the Business App's web pages (WebViewActivity): fake (no browser, "
        "the default) or chromium (Playwright + headless Chromium, launched when a page opens)",
    )
    parser.add_argument(
        "--chromium", default=None, help="the Chromium binary (default /usr/bin/chromium)"
    )
    parser.add_argument(
        "--webview-headed",
        action="store_true",
        help="show Chromium's own window (needs a display) instead of running it headless",
    )
    parser.set_defaults(handler=run)


def _configs(args: argparse.Namespace) -> list[TerminalConfig]:
    from backend.core.settings import Settings

    settings = Settings()
    urls = BackendUrls(
        portal=(args.portal_url or settings.resolved_portal_url).rstrip("/"),
        pgw=(args.pgw_url or settings.url_of("pgw")).rstrip("/"),
        smarttab=(args.smarttab_url or settings.url_of("smarttab")).rstrip("/"),
    )
    state_dir: Path = args.state_dir or settings.state_dir / "terminals"
    count = max(1, args.count)
    codes: list[str] = list(args.activation_code)
    configs = []
    for index in range(count):
        serial = args.serial if count == 1 else f"{args.serial}-{index + 1:04d}"
        configs.append(
            TerminalConfig(
                serial=serial,
                state_dir=state_dir / serial,
                urls=urls,
                name=args.name,
                activation_code=codes[index] if index < len(codes) else None,
                adb_port=None
                if args.adb_port is None
                else (args.adb_port + index if args.adb_port else 0),
                adb_allow_new_keys=args.adb_allow_new_keys,
                apps=AppConfig(
                    webview=engine_named(
                        args.webview,
                        executable_path=args.chromium,
                        headless=not args.webview_headed,
                    )
                ),
            )
        )
    return configs


def _describe(terminal: EmulatedTerminal) -> str:
    identity = terminal.identity
    enrolled = f"enrolled as {identity.terminal_id}" if identity.enrolled else "NOT enrolled"
    adb = f", adb on port {terminal.adb_port}" if terminal.adb_port is not None else ""
    return f"terminal {terminal.serial}: {enrolled}{adb}"


async def _run_headless(configs: list[TerminalConfig]) -> int:
    terminals = [EmulatedTerminal(config) for config in configs]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    started: list[EmulatedTerminal] = []
    status = 0
    try:
        for terminal in terminals:
            try:
                await terminal.start()
            except Exception as error:
                print(f"terminal {terminal.serial}: failed to start: {error}", file=sys.stderr)
                await terminal.stop()
                status = 1
                continue
            started.append(terminal)
            print(_describe(terminal), flush=True)
        if not started:
            return 1
        print(f"{len(started)} terminal(s) running; Ctrl-C to stop", flush=True)
        await stop.wait()
    finally:
        await asyncio.gather(*(terminal.stop() for terminal in started), return_exceptions=True)
    return status


def _run_window(config: TerminalConfig) -> int:
    try:
        from terminal_emulator.ui.app import run_window
    except ImportError as error:
        print(f"mpac terminal: no UI available ({error}); use --headless", file=sys.stderr)
        return 2
    loop = asyncio.new_event_loop()
    terminal = EmulatedTerminal(config)
    thread = threading.Thread(
        target=loop.run_forever, name=f"terminal-{config.serial}", daemon=True
    )
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(terminal.start(), loop).result(60)
        print(_describe(terminal), flush=True)
        run_window(terminal.presenter, title=f"{config.name} {config.serial}")
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(terminal.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    configs = _configs(args)
    if not args.headless:
        if len(configs) > 1:
            print("mpac terminal: --count needs --headless", file=sys.stderr)
            return 2
        return _run_window(configs[0])
    try:
        return asyncio.run(_run_headless(configs))
    except KeyboardInterrupt:
        return 130
