"""What both apps share: the services a terminal injects into them, and screen activities.

Apps are ordinary runtime apps (``terminal_emulator.android``); their manifests get their
dependencies through factory closures (no globals), so many terminals live in one process.
An activity that shows something implements :class:`ScreenActivity`: the presenter renders
the foreground activity's :meth:`ScreenActivity.screen_view` and forwards button presses and
typed text to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from terminal_emulator.android import Activity
from terminal_emulator.backend_client import PgwClient, SmarttabClient
from terminal_emulator.hardware import CardReader
from terminal_emulator.identity import DeviceIdentity
from terminal_emulator.presentation import Button
from terminal_emulator.webview import FakeWebViewEngine, WebViewEngine

log = logging.getLogger(__name__)

CURRENCY_EXPONENTS = {"JPY": 0, "KRW": 0}


def format_amount(amount: int | None, currency: str | None) -> str:
    """``¥1,200`` / ``USD 12.00``: minor units as people read them."""
    if amount is None:
        return "-"
    currency = currency or "JPY"
    if currency == "JPY":
        return f"¥{amount:,}"
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    if exponent == 0:
        return f"{currency} {amount:,}"
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 10**exponent)
    return f"{currency} {sign}{whole:,}.{cents:0{exponent}d}"


@dataclass
class AppConfig:
    """Tunables of the apps (tests shorten the waits)."""

    # After pgw's 202 (processing), how long the Credit Card App keeps asking pgw before it
    # answers ``processing`` (the caller then queries).
    processing_wait_s: float = 8.0
    processing_poll_s: float = 0.5
    # How long a QUERY may spend finding out what became of an abandoned request.
    query_resolve_s: float = 6.0
    # How long the broadcast-started card screen shows the result before it closes itself.
    broadcast_result_screen_s: float = 3.0
    # Whether the Business App keeps the smarttab stream open.
    stream: bool = True
    currency: str = "JPY"
    # What shows the Business App's web pages (WebViewActivity): the fake (no browser; tests
    # play the page) unless a real engine is given, e.g. ``engine_named("chromium")``
    # (``mpac terminal --webview chromium``). A browser starts only when a page is opened.
    webview: WebViewEngine = field(default_factory=FakeWebViewEngine)


@dataclass
class TerminalServices:
    """What the terminal gives its apps: identity, backend clients, the card reader, and the
    way to tell the presenter that a screen changed."""

    serial: str
    name: str
    identity: DeviceIdentity
    pgw: PgwClient
    smarttab: SmarttabClient
    smarttab_url: str
    card_reader: CardReader
    config: AppConfig = field(default_factory=AppConfig)
    invalidate: Callable[[], None] = lambda: None
    online: Callable[[], bool] = lambda: False
    set_online: Callable[[bool], None] = lambda _online: None


@dataclass(frozen=True)
class ScreenView:
    """A screen without its status bar (the presenter adds it) and app name."""

    name: str
    title: str
    lines: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)
    buttons: tuple[Button, ...] = ()


class ScreenActivity(Activity):
    """An activity the presenter can render and click."""

    APP = ""

    def __init__(self, services: TerminalServices) -> None:
        super().__init__()
        self.services = services

    def screen_view(self) -> ScreenView:
        raise NotImplementedError

    def on_button(self, button_id: str) -> None:
        """A button of the current screen was pressed."""

    def on_text(self, field_name: str, text: str) -> None:
        """A field of the current screen was typed into."""

    def invalidate(self) -> None:
        self.services.invalidate()

    def on_resume(self) -> None:
        self.invalidate()
