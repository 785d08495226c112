"""Pure formatting helpers of the window (no Kivy): testable without a display."""

from __future__ import annotations

from terminal_emulator.presentation import BUSINESS_APP, CREDIT_CARD_APP

APP_NAMES = {BUSINESS_APP: "Business", CREDIT_CARD_APP: "Credit Card"}

# Fields whose value is a yen amount (integer yen: JPY has no minor unit).
AMOUNT_FIELDS = frozenset({"amount", "tip", "refund_amount", "total"})
# Fields that take digits only.
NUMERIC_FIELDS = AMOUNT_FIELDS | {"pin", "code", "enrollment_code"}


def format_yen(value: int | str) -> str:
    """``1200`` -> ``"¥1,200"``; text that is not an integer is returned unchanged."""
    try:
        amount = int(str(value).replace(",", "").strip())
    except ValueError:
        return str(value)
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,}"


def app_name(app: str) -> str:
    return APP_NAMES.get(app, app.replace("_", " ").title())


def field_label(field: str) -> str:
    """``"refund_amount"`` -> ``"Refund amount"``."""
    return field.replace("_", " ").capitalize()


def is_amount_field(field: str) -> bool:
    return field in AMOUNT_FIELDS or field.endswith("_amount")


def is_numeric_field(field: str) -> bool:
    return field in NUMERIC_FIELDS or is_amount_field(field)


def field_preview(field: str, value: str) -> str:
    """What is shown under an input: the formatted amount (``¥1,200``) for amount fields."""
    if is_amount_field(field) and value.strip():
        return format_yen(value)
    return ""


def card_number(pan: str) -> str:
    """Groups a PAN the way it is embossed: ``4242 4242 4242 4242``, Amex ``3782 822463 10005``."""
    if len(pan) == 15:
        return f"{pan[:4]} {pan[4:10]} {pan[10:]}"
    return " ".join(pan[i : i + 4] for i in range(0, len(pan), 4))


def masked_pin(pin: str) -> str:
    return "•" * len(pin)
