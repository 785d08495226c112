from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.pgw.payments.schemas import CURRENCY_EXPONENTS, MAX_AMOUNT


class PaymentTokenCreate(BaseModel):
    """What the token may pay: nothing named means any one payment of the store."""

    model_config = ConfigDict(extra="forbid")

    amount: int | None = Field(
        default=None,
        gt=0,
        le=MAX_AMOUNT,
        description="The only amount (minor units of `currency`) the payment may have",
    )
    currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="The only currency the payment may have"
    )
    payment_id: uuid.UUID | None = Field(
        default=None,
        description="Bind the token to this existing payment (read / cancel it; no new payment)",
    )
    reference: str | None = Field(
        default=None,
        max_length=128,
        description="The caller's own reference (an order number); echoed back, not stored",
    )
    store_id: uuid.UUID | None = Field(
        default=None, description="Needed when the caller is not bound to one store"
    )

    @field_validator("currency")
    @classmethod
    def _supported_currency(cls, value: str | None) -> str | None:
        if value is not None and value not in CURRENCY_EXPONENTS:
            raise ValueError(f"currency {value} is not supported")
        return value


class PaymentTokenInfo(BaseModel):
    """A payment token as its holder may see it (never the token itself)."""

    id: uuid.UUID
    expires_at: dt.datetime
    expires_in: int = Field(description="Seconds left")
    store_id: uuid.UUID
    terminal_id: uuid.UUID | None
    amount: int | None
    currency: str | None
    payment_id: uuid.UUID | None


class PaymentTokenIssued(PaymentTokenInfo):
    token: str = Field(description="Send as 'Authorization: Bearer <token>'; shown once")
    token_type: Literal["Bearer"] = "Bearer"
    reference: str | None
