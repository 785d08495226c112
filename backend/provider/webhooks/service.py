"""The outbox: events are written with the change that caused them and delivered afterwards."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.errors import NotFound
from backend.core.models import utcnow
from backend.provider.ids import new_id
from backend.provider.models import WebhookDeliveryAttempt, WebhookEvent
from backend.provider.webhooks.repository import DeliveryAttemptRepository, WebhookEventRepository

# The error text kept per attempt is bounded; it is the exception's message, never a body.
_MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    error: str | None
    duration_ms: int
    at: dt.datetime

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


Sender = Callable[[WebhookEvent], Awaitable[AttemptResult]]


def event_body(event: WebhookEvent) -> bytes:
    """The exact bytes POSTed (and signed): ``{"id", "type", "created", "data"}``."""
    body = {
        "id": event.id,
        "type": event.type,
        "created": int(event.created_at.timestamp()),
        "data": event.data,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=False).encode()


def describe_error(exc: BaseException) -> str:
    message = str(exc).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:_MAX_ERROR_CHARS]


class WebhookService:
    async def emit(
        self,
        session: AsyncSession,
        *,
        type_: str,
        data: dict[str, Any],
        endpoint_url: str,
        reference: str | None,
        refund_reference: str | None = None,
    ) -> WebhookEvent:
        now = utcnow()
        event = WebhookEvent(
            id=new_id("evt"),
            type=type_,
            reference=reference,
            refund_reference=refund_reference,
            data=data,
            endpoint_url=endpoint_url,
            status="pending",
            attempts=0,
            scheduled_attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        return await WebhookEventRepository(session).add(event)

    async def record_attempt(
        self,
        session: AsyncSession,
        event: WebhookEvent,
        result: AttemptResult,
        *,
        schedule_s: Sequence[float],
        redelivery: bool,
    ) -> WebhookDeliveryAttempt:
        """Store the attempt and move the event on (the caller holds the event's row lock).

        A failed scheduled attempt waits ``schedule_s[n-1]`` before attempt ``n+1``; once the
        schedule is used up the event is ``failed``. A redelivery never changes the schedule.
        """
        event.attempts += 1
        attempt = WebhookDeliveryAttempt(
            event_id=event.id,
            attempt_no=event.attempts,
            redelivery=redelivery,
            status_code=result.status_code,
            error=result.error,
            duration_ms=result.duration_ms,
            at=result.at,
        )
        if result.succeeded:
            event.status = "delivered"
            event.delivered_at = event.delivered_at or result.at
            event.next_attempt_at = None
        elif not redelivery:
            event.scheduled_attempts += 1
            if event.scheduled_attempts <= len(schedule_s):
                delay = schedule_s[event.scheduled_attempts - 1]
                event.next_attempt_at = result.at + dt.timedelta(seconds=delay)
            else:
                event.status = "failed"
                event.next_attempt_at = None
        await DeliveryAttemptRepository(session).add(attempt)
        return attempt

    async def redeliver(
        self,
        session: AsyncSession,
        send: Sender,
        event_id: str,
        *,
        schedule_s: Sequence[float],
    ) -> tuple[WebhookEvent, WebhookDeliveryAttempt]:
        """Send an event again now, whatever its state (receivers must tolerate duplicates)."""
        event = await WebhookEventRepository(session).get(event_id, for_update=True)
        if event is None:
            raise NotFound(
                f"Webhook event {event_id} does not exist.", code="webhook_event_not_found"
            )
        result = await send(event)
        attempt = await self.record_attempt(
            session, event, result, schedule_s=schedule_s, redelivery=True
        )
        return event, attempt

    async def attempts_of(
        self, session: AsyncSession, event_id: str
    ) -> list[WebhookDeliveryAttempt]:
        return list(await DeliveryAttemptRepository(session).of_events([event_id]))

    async def search(
        self, session: AsyncSession, *, reference: str | None, type_: str | None, limit: int
    ) -> list[tuple[WebhookEvent, list[WebhookDeliveryAttempt]]]:
        events = await WebhookEventRepository(session).search(
            reference=reference, type_=type_, limit=limit
        )
        attempts = await DeliveryAttemptRepository(session).of_events([e.id for e in events])
        by_event: dict[str, list[WebhookDeliveryAttempt]] = {e.id: [] for e in events}
        for attempt in attempts:
            by_event[attempt.event_id].append(attempt)
        return [(event, by_event[event.id]) for event in events]


webhook_service = WebhookService()
