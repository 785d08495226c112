"""``EmulatedTerminal``: one SmartPOS terminal — a Device with the Business App and the Credit
Card App installed, the device identity, the card reader, the presenter the UI renders, and
optionally an ADB endpoint.

Many terminals live in one process and may share one event loop (headless load tests): a
terminal holds no global state, and everything it stores is under its ``state_dir``
(``device/`` for the Android runtime's data, ``identity/`` for the key and enrollment,
``adb_keys`` for the ADB allowlist).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from terminal_emulator.android import Clock, Device, DeviceConfig, Intent
from terminal_emulator.apps import business, creditcard
from terminal_emulator.apps.business import BusinessApplication, MainActivity
from terminal_emulator.apps.common import AppConfig, ScreenActivity, TerminalServices
from terminal_emulator.apps.creditcard import CreditCardApplication
from terminal_emulator.backend_client import BackendUrls, PgwClient, PortalClient, SmarttabClient
from terminal_emulator.contract import BUSINESS_MAIN_ACTIVITY, BUSINESS_PACKAGE, CREDIT_CARD_PACKAGE
from terminal_emulator.hardware import CardReader, SimulatedCardReader
from terminal_emulator.identity import DeviceIdentity
from terminal_emulator.presentation import (
    BUSINESS_APP,
    CREDIT_CARD_APP,
    TEST_CARDS,
    Screen,
    StatusBar,
    TestCard,
)

log = logging.getLogger(__name__)


@dataclass
class TerminalConfig:
    serial: str
    state_dir: Path
    urls: BackendUrls
    name: str = "MPAC SmartPOS"
    activation_code: str | None = None
    adb_port: int | None = None  # 0: any free port
    adb_allow_new_keys: bool = False
    card_reader: CardReader | None = None  # default: a SimulatedCardReader (the UI drives it)
    apps: AppConfig = field(default_factory=AppConfig)
    clock: Clock | None = None
    http_timeout_s: float = 15.0
    # How long before expiry a device token is replaced (None: a third of its life, ≤ 30 s).
    token_refresh_margin_s: float | None = None
    launch_business_app: bool = True


class DevicePresenter:
    """The :class:`~terminal_emulator.presentation.TerminalPresenter` of a terminal: renders the
    foreground activity's screen, adds the status bar, forwards input to the device's loop."""

    def __init__(self, terminal: EmulatedTerminal) -> None:
        self.terminal = terminal
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Screen], None]] = []
        self._screen: Screen | None = None
        self._scheduled = False

    # -- rendering ----------------------------------------------------------------------------

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.terminal.device.loop
        except RuntimeError:
            return False

    def status(self) -> StatusBar:
        terminal = self.terminal
        device = terminal.device
        try:
            zone: dt.tzinfo = ZoneInfo(device.properties.get("persist.sys.timezone", "Asia/Tokyo"))
        except (ZoneInfoNotFoundError, ValueError):
            zone = dt.UTC
        return StatusBar(
            terminal_name=terminal.config.name,
            serial=terminal.serial,
            online=terminal.online,
            enrolled=terminal.identity.enrolled,
            clock=device.clock.now().astimezone(zone).strftime("%H:%M"),
        )

    def render(self) -> Screen:
        """The screen now (call on the device loop)."""
        device = self.terminal.device
        activity = device.am.foreground_activity if device.running else None
        status = self.status()
        if isinstance(activity, ScreenActivity):
            try:
                view = activity.screen_view()
            except Exception:
                log.exception("screen_view failed")
            else:
                return Screen(
                    app=activity.APP,
                    name=view.name,
                    title=view.title,
                    lines=tuple(view.lines),
                    fields=dict(view.fields),
                    buttons=tuple(view.buttons),
                    status=status,
                )
        app = (
            CREDIT_CARD_APP
            if activity is not None and activity.package_name == CREDIT_CARD_PACKAGE
            else BUSINESS_APP
        )
        return Screen(
            app=app,
            name="idle",
            title=self.terminal.config.name,
            lines=(),
            fields={},
            buttons=(),
            status=status,
        )

    def invalidate(self) -> None:
        """Something shown may have changed: re-render soon (coalesced) and notify."""
        try:
            loop = self.terminal.device.loop
        except Exception:
            return
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        if self._on_loop():
            loop.call_soon(self._refresh)
        else:
            loop.call_soon_threadsafe(self._refresh)

    def _refresh(self) -> None:
        with self._lock:
            self._scheduled = False
        if not self.terminal.device.running:
            return
        screen = self.render()
        with self._lock:
            if screen == self._screen:
                return
            self._screen = screen
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(screen)
            except Exception:
                log.exception("screen subscriber failed")

    # -- the TerminalPresenter protocol ---------------------------------------------------------

    def current_screen(self) -> Screen:
        if self._on_loop():
            screen = self.render()
            with self._lock:
                self._screen = screen
            return screen
        with self._lock:
            screen_now = self._screen
        if screen_now is None:
            future = asyncio.run_coroutine_threadsafe(
                self._render_async(), self.terminal.device.loop
            )
            return future.result(5)
        return screen_now

    async def _render_async(self) -> Screen:
        return self.render()

    def subscribe(self, callback: Callable[[Screen], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _schedule(self, action: Callable[[], None]) -> None:
        def run() -> None:
            try:
                action()
            except Exception:
                log.exception("input handler failed")
            self.invalidate()

        loop = self.terminal.device.loop
        if self._on_loop():
            loop.call_soon(run)
        else:
            loop.call_soon_threadsafe(run)

    def _foreground(self) -> ScreenActivity | None:
        activity = self.terminal.device.am.foreground_activity
        return activity if isinstance(activity, ScreenActivity) else None

    def press(self, button_id: str) -> None:
        def run() -> None:
            activity = self._foreground()
            if activity is not None:
                activity.on_button(button_id)

        self._schedule(run)

    def type_text(self, field: str, text: str) -> None:
        def run() -> None:
            activity = self._foreground()
            if activity is not None:
                activity.on_text(field, text)

        self._schedule(run)

    def present_card(self, method: str, pan: str) -> None:
        reader: Any = self.terminal.card_reader
        if hasattr(reader, "present_card"):
            reader.present_card(method, pan)  # thread-safe by contract
        self.invalidate()

    def enter_pin(self, pin: str) -> None:
        reader: Any = self.terminal.card_reader
        if hasattr(reader, "enter_pin"):
            reader.enter_pin(pin)
        self.invalidate()

    def test_cards(self) -> tuple[TestCard, ...]:
        return TEST_CARDS

    # -- for headless drivers (same loop) -----------------------------------------------------

    async def wait_for(
        self, predicate: Callable[[Screen], bool] | str, timeout_s: float = 10.0
    ) -> Screen:
        """Wait until the current screen satisfies ``predicate`` (or has that name)."""
        check = (lambda s: s.name == predicate) if isinstance(predicate, str) else predicate
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            screen = self.current_screen()
            if check(screen):
                return screen
            if loop.time() > deadline:
                raise TimeoutError(f"screen is {screen.app}/{screen.name} {screen.lines}")
            await asyncio.sleep(0.02)


class EmulatedTerminal:
    def __init__(self, config: TerminalConfig) -> None:
        self.config = config
        self.serial = config.serial
        self.card_reader: CardReader = config.card_reader or SimulatedCardReader()
        self.device = Device(
            DeviceConfig(
                serial=config.serial, state_dir=config.state_dir / "device", model=config.name
            ),
            clock=config.clock,
        )
        self.http = httpx.AsyncClient(timeout=config.http_timeout_s)
        self.portal = PortalClient(config.urls.portal, self.http)
        self.identity = DeviceIdentity(
            config.state_dir / "identity",
            serial=config.serial,
            portal=self.portal,
            refresh_margin_s=config.token_refresh_margin_s,
        )
        self.pgw = PgwClient(config.urls.pgw, self.http, self.identity.access_token)
        self.smarttab = SmarttabClient(config.urls.smarttab, self.http, self.identity.access_token)
        self.presenter = DevicePresenter(self)
        self.online = False
        self.adb_server: Any = None
        self.services = TerminalServices(
            serial=config.serial,
            name=config.name,
            identity=self.identity,
            pgw=self.pgw,
            smarttab=self.smarttab,
            smarttab_url=config.urls.smarttab,
            card_reader=self.card_reader,
            config=config.apps,
            invalidate=self.presenter.invalidate,
            online=lambda: self.online,
            set_online=self._set_online,
        )
        self.identity.add_listener(self.presenter.invalidate)
        if isinstance(self.card_reader, SimulatedCardReader):
            self.card_reader.add_listener(self.presenter.invalidate)

    def _set_online(self, online: bool) -> None:
        self.online = online
        self.presenter.invalidate()

    @property
    def adb_port(self) -> int | None:
        return getattr(self.adb_server, "port", None) if self.adb_server is not None else None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> EmulatedTerminal:
        """Boot the device, install both apps, enroll (when given a code and not enrolled
        yet), start the token refresher, open the Business App, and the ADB endpoint."""
        await self.device.start()
        self.device.install(business.manifest(self.services))
        self.device.install(creditcard.manifest(self.services))
        self.device.am.add_listener(lambda _event: self.presenter.invalidate())
        if self.config.activation_code and not self.identity.enrolled:
            await self.identity.enroll(self.config.activation_code)
        self.identity.start_refresher()
        if self.config.launch_business_app:
            self.device.am.start_activity(Intent(component=BUSINESS_MAIN_ACTIVITY))
        if self.config.adb_port is not None:
            await self._start_adb(self.config.adb_port)
        self.presenter.invalidate()
        return self

    async def _start_adb(self, port: int) -> None:
        try:
            shell = importlib.import_module("terminal_emulator.shell")
        except ImportError:
            log.warning(
                "terminal %s: no terminal_emulator.shell module, ADB endpoint skipped", self.serial
            )
            return
        executor = shell.executor_for(self)
        self.adb_server = await shell.start_adb_endpoint(
            self,
            port,
            self.config.state_dir / "adb_keys",
            executor=executor,
            allow_new_keys=self.config.adb_allow_new_keys,
        )
        log.info("terminal %s: ADB endpoint on port %s", self.serial, self.adb_port)

    async def stop(self) -> None:
        if self.adb_server is not None:
            with contextlib.suppress(Exception):
                await self.adb_server.stop()
            self.adb_server = None
        await self.identity.stop()
        await self.device.shutdown()
        with contextlib.suppress(Exception):
            await self.config.apps.webview.close()  # the browser, if a page was opened
        await self.http.aclose()

    async def __aenter__(self) -> EmulatedTerminal:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- handles for drivers and tests --------------------------------------------------------

    def business_activity(self) -> MainActivity | None:
        for record in self.device.am.activity_stack():
            if isinstance(record.activity, MainActivity):
                return record.activity
        return None

    def business_app(self) -> BusinessApplication | None:
        process = self.device.am.process_of(BUSINESS_PACKAGE)
        app = process.application if process is not None else None
        return app if isinstance(app, BusinessApplication) else None

    def credit_card_app(self) -> CreditCardApplication | None:
        process = self.device.am.process_of(CREDIT_CARD_PACKAGE)
        app = process.application if process is not None else None
        return app if isinstance(app, CreditCardApplication) else None

    def __repr__(self) -> str:
        return f"<EmulatedTerminal {self.serial}>"
