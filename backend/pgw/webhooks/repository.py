from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from backend.core.ids import uuid7_time
from backend.core.repository import Repository
from backend.pgw.models import Payment, ProviderWebhookEvent


class ProviderEventRepository(Repository[ProviderWebhookEvent]):
    model = ProviderWebhookEvent

    async def record_once(self, event_id: str, event_type: str, payload: dict[str, Any]) -> bool:
        """True the first time an event id is recorded; the primary key decides."""
        statement = (
            insert(ProviderWebhookEvent)
            .values(event_id=event_id, event_type=event_type, payload=payload, outcome="received")
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(ProviderWebhookEvent.event_id)
        )
        return (await self.session.execute(statement)).first() is not None

    async def set_outcome(self, event_id: str, outcome: str, payment_id: uuid.UUID | None) -> None:
        # One UPDATE: loading the row first (it was inserted above, outside the ORM) would cost
        # a SELECT more on every webhook.
        await self.session.execute(
            update(ProviderWebhookEvent)
            .where(ProviderWebhookEvent.event_id == event_id)
            .values(outcome=outcome, payment_id=payment_id)
        )


class ProviderPaymentRepository(Repository[Payment]):
    """Payments found by the provider's reference, outside any tenant: provider callbacks and
    the reconciler act for the system, and a payment id is the only key they hold."""

    model = Payment

    async def lock_by_id(self, payment_id: uuid.UUID) -> Payment | None:
        if payment_id.version != 7:
            return None
        statement = (
            select(Payment)
            .where(Payment.id == payment_id, Payment.created_at == uuid7_time(payment_id))
            .with_for_update()
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def lock_stuck_processing(
        self,
        *,
        older_than: dt.datetime,
        limit: int,
        payment_ids: Collection[uuid.UUID] | None = None,
    ) -> Sequence[Payment]:
        statement = (
            select(Payment)
            .where(Payment.status == "processing", Payment.updated_at < older_than)
            .order_by(Payment.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if payment_ids is not None:
            statement = statement.where(Payment.id.in_(list(payment_ids)))
        return (await self.session.execute(statement)).scalars().all()
