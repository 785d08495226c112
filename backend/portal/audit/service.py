"""The security event log: who did what to which tenant's resource, and what was refused."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.authz import Principal, TenantScope
from backend.core.request_context import current_client_ip, current_request_id
from backend.portal.audit.repository import AuditWriter
from backend.portal.models import AuditEvent


class AuditEventType(StrEnum):
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGIN_RATE_LIMITED = "login.rate_limited"
    REFRESH_SUCCEEDED = "refresh.succeeded"
    REFRESH_REFUSED = "refresh.refused"
    REFRESH_REUSE_DETECTED = "refresh.reuse_detected"
    LOGOUT = "logout"
    ACCESS_TOKEN_REFUSED = "access_token.refused"
    PERMISSION_DENIED = "permission.denied"
    USER_CREATED = "user.created"
    USER_ROLE_CHANGED = "user.role_changed"
    USER_STATUS_CHANGED = "user.status_changed"
    MERCHANT_CREATED = "merchant.created"
    MERCHANT_BANK_ACCOUNT_CHANGED = "merchant.bank_account_changed"
    MERCHANT_BANK_ACCOUNT_VIEWED = "merchant.bank_account_viewed"
    TERMINAL_REGISTERED = "terminal.registered"
    TERMINAL_ACTIVATION_CODE_ISSUED = "terminal.activation_code_issued"
    TERMINAL_ENROLLED = "terminal.enrolled"
    TERMINAL_ENROLLMENT_REFUSED = "terminal.enrollment_refused"
    TERMINAL_SUSPENDED = "terminal.suspended"
    TERMINAL_REACTIVATED = "terminal.reactivated"
    TERMINAL_DECOMMISSIONED = "terminal.decommissioned"
    DEVICE_TOKEN_REFUSED = "device_token.refused"
    DEVICE_TOKEN_RATE_LIMITED = "device_token.rate_limited"
    SIGNING_KEY_ROTATED = "signing_key.rotated"


class AuditLog:
    """Writes audit rows in the caller's transaction.

    Refusals raise a ``Problem(commit=True)`` so the row survives the error response; events
    outside any request transaction use :meth:`record_now`.
    """

    async def record(
        self,
        session: AsyncSession,
        event_type: AuditEventType,
        *,
        outcome: str = "success",
        actor: Principal | None = None,
        actor_type: str | None = None,
        actor_id: str | uuid.UUID | None = None,
        scope: TenantScope | None = None,
        target_type: str | None = None,
        target_id: str | uuid.UUID | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        if actor is not None:
            actor_type = actor_type or actor.kind
            actor_id = actor_id or actor.subject_id
            scope = scope or actor.scope
        event = AuditEvent(
            event_type=event_type.value,
            outcome=outcome,
            actor_type=actor_type or "anonymous",
            actor_id=str(actor_id) if actor_id is not None else None,
            psp_id=scope.psp_id if scope else None,
            merchant_id=scope.merchant_id if scope else None,
            store_id=scope.store_id if scope else None,
            target_type=target_type,
            target_id=str(target_id) if target_id is not None else None,
            reason=reason,
            request_id=current_request_id(),
            client_ip=current_client_ip(),
            detail=detail or {},
        )
        await AuditWriter(session).add(event)

    async def record_now(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        event_type: AuditEventType,
        **kwargs: Any,
    ) -> None:
        async with sessionmaker() as session, session.begin():
            await self.record(session, event_type, **kwargs)


audit_log = AuditLog()
