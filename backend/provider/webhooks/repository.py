from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import or_, select

from backend.core.repository import Repository
from backend.provider.models import WebhookDeliveryAttempt, WebhookEvent


class WebhookEventRepository(Repository[WebhookEvent]):
    model = WebhookEvent

    async def get(self, event_id: str, *, for_update: bool = False) -> WebhookEvent | None:
        statement = select(WebhookEvent).where(WebhookEvent.id == event_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def claim_due(
        self, endpoint_url: str, *, now: dt.datetime, limit: int
    ) -> Sequence[WebhookEvent]:
        """Due events for this endpoint, locked; rows another process holds are skipped."""
        statement = (
            select(WebhookEvent)
            .where(
                WebhookEvent.status == "pending",
                WebhookEvent.endpoint_url == endpoint_url,
                WebhookEvent.next_attempt_at <= now,
            )
            .order_by(WebhookEvent.next_attempt_at, WebhookEvent.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def search(
        self, *, reference: str | None, type_: str | None, limit: int
    ) -> Sequence[WebhookEvent]:
        statement = select(WebhookEvent)
        if reference is not None:
            statement = statement.where(
                or_(WebhookEvent.reference == reference, WebhookEvent.refund_reference == reference)
            )
        if type_ is not None:
            statement = statement.where(WebhookEvent.type == type_)
        statement = statement.order_by(WebhookEvent.created_at, WebhookEvent.id).limit(limit)
        return (await self.session.execute(statement)).scalars().all()


class DeliveryAttemptRepository(Repository[WebhookDeliveryAttempt]):
    model = WebhookDeliveryAttempt

    async def of_events(self, event_ids: Sequence[str]) -> Sequence[WebhookDeliveryAttempt]:
        if not event_ids:
            return []
        statement = (
            select(WebhookDeliveryAttempt)
            .where(WebhookDeliveryAttempt.event_id.in_(event_ids))
            .order_by(WebhookDeliveryAttempt.event_id, WebhookDeliveryAttempt.attempt_no)
        )
        return (await self.session.execute(statement)).scalars().all()
