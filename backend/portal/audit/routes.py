from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backend.core.auth import require
from backend.core.authz import Permission, Principal
from backend.core.database import SessionDep
from backend.portal.audit.repository import AuditRepository
from backend.portal.audit.schemas import AuditEventPage, AuditEventRead

router = APIRouter(prefix="/v1/audit-events", tags=["audit"])


@router.get("", summary="Security events in the caller's tenant, newest first")
async def list_audit_events(
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.AUDIT_READ))],
    event_type: str | None = None,
    outcome: str | None = Query(default=None, pattern="^(success|failure)$"),
    # The id column is a BIGINT: a larger cursor is refused here, not by the database.
    before_id: int | None = Query(default=None, ge=1, le=2**63 - 1),
    limit: int = Query(default=50, ge=1, le=200),
) -> AuditEventPage:
    rows = await AuditRepository(session, principal.scope).search(
        event_type=event_type, outcome=outcome, before_id=before_id, limit=limit
    )
    items = [AuditEventRead.model_validate(row) for row in rows]
    return AuditEventPage(items=items, next_before_id=items[-1].id if len(items) == limit else None)
