from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DirectoryStatus = Literal["active", "suspended", "closed", "pending", "decommissioned"]


class _Synced(BaseModel):
    model_config = ConfigDict(extra="forbid")

    psp_id: uuid.UUID
    status: DirectoryStatus
    # The portal's outbox sequence number: only a newer version replaces what pgw holds. A
    # BIGINT column: a larger number is refused here, not by the database.
    source_version: int = Field(ge=1, le=2**63 - 1)


class MerchantSync(_Synced):
    name: str = Field(max_length=200)


class StoreSync(_Synced):
    merchant_id: uuid.UUID
    name: str = Field(max_length=200)
    timezone: str = Field(max_length=64)


class TerminalSync(_Synced):
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    serial: str = Field(max_length=64)


class SyncResult(BaseModel):
    id: uuid.UUID
    applied: bool
