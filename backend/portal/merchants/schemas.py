from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BankAccount(BaseModel):
    """Where a merchant's settlements are paid; stored encrypted (AES-256-GCM)."""

    model_config = ConfigDict(extra="forbid")

    bank_name: str = Field(min_length=1, max_length=100)
    branch: str = Field(min_length=1, max_length=100)
    account_number: str = Field(pattern=r"^[0-9]{4,34}$")
    holder_name: str = Field(min_length=1, max_length=140)


class MerchantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    bank_account: BankAccount | None = None


class MerchantUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["active", "suspended"] | None = None
    bank_account: BankAccount | None = None


class MerchantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    psp_id: uuid.UUID
    name: str
    status: str
    bank_account_last4: str | None
    created_at: dt.datetime
