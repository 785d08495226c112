"""Tables of the smarttab schema (owned by smarttab alone)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.core.authz import ScopeLevel
from backend.core.models import service_metadata, text_enum_check

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


# --- tabs (backend/smarttab/tabs, docs/smarttab.md) ----------------------------------------

TAB_STATUSES = ("open", "paying", "paid", "cancelled", "partially_refunded", "refunded")
TAX_CATEGORIES = ("standard", "reduced", "exempt")
ADJUSTMENT_KINDS = ("percentage", "fixed")
SPLIT_MODES = ("full", "equal", "amounts", "items")
PART_STATUSES = ("unpaid", "processing", "paid", "failed", "partially_refunded", "refunded")
ATTEMPT_STATUSES = (
    "processing",
    "requires_action",
    "captured",
    "declined",
    "failed",
    "expired",
    "canceled",
)
PAYMENT_METHODS = ("card_present", "qr_wallet")
REFUND_STATUSES = ("pending", "succeeded", "failed")


def _adjustment_checks(prefix: str) -> tuple[CheckConstraint, ...]:
    kind, value = f"{prefix}_kind", f"{prefix}_value"
    return (
        CheckConstraint(f"{kind} IS NULL OR {text_enum_check(kind, ADJUSTMENT_KINDS)}", name=kind),
        CheckConstraint(
            f"({kind} IS NULL AND {value} IS NULL) OR ({kind} = 'percentage' AND {value} "
            f"BETWEEN 1 AND 10000) OR ({kind} = 'fixed' AND {value} > 0)",
            name=f"{prefix}_value",
        ),
    )


class Tab(SmartTabBase):
    """A bill at a store. ``version`` grows with every change (optimistic concurrency: clients
    send it back as ``If-Match``); the totals are the last pricing of its items, kept for lists
    and events."""

    __tablename__ = "tabs"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = STORE_TENANT
    __table_args__ = (
        CheckConstraint(text_enum_check("status", TAB_STATUSES), name="status"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
        CheckConstraint("version >= 1", name="version_positive"),
        *_adjustment_checks("discount"),
        CheckConstraint(
            "service_charge_bp IS NULL OR service_charge_bp BETWEEN 1 AND 10000",
            name="service_charge_bp",
        ),
        CheckConstraint(
            f"split_mode IS NULL OR {text_enum_check('split_mode', SPLIT_MODES)}",
            name="split_mode",
        ),
        CheckConstraint(
            "tip_amount >= 0 AND subtotal >= 0 AND discount_total >= 0 AND service_charge >= 0 "
            "AND tax_total >= 0 AND total >= 0",
            name="totals_non_negative",
        ),
        CheckConstraint(
            "amount_paid >= 0 AND amount_refunded >= 0 AND amount_refunded <= amount_paid",
            name="paid_range",
        ),
        Index(None, "merchant_id", "store_id", "status"),
        Index(None, "store_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    store_id: Mapped[uuid.UUID] = mapped_column()
    status: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    label: Mapped[str | None] = mapped_column(Text)
    table_label: Mapped[str | None] = mapped_column(Text)
    cashier_id: Mapped[str | None] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    discount_kind: Mapped[str | None] = mapped_column(Text)
    discount_value: Mapped[int | None] = mapped_column(BigInteger)
    service_charge_bp: Mapped[int | None] = mapped_column(Integer)
    tip_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    discount_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    service_charge: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    tax_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Captured by pgw for this tab (tips at payment included), and refunded of that.
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    split_mode: Mapped[str | None] = mapped_column(Text)
    # Each new split gets the next generation; parts of older generations are kept for audit.
    split_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_position: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class TabItem(SmartTabBase):
    __tablename__ = "tab_items"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = STORE_TENANT
    __table_args__ = (
        UniqueConstraint("tab_id", "position"),
        CheckConstraint(text_enum_check("tax_category", TAX_CATEGORIES), name="tax_category"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_non_negative"),
        *_adjustment_checks("discount"),
        Index(None, "merchant_id", "store_id", "tab_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tab_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tabs.id"))
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    store_id: Mapped[uuid.UUID] = mapped_column()
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    sku: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    tax_category: Mapped[str] = mapped_column(Text)
    discount_kind: Mapped[str | None] = mapped_column(Text)
    discount_value: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class TabPart(SmartTabBase):
    """One part of a tab's split: what one payment settles."""

    __tablename__ = "tab_parts"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = STORE_TENANT
    __table_args__ = (
        UniqueConstraint("tab_id", "generation", "number"),
        CheckConstraint(text_enum_check("status", PART_STATUSES), name="status"),
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint("tip_share >= 0 AND amount > tip_share", name="amount_range"),
        CheckConstraint(
            "amount_captured >= 0 AND amount_refunded >= 0 AND amount_refunded <= amount_captured",
            name="captured_range",
        ),
        Index(None, "merchant_id", "store_id", "tab_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tab_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tabs.id"))
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    store_id: Mapped[uuid.UUID] = mapped_column()
    generation: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text)
    # What the part pays (tax, service charge and its share of the tab's tip included).
    amount: Mapped[int] = mapped_column(BigInteger)
    tip_share: Mapped[int] = mapped_column(BigInteger)
    item_ids: Mapped[list[str] | None] = mapped_column(JSONB)
    breakdown: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # The number of the part's latest payment attempt (0: none yet).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What pgw captured (the amount plus every tip) and refunded of it.
    amount_captured: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    payment_id: Mapped[uuid.UUID | None] = mapped_column()
    cashier_id: Mapped[str | None] = mapped_column(Text)
    paid_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class TabPaymentAttempt(SmartTabBase):
    """One try at paying a part, and the pgw payment it made.

    ``idempotency_key`` follows from tab, split generation, part and attempt number, so a retry
    of the same attempt (its outcome unknown) asks pgw with the same key and is never charged
    twice; a new attempt (after a decline) gets the next number and so a new key. Card data is
    never stored.
    """

    __tablename__ = "tab_payment_attempts"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = STORE_TENANT
    __table_args__ = (
        UniqueConstraint("part_id", "number"),
        UniqueConstraint("idempotency_key"),
        CheckConstraint(text_enum_check("status", ATTEMPT_STATUSES), name="status"),
        CheckConstraint(text_enum_check("method", PAYMENT_METHODS), name="method"),
        CheckConstraint("amount > 0 AND tip_amount >= 0", name="amounts"),
        Index(None, "merchant_id", "store_id", "tab_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tab_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tabs.id"))
    part_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tab_parts.id"))
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    store_id: Mapped[uuid.UUID] = mapped_column()
    number: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(Text)
    entry_mode: Mapped[str | None] = mapped_column(Text)
    # Sent to pgw as amount and tip_amount (the part's tip share plus the tip given at payment).
    amount: Mapped[int] = mapped_column(BigInteger)
    tip_amount: Mapped[int] = mapped_column(BigInteger)
    extra_tip: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cashier_id: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    payment_id: Mapped[uuid.UUID | None] = mapped_column()
    qr_payload: Mapped[str | None] = mapped_column(Text)
    failure_code: Mapped[str | None] = mapped_column(Text)
    failure_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class TabRefund(SmartTabBase):
    """A refund of one paid part through pgw; ``pending`` until pgw has answered."""

    __tablename__ = "tab_refunds"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = STORE_TENANT
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        CheckConstraint(text_enum_check("status", REFUND_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index(None, "merchant_id", "store_id", "tab_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tab_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tabs.id"))
    part_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tab_parts.id"))
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    store_id: Mapped[uuid.UUID] = mapped_column()
    payment_id: Mapped[uuid.UUID] = mapped_column()
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    pgw_refund_id: Mapped[uuid.UUID | None] = mapped_column()
    failure_code: Mapped[str | None] = mapped_column(Text)
    cashier_id: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
