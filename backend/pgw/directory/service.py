"""Who may take payments: the portal's directory as synced into pgw (eventually consistent)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.authz import TenantScope
from backend.core.errors import Forbidden
from backend.pgw.directory.repository import DirectoryRepository


@dataclass(frozen=True)
class PayingPoint:
    psp_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    terminal_id: uuid.UUID | None


def _refuse(code: str, detail: str) -> Forbidden:
    return Forbidden(detail, code=code, title="Cannot take payments here")


class DirectoryService:
    async def paying_point(
        self,
        session: AsyncSession,
        scope: TenantScope,
        store_id: uuid.UUID,
        terminal_id: uuid.UUID | None,
    ) -> PayingPoint:
        """The store (and terminal) a payment is for, refused unless all are known and active."""
        store, merchant, terminal = await DirectoryRepository(session).store_with_owners(
            store_id, terminal_id
        )
        # A store outside the caller's scope is as unknown as one that does not exist.
        if store is None or not scope.contains(
            TenantScope(psp_id=store.psp_id, merchant_id=store.merchant_id, store_id=store.id)
        ):
            raise _refuse("unknown_store", f"Store {store_id} is not known to the gateway.")
        if merchant is None or merchant.status != "active":
            raise _refuse("merchant_not_active", "The store's merchant cannot take payments.")
        if store.status != "active":
            raise _refuse("store_not_active", f"Store {store_id} is {store.status}.")
        if terminal_id is not None:
            if terminal is None or terminal.store_id != store.id:
                raise _refuse("unknown_terminal", f"Terminal {terminal_id} is not known here.")
            if terminal.status != "active":
                raise _refuse(
                    "terminal_not_active", f"Terminal {terminal_id} is {terminal.status}."
                )
        return PayingPoint(store.psp_id, store.merchant_id, store.id, terminal_id)

    async def service_scope(
        self, session: AsyncSession, merchant_id: uuid.UUID | None, store_id: uuid.UUID | None
    ) -> TenantScope:
        """The tenant a signed service call acts for, checked against the directory."""
        if merchant_id is None:
            raise Forbidden(
                "Signed service calls to pgw name their merchant (X-MPAC-Merchant-Id).",
                code="service_tenant_required",
            )
        directory = DirectoryRepository(session)
        merchant = await directory.merchant(merchant_id)
        if merchant is None:
            raise _refuse(
                "unknown_merchant", f"Merchant {merchant_id} is not known to the gateway."
            )
        if store_id is not None:
            store = await directory.store(store_id)
            if store is None or store.merchant_id != merchant_id:
                raise _refuse("unknown_store", f"Store {store_id} is not known to the gateway.")
        return TenantScope(psp_id=merchant.psp_id, merchant_id=merchant_id, store_id=store_id)


directory_service = DirectoryService()
