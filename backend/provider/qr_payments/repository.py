from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from backend.core.repository import Repository
from backend.provider.models import QrPayment


class QrPaymentRepository(Repository[QrPayment]):
    model = QrPayment

    async def get(self, qr_payment_id: str, *, for_update: bool = False) -> QrPayment | None:
        statement = select(QrPayment).where(QrPayment.id == qr_payment_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def by_reference(self, reference: str) -> QrPayment | None:
        statement = select(QrPayment).where(QrPayment.reference == reference)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def insert_unless_referenced(self, values: dict[str, Any]) -> QrPayment | None:
        statement = (
            insert(QrPayment)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[QrPayment.reference])
            .returning(QrPayment)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def expire_overdue(
        self, webhook_url: str, *, now: dt.datetime, limit: int
    ) -> Sequence[QrPayment]:
        """Mark pending payments past their expiry as expired; each row changes exactly once."""
        overdue = (
            select(QrPayment.id)
            .where(
                QrPayment.status == "pending",
                QrPayment.webhook_url == webhook_url,
                QrPayment.expires_at <= now,
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            update(QrPayment)
            .where(QrPayment.id.in_(overdue), QrPayment.status == "pending")
            .values(status="expired", completed_at=now)
            .returning(QrPayment)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(statement)).scalars().all()
