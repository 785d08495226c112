from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from backend.core.repository import Repository, TenantRepository
from backend.portal.models import Terminal


class TerminalRepository(TenantRepository[Terminal]):
    model = Terminal

    async def search(
        self,
        *,
        store_id: uuid.UUID | None,
        status: str | None,
        limit: int,
        after: uuid.UUID | None,
    ) -> tuple[Sequence[Terminal], uuid.UUID | None]:
        statement = select(Terminal)
        if store_id is not None:
            statement = statement.where(Terminal.store_id == store_id)
        if status is not None:
            statement = statement.where(Terminal.status == status)
        return await self.page(statement, limit=limit, after=after)


class TerminalSerials(Repository[Terminal]):
    """Serials are unique across all tenants (they name hardware), so the check is global."""

    model = Terminal

    async def serial_taken(self, serial: str) -> bool:
        statement = select(Terminal.id).where(Terminal.serial == serial)
        return (await self.session.execute(statement)).first() is not None
