from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.provider.schemas import Amount, Currency, ExternalId, Reference


class QrPaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: Reference
    amount: Amount
    currency: Currency
    merchant_id: ExternalId
    store_id: ExternalId
    terminal_id: ExternalId | None = None
    # The wallet the customer will pay with (what the event names).
    wallet: str = Field(default="paypay", pattern=r"^[a-z0-9_]{1,32}$")


class QrSimulate(BaseModel):
    """What the customer's wallet app does with the code."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["paid", "declined", "expired"]


class QrPaymentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    reference: str
    # The wallet's outcome: what ``simulate`` was told, or expired by the clock.
    status: Literal["pending", "paid", "declined", "expired"]
    qr_payload: str
    amount: int
    currency: str
    amount_refunded: int
    wallet: str
    merchant_id: str
    store_id: str
    terminal_id: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    completed_at: dt.datetime | None
