from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import select

from backend.core.ids import uuid7_time
from backend.core.repository import Repository, TenantRepository
from backend.pgw.models import Payment, PaymentEvent, Refund


class PaymentRepository(TenantRepository[Payment]):
    model = Payment

    async def get(self, id_: uuid.UUID, *, for_update: bool = False) -> Payment | None:
        if id_.version != 7:
            return None
        # created_at equals the id's timestamp, so this reads exactly one monthly partition.
        statement = self.scoped().where(Payment.id == id_, Payment.created_at == uuid7_time(id_))
        if for_update:
            # The locked row as it is now, even when this session loaded it before the lock:
            # a webhook or the reconciler may have moved it in between.
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def search(
        self,
        *,
        store_id: uuid.UUID | None,
        terminal_id: uuid.UUID | None,
        status: str | None,
        method: str | None,
        reference: str | None,
        created_from: dt.datetime | None,
        created_to: dt.datetime | None,
        before: uuid.UUID | None,
        limit: int,
    ) -> tuple[Sequence[Payment], uuid.UUID | None]:
        """Newest first; ``before`` is the cursor (ids are time-ordered)."""
        statement = select(Payment).order_by(Payment.id.desc()).limit(limit + 1)
        for column, value in (
            (Payment.store_id, store_id),
            (Payment.terminal_id, terminal_id),
            (Payment.status, status),
            (Payment.method, method),
            (Payment.reference, reference),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if created_from is not None:
            statement = statement.where(Payment.created_at >= created_from)
        if created_to is not None:
            statement = statement.where(Payment.created_at < created_to)
        if before is not None:
            statement = statement.where(Payment.id < before)
        rows = (await self.session.execute(self.scoped(statement))).scalars().all()
        cursor = rows[limit - 1].id if len(rows) > limit else None
        return rows[:limit], cursor

    async def events(self, payment: Payment) -> Sequence[PaymentEvent]:
        statement = (
            select(PaymentEvent)
            .where(
                PaymentEvent.payment_id == payment.id,
                PaymentEvent.merchant_id == payment.merchant_id,
                PaymentEvent.created_at >= payment.created_at,
            )
            .order_by(PaymentEvent.id)
        )
        return (await self.session.execute(statement)).scalars().all()


class RefundRepository(TenantRepository[Refund]):
    model = Refund

    async def for_payment(self, payment_id: uuid.UUID) -> Sequence[Refund]:
        statement = (
            select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.created_at)
        )
        return await self.list(statement)


class PaymentEventWriter(Repository[PaymentEvent]):
    model = PaymentEvent
