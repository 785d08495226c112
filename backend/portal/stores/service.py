from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.authz import Principal, ScopeLevel
from backend.core.errors import Forbidden, NotFound
from backend.portal.merchants.service import merchant_service
from backend.portal.models import Store
from backend.portal.outbox.service import directory_outbox
from backend.portal.stores.repository import StoreRepository
from backend.portal.stores.schemas import StoreCreate, StoreUpdate


class StoreService:
    async def get(self, session: AsyncSession, principal: Principal, store_id: uuid.UUID) -> Store:
        store = await StoreRepository(session, principal.scope).get(store_id)
        if store is None:
            raise NotFound(f"Store {store_id} does not exist.", code="store_not_found")
        return store

    async def create(self, session: AsyncSession, principal: Principal, body: StoreCreate) -> Store:
        if principal.scope.level is ScopeLevel.STORE:
            raise Forbidden("A store-level user cannot open stores.", code="permission_denied")
        # The merchant is read through the caller's scope: another tenant's merchant is a 404.
        merchant = await merchant_service.get(session, principal, body.merchant_id)
        store = Store(
            psp_id=merchant.psp_id, merchant_id=merchant.id, name=body.name, timezone=body.timezone
        )
        await StoreRepository(session, principal.scope).add(store)
        await directory_outbox.store_changed(session, store)
        return store

    async def update(
        self, session: AsyncSession, principal: Principal, store_id: uuid.UUID, body: StoreUpdate
    ) -> Store:
        store = await self.get(session, principal, store_id)
        for field, value in body.model_dump(exclude_none=True).items():
            setattr(store, field, value)
        await session.flush()
        await directory_outbox.store_changed(session, store)
        return store


store_service = StoreService()
