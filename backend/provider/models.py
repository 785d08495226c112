"""Tables of the ``provider`` schema, owned by the simulated acquirer alone.

No column ever holds a PAN, CVV, track data or PIN: a card is kept as brand, last four digits,
expiry and a keyed fingerprint. Amounts are integers in minor units. Objects carry the webhook
endpoint their events go to (fixed when they are created), so several provider instances with
different endpoints can share one database without delivering each other's events.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.core.models import TimestampMixin, service_metadata, text_enum_check

AUTHORIZATION_STATUSES = ("approved", "declined")
ENTRY_MODES = ("contactless", "chip", "swipe")
QR_PAYMENT_STATUSES = ("pending", "paid", "declined", "expired")
REFUND_STATUSES = ("succeeded",)
WEBHOOK_EVENT_STATUSES = ("pending", "delivered", "failed")
QR_PAYLOAD_SCHEME = "mpacqr://pay/"


class ProviderBase(DeclarativeBase):
    metadata = service_metadata("provider")
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB}


class Authorization(TimestampMixin, ProviderBase):
    __tablename__ = "authorizations"
    __table_args__ = (
        CheckConstraint(text_enum_check("status", AUTHORIZATION_STATUSES), name="status"),
        CheckConstraint(text_enum_check("entry_mode", ENTRY_MODES), name="entry_mode"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "amount_authorized >= 0 AND amount_authorized <= amount", name="authorized_range"
        ),
        CheckConstraint(
            "amount_captured >= 0 AND amount_captured <= amount_authorized",
            name="captured_range",
        ),
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount_captured", name="refunded_range"
        ),
        CheckConstraint("NOT (captured AND voided)", name="captured_or_voided"),
        CheckConstraint("status = 'approved' OR decline_code IS NOT NULL", name="declined_code"),
        # The idempotency key: one authorization per reference, however many requests race.
        UniqueConstraint("reference"),
        Index(None, "merchant_id", "store_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    reference: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    decline_code: Mapped[str | None] = mapped_column(Text)
    auth_code: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    capture: Mapped[bool] = mapped_column(Boolean)
    entry_mode: Mapped[str] = mapped_column(Text)
    brand: Mapped[str] = mapped_column(Text)
    last4: Mapped[str] = mapped_column(Text)
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(Text)
    amount_authorized: Mapped[int] = mapped_column(BigInteger)
    amount_captured: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    captured: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    voided: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    merchant_id: Mapped[str] = mapped_column(Text)
    store_id: Mapped[str] = mapped_column(Text)
    terminal_id: Mapped[str | None] = mapped_column(Text)
    webhook_url: Mapped[str] = mapped_column(Text)
    captured_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    voided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class QrPayment(TimestampMixin, ProviderBase):
    __tablename__ = "qr_payments"
    __table_args__ = (
        CheckConstraint(text_enum_check("status", QR_PAYMENT_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount", name="refunded_range"
        ),
        CheckConstraint("status = 'paid' OR amount_refunded = 0", name="refund_needs_paid"),
        UniqueConstraint("reference"),
        Index(None, "merchant_id", "store_id", "created_at"),
        # The expiry sweep reads only pending payments.
        Index(
            "ix_qr_payments_pending_expires_at",
            "webhook_url",
            "expires_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    reference: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    wallet: Mapped[str] = mapped_column(Text)
    merchant_id: Mapped[str] = mapped_column(Text)
    store_id: Mapped[str] = mapped_column(Text)
    terminal_id: Mapped[str | None] = mapped_column(Text)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    webhook_url: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def qr_payload(self) -> str:
        """What the terminal shows as a QR code and the customer's wallet scans."""
        return f"{QR_PAYLOAD_SCHEME}{self.id}"


class Refund(TimestampMixin, ProviderBase):
    """A refund of a captured authorization or of a paid QR payment (exactly one of them)."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint(text_enum_check("status", REFUND_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "(authorization_id IS NULL) <> (qr_payment_id IS NULL)", name="exactly_one_parent"
        ),
        UniqueConstraint("reference"),
        Index(None, "authorization_id"),
        Index(None, "qr_payment_id"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    reference: Mapped[str] = mapped_column(Text)
    authorization_id: Mapped[str | None] = mapped_column(ForeignKey("authorizations.id"))
    qr_payment_id: Mapped[str | None] = mapped_column(ForeignKey("qr_payments.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="succeeded", server_default="succeeded")


class WebhookEvent(TimestampMixin, ProviderBase):
    """The outbox: written in the transaction that made the change, delivered afterwards."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        CheckConstraint(text_enum_check("status", WEBHOOK_EVENT_STATUSES), name="status"),
        Index(
            "ix_webhook_events_due",
            "endpoint_url",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(None, "reference", "created_at"),
        Index(None, "refund_reference"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    type: Mapped[str] = mapped_column(Text)
    # The payment's reference (authorization or QR payment), and the refund's for refund events.
    reference: Mapped[str | None] = mapped_column(Text)
    refund_reference: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    endpoint_url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="pending", server_default="pending")
    # Every attempt, redeliveries included (numbers the attempts) ...
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # ... and only the scheduled ones (walk the retry schedule).
    scheduled_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDeliveryAttempt(ProviderBase):
    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (
        UniqueConstraint("event_id", "attempt_no"),
        CheckConstraint("status_code IS NOT NULL OR error IS NOT NULL", name="has_result"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id"))
    attempt_no: Mapped[int] = mapped_column(Integer)
    redelivery: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
