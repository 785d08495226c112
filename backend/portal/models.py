"""Tables of the ``portal`` schema, owned by the portal alone.

Enums are TEXT columns with CHECK constraints; every tenant-owned table names its tenant columns
in ``__tenant_columns__`` for :func:`backend.core.authz.apply_tenant_scope`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.core.authz import HUMAN_ROLES, ScopeLevel
from backend.core.models import IdMixin, TimestampMixin, service_metadata, text_enum_check

MERCHANT_STATUSES = ("active", "suspended")
STORE_STATUSES = ("active", "closed")
USER_STATUSES = ("active", "disabled")
TERMINAL_STATUSES = ("pending", "active", "suspended", "decommissioned")
SIGNING_KEY_STATUSES = ("active", "retiring", "retired")
AUDIT_OUTCOMES = ("success", "failure")
AUDIT_ACTOR_TYPES = ("user", "device", "system", "anonymous")


class PortalBase(DeclarativeBase):
    metadata = service_metadata("portal")
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB}


class Psp(IdMixin, TimestampMixin, PortalBase):
    __tablename__ = "psps"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = {ScopeLevel.PSP: "id"}

    name: Mapped[str] = mapped_column(Text)


class Merchant(IdMixin, TimestampMixin, PortalBase):
    __tablename__ = "merchants"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = {
        ScopeLevel.PSP: "psp_id",
        ScopeLevel.MERCHANT: "id",
    }
    __table_args__ = (
        CheckConstraint(text_enum_check("status", MERCHANT_STATUSES), name="status"),
        Index(None, "psp_id", "created_at"),
    )

    psp_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("psps.id"))
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="active", server_default="active")
    # AES-256-GCM ciphertext (backend.core.field_encryption); the last four digits are kept in
    # clear so screens can show which account is on file.
    bank_account_ciphertext: Mapped[str | None] = mapped_column(Text)
    bank_account_last4: Mapped[str | None] = mapped_column(Text)


class Store(IdMixin, TimestampMixin, PortalBase):
    __tablename__ = "stores"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = {
        ScopeLevel.PSP: "psp_id",
        ScopeLevel.MERCHANT: "merchant_id",
        ScopeLevel.STORE: "id",
    }
    __table_args__ = (
        CheckConstraint(text_enum_check("status", STORE_STATUSES), name="status"),
        Index(None, "merchant_id", "created_at"),
        Index(None, "psp_id", "merchant_id"),
    )

    psp_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("psps.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text, default="Asia/Tokyo", server_default="Asia/Tokyo")
    status: Mapped[str] = mapped_column(Text, default="active", server_default="active")


_MERCHANT_LEVEL_ROLES = "'merchant_admin', 'auditor'"
_STORE_LEVEL_ROLES = "'store_manager', 'cashier'"


class User(IdMixin, TimestampMixin, PortalBase):
    __tablename__ = "users"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = {
        ScopeLevel.PSP: "psp_id",
        ScopeLevel.MERCHANT: "merchant_id",
        ScopeLevel.STORE: "store_id",
    }
    __table_args__ = (
        CheckConstraint(text_enum_check("role", [r.value for r in HUMAN_ROLES]), name="role"),
        CheckConstraint(text_enum_check("status", USER_STATUSES), name="status"),
        # The scope a user lives at follows from the role: the database refuses any other mix.
        CheckConstraint(
            "(role = 'psp_admin' AND merchant_id IS NULL AND store_id IS NULL)"
            f" OR (role IN ({_MERCHANT_LEVEL_ROLES}) AND merchant_id IS NOT NULL"
            " AND store_id IS NULL)"
            f" OR (role IN ({_STORE_LEVEL_ROLES}) AND merchant_id IS NOT NULL"
            " AND store_id IS NOT NULL)",
            name="role_scope",
        ),
        Index("uq_users_email_lower", text("lower(email)"), unique=True),
        Index(None, "merchant_id", "store_id"),
        Index(None, "psp_id", "merchant_id"),
    )

    psp_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("psps.id"))
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("stores.id"))
    email: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="active", server_default="active")
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=func.now(), onupdate=func.now()
    )


class RefreshToken(IdMixin, PortalBase):
    """One link of a rotating refresh-token family; only a SHA-256 of the secret is kept."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index(None, "family_id"), Index(None, "user_id", "issued_at"))

    family_id: Mapped[uuid.UUID] = mapped_column()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    psp_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("psps.id"))
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("merchants.id"))
    secret_hash: Mapped[str] = mapped_column(Text, unique=True)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(Text)


class Terminal(IdMixin, TimestampMixin, PortalBase):
    """A SmartPOS device; its id is the OAuth2 ``client_id`` it authenticates as."""

    __tablename__ = "terminals"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = {
        ScopeLevel.PSP: "psp_id",
        ScopeLevel.MERCHANT: "merchant_id",
        ScopeLevel.STORE: "store_id",
    }
    __table_args__ = (
        CheckConstraint(text_enum_check("status", TERMINAL_STATUSES), name="status"),
        CheckConstraint(
            "status = 'pending' OR public_jwk IS NOT NULL OR status = 'decommissioned'",
            name="enrolled_has_key",
        ),
        Index(None, "merchant_id", "store_id", "status"),
        Index(None, "psp_id", "merchant_id"),
    )

    psp_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("psps.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id"))
    serial: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text, default="SmartPOS", server_default="SmartPOS")
    status: Mapped[str] = mapped_column(Text, default="pending", server_default="pending")
    public_jwk: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    key_thumbprint: Mapped[str | None] = mapped_column(Text)
    # SHA-256 of the normalised one-time activation code; the code itself is shown once.
    activation_code_hash: Mapped[str | None] = mapped_column(Text, unique=True)
    activation_code_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    activation_code_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    enrolled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status_reason: Mapped[str | None] = mapped_column(Text)


class AuditEvent(PortalBase):
    """Append-only: a trigger refuses UPDATE and DELETE on this table."""

    __tablename__ = "audit_events"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = {
        ScopeLevel.PSP: "psp_id",
        ScopeLevel.MERCHANT: "merchant_id",
        ScopeLevel.STORE: "store_id",
    }
    __table_args__ = (
        CheckConstraint(text_enum_check("outcome", AUDIT_OUTCOMES), name="outcome"),
        CheckConstraint(text_enum_check("actor_type", AUDIT_ACTOR_TYPES), name="actor_type"),
        Index(None, "psp_id", "merchant_id", "occurred_at"),
        Index(None, "event_type", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    event_type: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    actor_type: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[str | None] = mapped_column(Text)
    psp_id: Mapped[uuid.UUID | None] = mapped_column()
    merchant_id: Mapped[uuid.UUID | None] = mapped_column()
    store_id: Mapped[uuid.UUID | None] = mapped_column()
    target_type: Mapped[str | None] = mapped_column(Text)
    target_id: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
    client_ip: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")


class SigningKeyRecord(PortalBase):
    """The portal's token signing keys; private halves are field-encrypted."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        CheckConstraint(text_enum_check("status", SIGNING_KEY_STATUSES), name="status"),
        # At most one key signs at a time.
        Index(
            "uq_signing_keys_one_active",
            "status",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
    )

    kid: Mapped[str] = mapped_column(Text, primary_key=True)
    algorithm: Mapped[str] = mapped_column(Text)
    private_key_ciphertext: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxMessage(PortalBase):
    """A change other services must learn about, written in the transaction that made it.

    A relay delivers it after commit (HMAC-signed, retried with backoff); its id doubles as the
    version receivers compare, so a late or repeated delivery never overwrites newer data.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(text_enum_check("topic", ("merchant", "store", "terminal")), name="topic"),
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL"),
        ),
        Index(None, "psp_id", "merchant_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    topic: Mapped[str] = mapped_column(Text)
    aggregate_id: Mapped[uuid.UUID] = mapped_column()
    psp_id: Mapped[uuid.UUID] = mapped_column()
    merchant_id: Mapped[uuid.UUID | None] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class UsedClientAssertion(PortalBase):
    """The ``jti`` of a client assertion exchanged for a token, kept until the assertion expires.

    Redis refuses a replayed assertion first (fast, and atomic across portal processes); this
    row refuses it even when Redis lost its data in a crash (docs/security.md, "Replay").
    Rows of a terminal are purged as it presents new assertions, so the table stays small.
    """

    __tablename__ = "used_client_assertions"

    terminal_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    jti: Mapped[str] = mapped_column(Text, primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
