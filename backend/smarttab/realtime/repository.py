"""Reads of a store's event log for replay, and the retention purge."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select, tuple_

from backend.core.repository import Repository, TenantRepository
from backend.smarttab.models import StoreEvent, StoreSequence


class StreamRepository(TenantRepository[StoreEvent]):
    """A streaming device's view of its store's events; the scope comes from its token."""

    model = StoreEvent

    @property
    def _store_id(self) -> uuid.UUID:
        if self.scope.store_id is None:
            raise ValueError("a stream reads one store's events")
        return self.scope.store_id

    async def head(self) -> int:
        """The store's last committed event number (0 before its first event)."""
        statement = select(StoreSequence.last_seq).where(StoreSequence.store_id == self._store_id)
        value = (await self.session.execute(statement)).scalar_one_or_none()
        return int(value or 0)

    async def between(
        self, *, after: int, through: int, not_before: dt.datetime, limit: int
    ) -> Sequence[StoreEvent]:
        """Events ``after < seq <= through`` still retained, in order."""
        statement = (
            self.scoped()
            .where(
                StoreEvent.store_id == self._store_id,
                StoreEvent.seq > after,
                StoreEvent.seq <= through,
                StoreEvent.created_at >= not_before,
            )
            .order_by(StoreEvent.seq)
            .limit(limit)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def oldest_retained(self, *, not_before: dt.datetime) -> int | None:
        statement = (
            self.scoped(select(StoreEvent.seq))
            .where(StoreEvent.store_id == self._store_id, StoreEvent.created_at >= not_before)
            .order_by(StoreEvent.seq)
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()


class EventRetentionRepository(Repository[StoreEvent]):
    """Housekeeping across every store: not a tenant's read, it only deletes expired rows."""

    model = StoreEvent

    async def purge_before(self, cutoff: dt.datetime, *, limit: int) -> int:
        """Delete up to ``limit`` events created before ``cutoff``; returns how many."""
        doomed = (
            select(StoreEvent.store_id, StoreEvent.seq)
            .where(StoreEvent.created_at < cutoff)
            .limit(limit)
        )
        statement = delete(StoreEvent).where(
            tuple_(StoreEvent.store_id, StoreEvent.seq).in_(doomed)
        )
        result = await self.session.execute(statement)
        return int(getattr(result, "rowcount", 0) or 0)
