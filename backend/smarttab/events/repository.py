from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from backend.core.repository import Repository
from backend.smarttab.models import StoreEvent, StoreSequence


class StoreEventRepository(Repository[StoreEvent]):
    model = StoreEvent

    async def next_seq(self, store_id: uuid.UUID) -> int:
        """Allocate the store's next number; the row lock holds other writers until commit, so
        numbers commit in order and a reader never sees 7 before 6."""
        statement = (
            insert(StoreSequence)
            .values(store_id=store_id, last_seq=1)
            .on_conflict_do_update(
                index_elements=["store_id"], set_={"last_seq": StoreSequence.last_seq + 1}
            )
            .returning(StoreSequence.last_seq)
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def after(self, store_id: uuid.UUID, seq: int, *, limit: int) -> Sequence[StoreEvent]:
        statement = (
            select(StoreEvent)
            .where(StoreEvent.store_id == store_id, StoreEvent.seq > seq)
            .order_by(StoreEvent.seq)
            .limit(limit)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def oldest_retained(self, store_id: uuid.UUID) -> int | None:
        statement = (
            select(StoreEvent.seq)
            .where(StoreEvent.store_id == store_id)
            .order_by(StoreEvent.seq)
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()
