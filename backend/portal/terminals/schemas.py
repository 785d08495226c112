from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field


class TerminalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store_id: uuid.UUID
    serial: str = Field(pattern=r"^[A-Za-z0-9._-]{4,64}$")
    name: str = Field(min_length=1, max_length=100)
    model: str = Field(default="SmartPOS", min_length=1, max_length=100)


class TerminalStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


class TerminalRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    psp_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    serial: str
    name: str
    model: str
    status: str
    status_reason: str | None
    key_thumbprint: str | None
    enrolled_at: dt.datetime | None
    created_at: dt.datetime


class ActivationCode(BaseModel):
    terminal_id: uuid.UUID
    # Shown once: only a hash is stored.
    activation_code: str
    expires_at: dt.datetime


class TerminalRegistered(BaseModel):
    terminal: TerminalRead
    activation: ActivationCode
