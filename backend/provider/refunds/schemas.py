from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict

from backend.provider.schemas import Amount, Reference


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: Reference
    amount: Amount


class RefundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    reference: str
    # Exactly one is set: a card refund names its authorization, a wallet refund its QR payment.
    authorization_id: str | None
    qr_payment_id: str | None
    amount: int
    currency: str
    status: Literal["succeeded"]
    created_at: dt.datetime
