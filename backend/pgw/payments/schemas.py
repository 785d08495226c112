from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# ISO 4217 currencies accepted, with their minor-unit exponent (JPY has none: amounts are yen).
CURRENCY_EXPONENTS: dict[str, int] = {
    "JPY": 0,
    "KRW": 0,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "AUD": 2,
    "SGD": 2,
    "THB": 2,
    "TWD": 2,
}
MAX_AMOUNT = 10**12


class CardInput(BaseModel):
    """What the card reader produced. Passed to the provider, never stored or logged."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    pan: str = Field(pattern=r"^[0-9]{12,19}$", repr=False)
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    cvv: str | None = Field(default=None, pattern=r"^[0-9]{3,4}$", repr=False)
    pin: str | None = Field(default=None, pattern=r"^[0-9]{4,12}$", repr=False)


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    amount: int = Field(gt=0, le=MAX_AMOUNT, description="Minor units of `currency` (JPY: yen)")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    tip_amount: int = Field(default=0, ge=0, le=MAX_AMOUNT)
    method: Literal["card_present", "qr_wallet"] = "card_present"
    entry_mode: Literal["contactless", "chip", "swipe"] | None = None
    capture_method: Literal["automatic", "manual"] = "automatic"
    card: CardInput | None = None
    store_id: uuid.UUID | None = Field(
        default=None, description="Needed when the caller is not bound to one store"
    )
    reference: str | None = Field(default=None, max_length=128)
    description: str | None = Field(default=None, max_length=500)
    cashier_id: str | None = Field(default=None, max_length=64)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=20)

    @field_validator("currency")
    @classmethod
    def _supported_currency(cls, value: str) -> str:
        if value not in CURRENCY_EXPONENTS:
            raise ValueError(f"currency {value} is not supported")
        return value


class CaptureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int | None = Field(default=None, gt=0, le=MAX_AMOUNT)


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int | None = Field(
        default=None, gt=0, le=MAX_AMOUNT, description="Default: all that is left"
    )
    reason: str | None = Field(default=None, max_length=200)


class CardRead(BaseModel):
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    fingerprint: str | None


class PaymentRead(BaseModel):
    id: uuid.UUID
    status: str
    method: str
    entry_mode: str | None
    capture_method: str
    currency: str
    amount: int
    tip_amount: int
    amount_captured: int
    amount_refunded: int
    amount_refundable: int
    card: CardRead | None
    auth_code: str | None
    qr_payload: str | None
    failure_code: str | None
    failure_message: str | None
    reference: str | None
    description: str | None
    cashier_id: str | None
    metadata: dict[str, Any]
    psp_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    terminal_id: uuid.UUID | None
    settlement_batch_id: uuid.UUID | None
    created_at: dt.datetime
    updated_at: dt.datetime
    captured_at: dt.datetime | None


class RefundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    payment_id: uuid.UUID
    amount: int
    currency: str
    status: str
    reason: str | None
    created_at: dt.datetime


class RefundResult(BaseModel):
    refund: RefundRead
    payment: PaymentRead


class PaymentEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: dt.datetime
    event_type: str
    from_status: str | None
    to_status: str
    amount: int | None
    actor: str | None
    data: dict[str, Any]


class PaymentPage(BaseModel):
    items: list[PaymentRead]
    next_cursor: uuid.UUID | None
