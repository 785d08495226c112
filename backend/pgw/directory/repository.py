from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.repository import Repository
from backend.pgw.models import KnownMerchant, KnownStore, KnownTerminal


class DirectoryRepository(Repository[KnownStore]):
    """The portal's merchants, stores and terminals as last synced into pgw."""

    model = KnownStore

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)

    async def merchant(self, merchant_id: uuid.UUID) -> KnownMerchant | None:
        return await self.session.get(KnownMerchant, merchant_id)

    async def store(self, store_id: uuid.UUID) -> KnownStore | None:
        return await self.session.get(KnownStore, store_id)

    async def terminal(self, terminal_id: uuid.UUID) -> KnownTerminal | None:
        return await self.session.get(KnownTerminal, terminal_id)

    async def store_with_owners(
        self, store_id: uuid.UUID, terminal_id: uuid.UUID | None
    ) -> tuple[KnownStore | None, KnownMerchant | None, KnownTerminal | None]:
        """The store, its merchant and (when asked) a terminal, in one round trip.

        What a payment checks before it is written; three primary-key lookups would cost three
        round trips to PostgreSQL on every payment.
        """
        statement = (
            select(KnownStore, KnownMerchant)
            .outerjoin(KnownMerchant, KnownMerchant.id == KnownStore.merchant_id)
            .where(KnownStore.id == store_id)
        )
        if terminal_id is not None:
            statement = statement.add_columns(KnownTerminal).outerjoin(
                KnownTerminal, KnownTerminal.id == terminal_id
            )
        row = (await self.session.execute(statement)).first()
        if row is None:
            return None, None, None
        found: tuple[Any, ...] = tuple(row)
        return found[0], found[1], found[2] if terminal_id is not None else None


async def upsert_newer(session: AsyncSession, model: type[Any], values: dict[str, Any]) -> bool:
    """Insert or update one directory row unless the stored one is as new or newer.

    ``source_version`` is the portal's outbox sequence, so redeliveries and out-of-order
    deliveries leave the newest state in place. Returns whether the row changed.
    """
    table = model.__table__
    statement = insert(model).values(**values)
    upsert = statement.on_conflict_do_update(
        index_elements=["id"],
        set_={**{k: statement.excluded[k] for k in values if k != "id"}, "synced_at": func.now()},
        where=table.c.source_version < statement.excluded.source_version,
    ).returning(table.c.id)
    return (await session.execute(upsert)).first() is not None
