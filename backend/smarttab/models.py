"""Tables of the smarttab schema (owned by smarttab alone)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, ClassVar

from sqlalchemy import BigInteger, DateTime, Index, PrimaryKeyConstraint, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.core.authz import ScopeLevel
from backend.core.models import service_metadata

STORE_TENANT = {
    ScopeLevel.PSP: "psp_id",
    ScopeLevel.MERCHANT: "merchant_id",
    ScopeLevel.STORE: "store_id",
}


class SmartTabBase(DeclarativeBase):
    metadata = service_metadata("smarttab")
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB}


class StoreSequence(SmartTabBase):
    """The last event number handed out per store; its row lock orders a store's events."""

    __tablename__ = "store_sequences"

    store_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class StoreEvent(SmartTabBase):
    """Everything pushed to a store's devices, numbered per store without gaps.

    Written in the transaction that made the change, published to Redis after it commits, and
    replayed from here to a device that reconnects with the last number it saw.
    """

    __tablename__ = "store_events"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = STORE_TENANT
    __table_args__ = (
        PrimaryKeyConstraint("store_id", "seq"),
        Index(None, "merchant_id", "created_at"),
        Index(None, "created_at"),
    )

    store_id: Mapped[uuid.UUID] = mapped_column()
    seq: Mapped[int] = mapped_column(BigInteger)
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    event_type: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
