"""A scripted presenter for the window tests: the Business App's sale and the Credit Card App's
card screens, as fake screens (no device): amount entry -> charge -> present card -> (PIN) ->
processing -> approved. The approval arrives from another thread, as the device's would."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from terminal_emulator.presentation import (
    BUSINESS_APP,
    CREDIT_CARD_APP,
    Button,
    FakePresenter,
    Screen,
    StatusBar,
)
from terminal_emulator.ui.format import card_number, format_yen

STATUS = StatusBar(
    terminal_name="Sakura Cafe #1", serial="MPAC-0001", online=True, enrolled=True, clock="10:23"
)
PIN_CARD = "4000000000001000"
PIN = "1234"


def amount_entry(amount: str = "") -> Screen:
    return Screen(
        app=BUSINESS_APP,
        name="amount_entry",
        title="New sale",
        lines=("Enter the amount to charge",),
        fields={"amount": amount},
        buttons=(Button("charge", "Charge"), Button("tabs", "Open tabs")),
        status=STATUS,
    )


def present_card(amount: int) -> Screen:
    return Screen(
        app=CREDIT_CARD_APP,
        name="present_card",
        title="Present card",
        lines=(f"Amount  {format_yen(amount)}", "Tap, insert or swipe a card"),
        fields={},
        buttons=(Button("cancel", "Cancel"),),
        status=STATUS,
    )


def pin_entry(amount: int) -> Screen:
    return Screen(
        app=CREDIT_CARD_APP,
        name="pin_entry",
        title="Enter PIN",
        lines=(f"Amount  {format_yen(amount)}", "Enter your PIN on the PIN pad"),
        fields={},
        buttons=(Button("cancel", "Cancel"),),
        status=STATUS,
    )


def processing(amount: int) -> Screen:
    return Screen(
        app=CREDIT_CARD_APP,
        name="processing",
        title="Processing…",
        lines=(f"Amount  {format_yen(amount)}", "Do not remove the card"),
        fields={},
        buttons=(),
        status=STATUS,
    )


def approved(amount: int, pan: str) -> Screen:
    return Screen(
        app=CREDIT_CARD_APP,
        name="result",
        title="Approved",
        lines=(
            format_yen(amount),
            f"Card  {card_number(pan)[:4]} •••• {pan[-4:]}",
            "Auth code 004213",
        ),
        fields={},
        buttons=(Button("done", "Done"), Button("receipt", "Print receipt")),
        status=STATUS,
    )


@dataclass
class ScriptedPaymentPresenter(FakePresenter):
    """Records the input like :class:`FakePresenter` and moves through a sale's screens."""

    screen: Screen = field(default_factory=amount_entry)
    approval_delay_s: float = 0.3

    _charged: str = field(default="", init=False, repr=False)

    def _amount(self) -> int:
        return int(self._charged or 0)

    def press(self, button_id: str) -> None:
        super().press(button_id)
        if button_id == "charge" and self.screen.name == "amount_entry":
            self._charged = self.screen.fields.get("amount", "") or "0"
            self.show(present_card(self._amount()))
        elif button_id in {"cancel", "done"}:
            self.show(amount_entry())

    def present_card(self, method: str, pan: str) -> None:
        super().present_card(method, pan)
        if self.screen.name != "present_card":
            return
        if pan == PIN_CARD:
            self.show(pin_entry(self._amount()))
        else:
            self._authorize(pan)

    def enter_pin(self, pin: str) -> None:
        super().enter_pin(pin)
        if self.screen.name == "pin_entry" and pin == PIN:
            self._authorize(PIN_CARD)

    def _authorize(self, pan: str) -> None:
        self.show(processing(self._amount()))
        # The provider answers on the device's thread, not the UI's.
        timer = threading.Timer(
            self.approval_delay_s, lambda: self.show(approved(self._amount(), pan))
        )
        timer.daemon = True
        timer.start()
