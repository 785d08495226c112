from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from backend.core.repository import Repository
from backend.provider.models import Authorization


class AuthorizationRepository(Repository[Authorization]):
    model = Authorization

    async def get(self, authorization_id: str, *, for_update: bool = False) -> Authorization | None:
        statement = select(Authorization).where(Authorization.id == authorization_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def by_reference(self, reference: str) -> Authorization | None:
        statement = select(Authorization).where(Authorization.reference == reference)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def insert_unless_referenced(self, values: dict[str, Any]) -> Authorization | None:
        """Insert, or nothing if the reference exists (waits for a racing insert to settle)."""
        statement = (
            insert(Authorization)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[Authorization.reference])
            .returning(Authorization)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()
