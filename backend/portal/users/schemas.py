from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from backend.core.authz import Role

HumanRole = Literal["psp_admin", "merchant_admin", "store_manager", "cashier", "auditor"]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    display_name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=12, max_length=1024)
    role: HumanRole
    merchant_id: uuid.UUID | None = None
    store_id: uuid.UUID | None = None


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: HumanRole | None = None
    status: Literal["active", "disabled"] | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str
    role: Role
    status: str
    psp_id: uuid.UUID
    merchant_id: uuid.UUID | None
    store_id: uuid.UUID | None
    created_at: dt.datetime
