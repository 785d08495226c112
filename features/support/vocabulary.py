"""The words of the feature files, as pytest-bdd parse types: amounts (``¥1,200``), the test
catalogue's cards (``the approved Visa card``), how a card is presented (``taps``), decline
reasons (``"insufficient funds"``) and quoted names (``"Shibuya"``).

Every step is declared with :func:`step_text`, so every feature file speaks the same language;
``docs/bdd.md`` lists the words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_bdd import parsers

from terminal_emulator.contract import ErrorCode
from terminal_emulator.hardware import catalogue

# --------------------------------------------------------------------------------------------
# Amounts: integer yen, never floats


def parse_yen(text: str) -> int:
    """``¥1,200`` → 1200 (yen are JPY's minor unit: no fractions, ever)."""
    return int(text.removeprefix("¥").replace(",", ""))


parse_yen.pattern = r"¥(?:\d{1,3}(?:,\d{3})+|\d+)"  # type: ignore[attr-defined]


def yen(amount: int) -> str:
    """1200 → ``¥1,200``: how a store writes an amount (and how the terminal shows it)."""
    return f"¥{amount:,}"


# --------------------------------------------------------------------------------------------
# The test catalogue's cards


@dataclass(frozen=True)
class Card:
    """A card of the provider's test catalogue (``terminal_emulator.hardware.catalogue()``),
    under the name QA uses for it. ``pan`` goes to the card reader only: never log it."""

    name: str
    pan: str
    brand: str

    @property
    def last4(self) -> str:
        return self.pan[-4:]

    @property
    def masked_pan(self) -> str:
        return f"**** **** **** {self.last4}"

    def __repr__(self) -> str:  # a failing assertion must not print the card number
        return f"Card({self.name!r}, ending {self.last4})"


# QA's name of each catalogue card, by card number (docs/provider.md, "Test cards").
CARD_NAMES: dict[str, str] = {
    "4242424242424242": "approved Visa card",
    "5555555555554444": "approved Mastercard card",
    "3566002020360505": "approved JCB card",
    "378282246310005": "approved Amex card",
    "4000000000000002": "declined Visa card (generic decline)",
    "4000000000009995": "declined Visa card (insufficient funds)",
    "4000000000009987": "declined Visa card (lost card)",
    "4000000000009979": "declined Visa card (stolen card)",
    "4000000000000069": "declined Visa card (expired card)",
    "4000000000000119": "declined Visa card (processing error)",
    "4000000000001026": "declined Visa card (do not honor)",
    "4000000000001000": "Visa PIN card",
    "4000000000001018": "Visa wrong-PIN card",
    "4000000000001034": "Visa provider-timeout card",
}


def catalogue_cards() -> dict[str, Card]:
    """Every catalogue card by its QA name (lower case)."""
    cards = {}
    for entry in catalogue():
        name = CARD_NAMES.get(entry.pan)
        if name is None:
            raise LookupError(f"catalogue card {entry.label!r} has no QA name in CARD_NAMES")
        cards[name.lower()] = Card(name, entry.pan, entry.brand)
    return cards


CARDS = catalogue_cards()


def parse_card(text: str) -> Card:
    return CARDS[text.lower()]


parse_card.pattern = "|".join(  # type: ignore[attr-defined]
    re.escape(name) for name in sorted(CARDS, key=len, reverse=True)
)

# --------------------------------------------------------------------------------------------
# Presenting a card

PRESENTATIONS = {"taps": "tap", "inserts": "insert", "swipes": "swipe"}


def parse_presentation(text: str) -> str:
    """``taps`` / ``inserts`` / ``swipes`` → the card reader's method."""
    return PRESENTATIONS[text]


parse_presentation.pattern = "|".join(PRESENTATIONS)  # type: ignore[attr-defined]

# --------------------------------------------------------------------------------------------
# Why a payment was declined


@dataclass(frozen=True)
class DeclineReason:
    phrase: str  # what the feature file says
    error_code: ErrorCode  # what the terminal answers (the Intent contract)
    failure_code: str  # what pgw records on the payment (docs/provider.md)


DECLINE_REASONS: dict[str, DeclineReason] = {
    reason.phrase: reason
    for reason in (
        DeclineReason("generic decline", ErrorCode.DECLINED_GENERIC, "generic_decline"),
        DeclineReason(
            "insufficient funds", ErrorCode.DECLINED_INSUFFICIENT_FUNDS, "insufficient_funds"
        ),
        DeclineReason("lost card", ErrorCode.DECLINED_LOST_CARD, "lost_card"),
        DeclineReason("stolen card", ErrorCode.DECLINED_STOLEN_CARD, "stolen_card"),
        DeclineReason("expired card", ErrorCode.DECLINED_EXPIRED_CARD, "expired_card"),
        DeclineReason("processing error", ErrorCode.DECLINED_PROCESSING_ERROR, "processing_error"),
        DeclineReason("do not honor", ErrorCode.DECLINED_DO_NOT_HONOR, "do_not_honor"),
        DeclineReason("invalid card number", ErrorCode.DECLINED_INVALID_NUMBER, "invalid_number"),
        DeclineReason("PIN required", ErrorCode.PIN_REQUIRED, "pin_required"),
        DeclineReason("incorrect PIN", ErrorCode.INCORRECT_PIN, "incorrect_pin"),
    )
}


def parse_decline_reason(text: str) -> DeclineReason:
    return DECLINE_REASONS[text]


parse_decline_reason.pattern = "|".join(  # type: ignore[attr-defined]
    re.escape(phrase) for phrase in sorted(DECLINE_REASONS, key=len, reverse=True)
)

# --------------------------------------------------------------------------------------------
# What the gateway says about a payment, as a store says it

PAYMENT_STATUSES = {
    "authorized": "authorized",
    "captured": "captured",
    "partially refunded": "partially_refunded",
    "fully refunded": "refunded",
    "voided": "voided",
    "declined": "declined",
    "cancelled": "canceled",
    "expired": "expired",
    "waiting for the customer": "requires_action",
    "processing": "processing",
}


def parse_payment_status(text: str) -> str:
    """``partially refunded`` → pgw's ``partially_refunded``."""
    return PAYMENT_STATUSES[text]


parse_payment_status.pattern = "|".join(  # type: ignore[attr-defined]
    re.escape(phrase) for phrase in sorted(PAYMENT_STATUSES, key=len, reverse=True)
)

ENTRY_MODES = {"contactless": "contactless", "chip": "chip", "swipe": "swipe"}


def parse_entry_mode(text: str) -> str:
    return ENTRY_MODES[text]


parse_entry_mode.pattern = "|".join(ENTRY_MODES)  # type: ignore[attr-defined]

TERMINAL_STATUSES = ("pending", "active", "suspended", "decommissioned")


def parse_terminal_status(text: str) -> str:
    return text


parse_terminal_status.pattern = "|".join(TERMINAL_STATUSES)  # type: ignore[attr-defined]

# --------------------------------------------------------------------------------------------
# People

ROLES = ("store manager", "merchant admin", "cashier", "auditor")


def parse_role(text: str) -> str:
    return text


parse_role.pattern = "|".join(ROLES)  # type: ignore[attr-defined]

# --------------------------------------------------------------------------------------------
# Names (stores, terminals, people), always in double quotes in the feature files


def parse_name(text: str) -> str:
    return text


parse_name.pattern = r'[^"]+'  # type: ignore[attr-defined]


def parse_count(text: str) -> int:
    return int(text)


parse_count.pattern = r"\d+"  # type: ignore[attr-defined]


def parse_digits(text: str) -> str:
    return text


parse_digits.pattern = r"\d+"  # type: ignore[attr-defined]

#: The parse types every step may use: ``{amount:Yen}``, ``{card:Card}``, ...
TYPES: dict[str, Callable[[str], Any]] = {
    "Yen": parse_yen,
    "Card": parse_card,
    "Presentation": parse_presentation,
    "DeclineReason": parse_decline_reason,
    "PaymentStatus": parse_payment_status,
    "EntryMode": parse_entry_mode,
    "TerminalStatus": parse_terminal_status,
    "Role": parse_role,
    "Name": parse_name,
    "Count": parse_count,
    "Digits": parse_digits,
}


def step_text(template: str) -> parsers.parse:
    """The parser of one step, e.g. ``step_text('the cashier charges {amount:Yen}')``."""
    return parsers.parse(template, extra_types=TYPES)
