from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from backend.core.repository import Repository
from backend.provider.models import Refund


class RefundRepository(Repository[Refund]):
    model = Refund

    async def by_reference(self, reference: str) -> Refund | None:
        statement = select(Refund).where(Refund.reference == reference)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def insert_unless_referenced(self, values: dict[str, Any]) -> Refund | None:
        statement = (
            insert(Refund)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[Refund.reference])
            .returning(Refund)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()
