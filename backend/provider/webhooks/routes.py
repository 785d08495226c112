"""Dev/test control over webhook events: what was sent, how it went, and sending again."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Query, Request

from backend.core.database import SessionDep
from backend.provider.context import API_KEY, ProviderDep
from backend.provider.models import WebhookDeliveryAttempt, WebhookEvent
from backend.provider.webhooks.delivery import WebhookSender
from backend.provider.webhooks.schemas import (
    DeliveryAttemptRead,
    RedeliveryRead,
    WebhookEventRead,
)
from backend.provider.webhooks.service import webhook_service

router = APIRouter(prefix="/v1/_control/webhooks", tags=["control"], dependencies=API_KEY)


def _read(event: WebhookEvent, attempts: Sequence[WebhookDeliveryAttempt]) -> WebhookEventRead:
    return WebhookEventRead(
        id=event.id,
        type=event.type,
        reference=event.reference,
        refund_reference=event.refund_reference,
        created=int(event.created_at.timestamp()),
        created_at=event.created_at,
        status=event.status,
        endpoint_url=event.endpoint_url,
        delivery_count=event.attempts,
        attempts=[DeliveryAttemptRead.model_validate(a) for a in attempts],
        next_attempt_at=event.next_attempt_at,
        delivered_at=event.delivered_at,
        data=event.data,
    )


@router.get("", summary="Webhook events (oldest first) with their delivery state and attempts")
async def list_webhook_events(
    session: SessionDep,
    reference: str | None = Query(default=None, description="a payment's or a refund's reference"),
    event_type: str | None = Query(
        default=None, alias="type", description="event type, e.g. qr_payment.succeeded"
    ),
    limit: int = Query(default=100, ge=1, le=500),
) -> list[WebhookEventRead]:
    rows = await webhook_service.search(session, reference=reference, type_=event_type, limit=limit)
    return [_read(event, attempts) for event, attempts in rows]


@router.post("/{event_id}/redeliver", summary="Send an event again now (duplicate testing)")
async def redeliver_webhook_event(
    event_id: str, request: Request, session: SessionDep, provider: ProviderDep
) -> RedeliveryRead:
    sender: WebhookSender = request.app.state.webhook_sender
    event, attempt = await webhook_service.redeliver(
        session, sender, event_id, schedule_s=provider.retry_schedule_s
    )
    attempts = await webhook_service.attempts_of(session, event.id)
    return RedeliveryRead(
        event=_read(event, attempts), attempt=DeliveryAttemptRead.model_validate(attempt)
    )
