"""Tables of the ``pgw`` schema, owned by the payment gateway alone.

``payments`` and ``payment_events`` are range-partitioned by month on ``created_at`` (the service
creates partitions ahead of time, see ``backend/pgw/partitions.py``). Their primary keys include
the partition key, as PostgreSQL requires; ids are UUIDv7, so ``created_at`` is derivable from an
id and a lookup by id prunes to one partition.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.core.authz import ScopeLevel
from backend.core.models import service_metadata, text_enum_check
from backend.pgw.payments.states import PaymentStatus

PAYMENT_METHODS = ("card_present", "qr_wallet")
ENTRY_MODES = ("contactless", "chip", "swipe")
CAPTURE_METHODS = ("automatic", "manual")
REFUND_STATUSES = ("succeeded", "failed")
IDEMPOTENCY_STATES = ("in_progress", "completed", "resumable")
DIRECTORY_STATUSES = ("active", "suspended", "closed", "pending", "decommissioned")

_TENANT = {
    ScopeLevel.PSP: "psp_id",
    ScopeLevel.MERCHANT: "merchant_id",
    ScopeLevel.STORE: "store_id",
}


class PgwBase(DeclarativeBase):
    metadata = service_metadata("pgw")
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB}


def _now_column() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class Payment(PgwBase):
    __tablename__ = "payments"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = _TENANT
    __table_args__ = (
        PrimaryKeyConstraint("id", "created_at"),
        CheckConstraint(text_enum_check("status", [s.value for s in PaymentStatus]), name="status"),
        CheckConstraint(text_enum_check("method", PAYMENT_METHODS), name="method"),
        CheckConstraint(
            f"entry_mode IS NULL OR {text_enum_check('entry_mode', ENTRY_MODES)}", name="entry_mode"
        ),
        CheckConstraint(text_enum_check("capture_method", CAPTURE_METHODS), name="capture_method"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("tip_amount >= 0", name="tip_non_negative"),
        CheckConstraint(
            "amount_captured >= 0 AND amount_captured <= amount + tip_amount", name="captured_range"
        ),
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount_captured", name="refunded_range"
        ),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
        Index(None, "merchant_id", "store_id", "created_at"),
        Index(None, "merchant_id", "status", "created_at"),
        Index(None, "store_id", "settlement_batch_id", "status"),
        Index(None, "status", "updated_at"),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    id: Mapped[uuid.UUID] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = _now_column()
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    store_id: Mapped[uuid.UUID] = mapped_column()
    terminal_id: Mapped[uuid.UUID | None] = mapped_column()
    status: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(Text)
    entry_mode: Mapped[str | None] = mapped_column(Text)
    capture_method: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    tip_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    amount_captured: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Card data kept under PCI DSS: never PAN, track, CVV or PIN.
    card_brand: Mapped[str | None] = mapped_column(Text)
    card_last4: Mapped[str | None] = mapped_column(Text)
    card_exp_month: Mapped[int | None] = mapped_column(SmallInteger)
    card_exp_year: Mapped[int | None] = mapped_column(SmallInteger)
    card_fingerprint: Mapped[str | None] = mapped_column(Text)
    auth_code: Mapped[str | None] = mapped_column(Text)
    provider_reference: Mapped[str | None] = mapped_column(Text)
    qr_payload: Mapped[str | None] = mapped_column(Text)
    failure_code: Mapped[str | None] = mapped_column(Text)
    failure_message: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    cashier_id: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, default=dict, server_default="{}"
    )
    captured_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    settlement_batch_id: Mapped[uuid.UUID | None] = mapped_column()
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class PaymentEvent(PgwBase):
    """Every status change of a payment, written in the same transaction as the change."""

    __tablename__ = "payment_events"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = _TENANT
    __table_args__ = (
        PrimaryKeyConstraint("id", "created_at"),
        Index(None, "payment_id", "created_at"),
        Index(None, "merchant_id", "created_at"),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    payment_id: Mapped[uuid.UUID] = mapped_column()
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    store_id: Mapped[uuid.UUID] = mapped_column()
    event_type: Mapped[str] = mapped_column(Text)
    from_status: Mapped[str | None] = mapped_column(Text)
    to_status: Mapped[str] = mapped_column(Text)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")


class Refund(PgwBase):
    __tablename__ = "refunds"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = _TENANT
    __table_args__ = (
        CheckConstraint(text_enum_check("status", REFUND_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index(None, "payment_id"),
        Index(None, "merchant_id", "store_id", "created_at"),
        Index(None, "store_id", "settlement_batch_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = _now_column()
    payment_id: Mapped[uuid.UUID] = mapped_column()
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    store_id: Mapped[uuid.UUID] = mapped_column()
    terminal_id: Mapped[uuid.UUID | None] = mapped_column()
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    provider_reference: Mapped[str | None] = mapped_column(Text)
    settlement_batch_id: Mapped[uuid.UUID | None] = mapped_column()


class IdempotencyKey(PgwBase):
    """An ``Idempotency-Key`` claim; the unique constraint is what stops a double execution."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("merchant_id", "operation", "key"),
        CheckConstraint(text_enum_check("state", IDEMPOTENCY_STATES), name="state"),
        Index(None, "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    operation: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    request_fingerprint: Mapped[str] = mapped_column(Text)
    # Fixed at claim time, so a retry after a crash reuses the same payment/refund id and the
    # provider (idempotent by reference) never charges twice.
    resource_id: Mapped[uuid.UUID] = mapped_column()
    state: Mapped[str] = mapped_column(Text)
    locked_at: Mapped[dt.datetime] = _now_column()
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = _now_column()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ProviderWebhookEvent(PgwBase):
    """Webhook events received; the primary key makes each event apply exactly once."""

    __tablename__ = "provider_webhook_events"

    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    event_type: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = _now_column()
    payment_id: Mapped[uuid.UUID | None] = mapped_column()
    outcome: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)


class KnownMerchant(PgwBase):
    """Directory synced from the portal (eventually consistent): who may take payments."""

    __tablename__ = "merchants"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = {
        ScopeLevel.PSP: "psp_id",
        ScopeLevel.MERCHANT: "id",
    }
    __table_args__ = (
        CheckConstraint(text_enum_check("status", DIRECTORY_STATUSES), name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    psp_id: Mapped[uuid.UUID] = mapped_column()
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    source_version: Mapped[int] = mapped_column(BigInteger)
    synced_at: Mapped[dt.datetime] = _now_column()


class KnownStore(PgwBase):
    __tablename__ = "stores"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = {
        ScopeLevel.PSP: "psp_id",
        ScopeLevel.MERCHANT: "merchant_id",
        ScopeLevel.STORE: "id",
    }
    __table_args__ = (
        CheckConstraint(text_enum_check("status", DIRECTORY_STATUSES), name="status"),
        Index(None, "merchant_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    name: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    source_version: Mapped[int] = mapped_column(BigInteger)
    synced_at: Mapped[dt.datetime] = _now_column()


class KnownTerminal(PgwBase):
    __tablename__ = "terminals"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = _TENANT
    __table_args__ = (
        CheckConstraint(text_enum_check("status", DIRECTORY_STATUSES), name="status"),
        Index(None, "merchant_id", "store_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    store_id: Mapped[uuid.UUID] = mapped_column()
    serial: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    source_version: Mapped[int] = mapped_column(BigInteger)
    synced_at: Mapped[dt.datetime] = _now_column()


class SettlementBatch(PgwBase):
    """An immutable end-of-day close (Z-report) for one terminal or one whole store."""

    __tablename__ = "settlement_batches"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = _TENANT
    __table_args__ = (
        CheckConstraint(text_enum_check("scope", ("terminal", "store")), name="scope"),
        CheckConstraint(
            "(scope = 'terminal') = (terminal_id IS NOT NULL)", name="terminal_scope_has_terminal"
        ),
        Index(None, "merchant_id", "store_id", "closed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    store_id: Mapped[uuid.UUID] = mapped_column()
    terminal_id: Mapped[uuid.UUID | None] = mapped_column()
    scope: Mapped[str] = mapped_column(Text)
    period_start: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime] = _now_column()
    closed_by: Mapped[str | None] = mapped_column(Text)
    payment_count: Mapped[int] = mapped_column(Integer)
    refund_count: Mapped[int] = mapped_column(Integer)
    # Per currency: gross, tips, refunds, net, and breakdowns by method, brand and entry mode.
    totals: Mapped[dict[str, Any]] = mapped_column(JSONB)


class PaymentToken(PgwBase):
    """Short-lived bearer token for web content in the terminal's WebView; stored as SHA-256."""

    __tablename__ = "payment_tokens"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = _TENANT
    __table_args__ = (
        CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
        Index(None, "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(Text, unique=True)
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID] = mapped_column()
    store_id: Mapped[uuid.UUID] = mapped_column()
    terminal_id: Mapped[uuid.UUID | None] = mapped_column()
    payment_id: Mapped[uuid.UUID | None] = mapped_column()
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _now_column()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
