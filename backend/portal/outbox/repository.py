from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select

from backend.core.repository import Repository
from backend.portal.models import OutboxMessage


class OutboxRepository(Repository[OutboxMessage]):
    model = OutboxMessage

    async def lock_due(self, *, now: dt.datetime, limit: int) -> Sequence[OutboxMessage]:
        # SKIP LOCKED: several portal processes relay side by side without sending twice.
        statement = (
            select(OutboxMessage)
            .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def pending_count(self) -> int:
        statement = select(func.count()).where(OutboxMessage.delivered_at.is_(None))
        return int((await self.session.execute(statement)).scalar_one())
