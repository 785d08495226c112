from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.provider.schemas import Amount, Currency, ExternalId, Reference


class CardIn(BaseModel):
    """Card data as read by the terminal. Never stored, never logged, never echoed back."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    pan: str = Field(pattern=r"^[0-9]{12,19}$", repr=False)
    exp_month: int = Field(strict=True, ge=1, le=12)
    # Two digits (27) or four (2027).
    exp_year: int = Field(strict=True, ge=0, le=2099)
    cvv: str | None = Field(default=None, pattern=r"^[0-9]{3,4}$", repr=False)
    pin: str | None = Field(default=None, pattern=r"^[0-9]{4,12}$", repr=False)

    @field_validator("exp_year")
    @classmethod
    def _two_or_four_digits(cls, value: int) -> int:
        if 100 <= value < 2000:
            raise ValueError("exp_year must have two or four digits")
        return value


class AuthorizationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    reference: Reference
    amount: Amount
    currency: Currency
    capture: bool = Field(strict=True)
    entry_mode: Literal["contactless", "chip", "swipe"]
    card: CardIn
    merchant_id: ExternalId
    store_id: ExternalId
    terminal_id: ExternalId | None = None


class CaptureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Omitted: the whole authorized amount.
    amount: Amount | None = None


class AuthorizationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    reference: str
    status: Literal["approved", "declined"]
    decline_code: str | None
    auth_code: str | None
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str
    amount: int
    currency: str
    amount_authorized: int
    amount_captured: int
    amount_refunded: int
    captured: bool
    voided: bool
    capture: bool
    entry_mode: str
    merchant_id: str
    store_id: str
    terminal_id: str | None
    created_at: dt.datetime
    captured_at: dt.datetime | None
    voided_at: dt.datetime | None
