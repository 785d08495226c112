"""The window's formatting helpers (no Kivy, no display)."""

from __future__ import annotations

import pytest

from terminal_emulator.ui.format import (
    app_name,
    card_number,
    field_label,
    field_preview,
    format_yen,
    is_numeric_field,
    masked_pin,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "¥0"), (1200, "¥1,200"), ("1200", "¥1,200"), (1234567, "¥1,234,567"), (-500, "-¥500"),
     ("1,200", "¥1,200"), ("abc", "abc")],
)  # fmt: skip
def test_yen_amounts_are_formatted_with_thousands_separators(value: int | str, text: str) -> None:
    assert format_yen(value) == text


def test_amount_fields_preview_the_formatted_amount() -> None:
    assert field_preview("amount", "1200") == "¥1,200"
    assert field_preview("refund_amount", "50") == "¥50"
    assert field_preview("amount", "") == ""
    assert field_preview("note", "1200") == ""
    assert is_numeric_field("amount")
    assert is_numeric_field("pin")
    assert not is_numeric_field("note")


def test_labels_of_apps_fields_cards_and_pins() -> None:
    assert app_name("business") == "Business"
    assert app_name("creditcard") == "Credit Card"
    assert field_label("refund_amount") == "Refund amount"
    assert card_number("4242424242424242") == "4242 4242 4242 4242"
    assert card_number("378282246310005") == "3782 822463 10005"
    assert masked_pin("1234") == "••••"
