"""The test card catalogue and the rules that turn a card presentment into an outcome.

Pure functions, no I/O: the authorization service asks :func:`decide` and stores what it says.
Documented for people in ``docs/provider.md`` (keep the two in step).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
from dataclasses import dataclass


class Behaviour(enum.Enum):
    """What a catalogue card does, whatever the amount."""

    APPROVE = "approve"
    DECLINE = "decline"  # always declined with the card's decline code
    PIN_REQUIRED = "pin_required"  # declined without a PIN, approved with CORRECT_PIN
    INCORRECT_PIN = "incorrect_pin"  # pin_required without a PIN, incorrect_pin with any
    TIMEOUT = "timeout"  # approved and stored, but the answer stalls


@dataclass(frozen=True)
class CatalogueCard:
    pan: str
    brand: str
    behaviour: Behaviour
    decline_code: str | None = None
    description: str = ""


CORRECT_PIN = "1234"

_CARDS = (
    CatalogueCard("4242424242424242", "visa", Behaviour.APPROVE, description="approved"),
    CatalogueCard("5555555555554444", "mastercard", Behaviour.APPROVE, description="approved"),
    CatalogueCard("3566002020360505", "jcb", Behaviour.APPROVE, description="approved"),
    CatalogueCard("378282246310005", "amex", Behaviour.APPROVE, description="approved"),
    CatalogueCard("4000000000000002", "visa", Behaviour.DECLINE, "generic_decline"),
    CatalogueCard("4000000000009995", "visa", Behaviour.DECLINE, "insufficient_funds"),
    CatalogueCard("4000000000009987", "visa", Behaviour.DECLINE, "lost_card"),
    CatalogueCard("4000000000009979", "visa", Behaviour.DECLINE, "stolen_card"),
    CatalogueCard("4000000000000069", "visa", Behaviour.DECLINE, "expired_card"),
    CatalogueCard("4000000000000119", "visa", Behaviour.DECLINE, "processing_error"),
    # Our own numbers (Luhn-valid, 4000 0000 0000 1xxx).
    CatalogueCard(
        "4000000000001000",
        "visa",
        Behaviour.PIN_REQUIRED,
        description="pin_required without a PIN; approved with PIN 1234; incorrect_pin otherwise",
    ),
    CatalogueCard(
        "4000000000001018",
        "visa",
        Behaviour.INCORRECT_PIN,
        description="incorrect_pin with any PIN; pin_required without one",
    ),
    CatalogueCard("4000000000001026", "visa", Behaviour.DECLINE, "do_not_honor"),
    CatalogueCard(
        "4000000000001034",
        "visa",
        Behaviour.TIMEOUT,
        description="approved and stored, but the answer comes after provider_timeout_delay_s",
    ),
)

CATALOGUE: dict[str, CatalogueCard] = {card.pan: card for card in _CARDS}

# Unknown (not catalogued) Luhn-valid cards: the last two digits of the amount in minor units
# pick the outcome, after the ISO 8583 response codes they resemble; anything else approves.
AMOUNT_RULES: dict[int, str] = {
    5: "do_not_honor",
    14: "invalid_number",
    41: "lost_card",
    43: "stolen_card",
    51: "insufficient_funds",
    54: "expired_card",
    96: "processing_error",
}

DECLINE_CODES = (
    "generic_decline",
    "insufficient_funds",
    "lost_card",
    "stolen_card",
    "expired_card",
    "processing_error",
    "do_not_honor",
    "pin_required",
    "incorrect_pin",
    "invalid_number",
)


def luhn_valid(pan: str) -> bool:
    if not pan.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(pan)):
        digit = int(char)
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def brand_of(pan: str) -> str:
    """The scheme a PAN belongs to, by its issuer identification number."""
    if pan in CATALOGUE:
        return CATALOGUE[pan].brand
    two, four = int(pan[:2]), int(pan[:4])
    if pan.startswith("4"):
        return "visa"
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if 3528 <= four <= 3589:
        return "jcb"
    if pan.startswith(("6011", "65")) or 644 <= int(pan[:3]) <= 649:
        return "discover"
    if two in (36, 38, 39) or 300 <= int(pan[:3]) <= 305:
        return "diners"
    if two == 62:
        return "unionpay"
    return "unknown"


def fingerprint(pan: str, key: str) -> str:
    """Stable, keyed and one-way: the same card always gets the same fingerprint."""
    return hmac.new(key.encode(), pan.encode(), hashlib.sha256).hexdigest()


def normalise_exp_year(exp_year: int) -> int:
    return exp_year + 2000 if exp_year < 100 else exp_year


def is_expired(exp_month: int, exp_year: int, today: dt.date) -> bool:
    """A card is valid through the last day of its expiry month."""
    return (normalise_exp_year(exp_year), exp_month) < (today.year, today.month)


@dataclass(frozen=True)
class Decision:
    approved: bool
    decline_code: str | None
    stall: bool = False  # answer only after the provider timeout delay


def _approve(*, stall: bool = False) -> Decision:
    return Decision(approved=True, decline_code=None, stall=stall)


def _decline(code: str) -> Decision:
    return Decision(approved=False, decline_code=code)


def decide(
    *, pan: str, exp_month: int, exp_year: int, pin: str | None, amount: int, today: dt.date
) -> Decision:
    """The outcome of presenting ``pan`` for ``amount``, in this order of precedence:

    1. Luhn-invalid number: ``invalid_number``;
    2. past expiry date: ``expired_card``;
    3. a catalogue card: its behaviour;
    4. any other card: the amount rules (``AMOUNT_RULES``), else approved.
    """
    if not luhn_valid(pan):
        return _decline("invalid_number")
    if is_expired(exp_month, exp_year, today):
        return _decline("expired_card")
    card = CATALOGUE.get(pan)
    if card is None:
        code = AMOUNT_RULES.get(amount % 100)
        return _decline(code) if code else _approve()
    if card.behaviour is Behaviour.APPROVE:
        return _approve()
    if card.behaviour is Behaviour.TIMEOUT:
        return _approve(stall=True)
    if card.behaviour is Behaviour.DECLINE:
        assert card.decline_code is not None
        return _decline(card.decline_code)
    if pin is None:
        return _decline("pin_required")
    if card.behaviour is Behaviour.PIN_REQUIRED and hmac.compare_digest(pin, CORRECT_PIN):
        return _approve()
    return _decline("incorrect_pin")
