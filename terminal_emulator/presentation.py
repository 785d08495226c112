"""The UI contract of the emulated terminal: what a screen shows and what a user can do.

The Kivy UI renders only :class:`Screen` values and forwards input through a
:class:`TerminalPresenter`; headless tests click through the same presenter. Nothing here
imports a UI toolkit or the Android runtime, so the UI and the apps can be built and tested
apart. :class:`FakePresenter` is a scripted presenter for UI tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

BUSINESS_APP = "business"
CREDIT_CARD_APP = "creditcard"


@dataclass(frozen=True)
class Button:
    id: str
    label: str
    enabled: bool = True


@dataclass(frozen=True)
class StatusBar:
    terminal_name: str
    serial: str
    online: bool
    enrolled: bool
    clock: str  # "HH:MM"


@dataclass(frozen=True)
class Screen:
    app: str  # "business" | "creditcard"
    # "enroll", "amount_entry", "tabs", "tab_detail", "present_card", "pin_entry",
    # "processing", "result", "receipt", "refund", "end_of_day", "idle"
    name: str
    title: str
    lines: tuple[str, ...]
    fields: dict[str, str]
    buttons: tuple[Button, ...]
    status: StatusBar

    def button(self, button_id: str) -> Button | None:
        return next((b for b in self.buttons if b.id == button_id), None)


@dataclass(frozen=True)
class TestCard:
    __test__ = False  # not a pytest test class

    pan: str
    label: str
    brand: str


class TerminalPresenter(Protocol):
    def current_screen(self) -> Screen: ...

    def subscribe(self, callback: Callable[[Screen], None]) -> Callable[[], None]:
        """``callback`` gets every new screen (maybe from the device thread); returns an
        unsubscribe function."""
        ...

    def press(self, button_id: str) -> None:
        """Thread-safe: scheduled on the device's loop."""
        ...

    def type_text(self, field: str, text: str) -> None: ...

    def present_card(self, method: str, pan: str) -> None:
        """``method``: "tap" | "insert" | "swipe"."""
        ...

    def enter_pin(self, pin: str) -> None: ...

    def test_cards(self) -> tuple[TestCard, ...]: ...


# The provider's test cards (docs/provider.md), as the card reader's picker lists them.
TEST_CARDS: tuple[TestCard, ...] = (
    TestCard("4242424242424242", "Visa approved", "visa"),
    TestCard("5555555555554444", "Mastercard approved", "mastercard"),
    TestCard("3566002020360505", "JCB approved", "jcb"),
    TestCard("378282246310005", "Amex approved", "amex"),
    TestCard("4000000000000002", "Visa declined (generic)", "visa"),
    TestCard("4000000000009995", "Visa declined (insufficient funds)", "visa"),
    TestCard("4000000000009987", "Visa declined (lost card)", "visa"),
    TestCard("4000000000009979", "Visa declined (stolen card)", "visa"),
    TestCard("4000000000000069", "Visa declined (expired card)", "visa"),
    TestCard("4000000000000119", "Visa declined (processing error)", "visa"),
    TestCard("4000000000001000", "Visa PIN card (PIN 1234)", "visa"),
    TestCard("4000000000001018", "Visa wrong-PIN card", "visa"),
    TestCard("4000000000001026", "Visa declined (do not honor)", "visa"),
    TestCard("4000000000001034", "Visa provider timeout", "visa"),
)


def idle_status(name: str = "MPAC SmartPOS", serial: str = "EMU-0001") -> StatusBar:
    return StatusBar(terminal_name=name, serial=serial, online=False, enrolled=False, clock="00:00")


@dataclass
class FakePresenter:
    """A presenter for UI tests: shows the screens it is given and records the input."""

    screen: Screen = field(
        default_factory=lambda: Screen(
            app=BUSINESS_APP,
            name="amount_entry",
            title="Amount",
            lines=(),
            fields={"amount": ""},
            buttons=(Button("charge", "Charge"),),
            status=idle_status(),
        )
    )
    cards: tuple[TestCard, ...] = TEST_CARDS
    pressed: list[str] = field(default_factory=list)
    typed: list[tuple[str, str]] = field(default_factory=list)
    cards_presented: list[tuple[str, str]] = field(default_factory=list)
    pins: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Screen], None]] = []

    def current_screen(self) -> Screen:
        return self.screen

    def show(self, screen: Screen) -> None:
        """Test side: change the screen and notify subscribers."""
        with self._lock:
            self.screen = screen
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(screen)

    def subscribe(self, callback: Callable[[Screen], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def press(self, button_id: str) -> None:
        self.pressed.append(button_id)

    def type_text(self, field: str, text: str) -> None:
        self.typed.append((field, text))
        self.show(replace(self.screen, fields={**self.screen.fields, field: text}))

    def present_card(self, method: str, pan: str) -> None:
        self.cards_presented.append((method, pan))

    def enter_pin(self, pin: str) -> None:
        self.pins.append(pin)

    def test_cards(self) -> tuple[TestCard, ...]:
        return self.cards
