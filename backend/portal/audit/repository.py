from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from backend.core.repository import Repository, TenantRepository
from backend.portal.models import AuditEvent


class AuditWriter(Repository[AuditEvent]):
    """Inserts only: the table is append-only (a trigger refuses UPDATE and DELETE)."""

    model = AuditEvent


class AuditRepository(TenantRepository[AuditEvent]):
    model = AuditEvent

    async def search(
        self, *, event_type: str | None, outcome: str | None, before_id: int | None, limit: int
    ) -> Sequence[AuditEvent]:
        statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if event_type is not None:
            statement = statement.where(AuditEvent.event_type == event_type)
        if outcome is not None:
            statement = statement.where(AuditEvent.outcome == outcome)
        if before_id is not None:
            statement = statement.where(AuditEvent.id < before_id)
        return await self.list(statement)
