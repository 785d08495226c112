"""Settlement (end-of-day close, Z-report) request and response models."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SettlementScope = Literal["terminal", "store"]


class SettlementClose(BaseModel):
    """``POST /v1/settlements/close``. Every field is optional: a terminal closes itself."""

    model_config = ConfigDict(extra="forbid")

    scope: SettlementScope | None = Field(
        default=None,
        description="Default: `terminal` for a device token (its own terminal), `terminal` for "
        "staff naming a terminal_id, else `store`",
    )
    terminal_id: uuid.UUID | None = Field(
        default=None, description="The terminal to close (a device may only name itself)"
    )
    store_id: uuid.UUID | None = Field(
        default=None, description="The store to close; needed when the caller is above a store"
    )


class CloseTarget(BaseModel):
    """What a close resolved to before it runs; its JSON is the idempotency fingerprint's body,
    so one key reused for another terminal or store is refused instead of replayed."""

    scope: SettlementScope
    store_id: uuid.UUID | None
    terminal_id: uuid.UUID | None


class SettlementRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    scope: SettlementScope
    psp_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    terminal_id: uuid.UUID | None
    period_start: dt.datetime | None = Field(
        description="The previous batch's period_end for the same terminal/store; null at first"
    )
    period_end: dt.datetime = Field(description="When the close ran")
    closed_at: dt.datetime
    closed_by: str | None = Field(description="`device:<terminal id>`, `user:<id>`, ...")
    payment_count: int
    refund_count: int
    totals: dict[str, Any] = Field(
        description="Per currency (ISO 4217 code): payment_count, refund_count, gross, tips, "
        "refunds, net, by_method, by_card_brand, by_entry_mode; see docs/settlement.md"
    )


class SettlementPage(BaseModel):
    items: list[SettlementRead]
    next_cursor: uuid.UUID | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page"
    )
