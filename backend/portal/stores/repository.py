from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from backend.core.repository import TenantRepository
from backend.portal.models import Store


class StoreRepository(TenantRepository[Store]):
    model = Store

    async def search(
        self, *, merchant_id: uuid.UUID | None, limit: int, after: uuid.UUID | None
    ) -> tuple[Sequence[Store], uuid.UUID | None]:
        statement = select(Store)
        if merchant_id is not None:
            statement = statement.where(Store.merchant_id == merchant_id)
        return await self.page(statement, limit=limit, after=after)
