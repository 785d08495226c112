"""Delivering the outbox: signed POSTs, retried on a schedule, safe with many processes.

Each provider process polls for due events of *its* endpoint (``resolved_provider_webhook_url``)
and locks them with ``SELECT ... FOR UPDATE SKIP LOCKED``: processes sharing an endpoint share
the work without sending an event twice, and a process that dies mid-delivery releases its rows
(the event is sent again: delivery is at least once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.models import utcnow
from backend.observability.metrics import service_metrics
from backend.provider.models import WebhookEvent
from backend.provider.webhooks.repository import WebhookEventRepository
from backend.provider.webhooks.service import (
    AttemptResult,
    describe_error,
    event_body,
    webhook_service,
)
from backend.provider.webhooks.signing import SIGNATURE_HEADER, signature_header

logger = logging.getLogger(__name__)

USER_AGENT = "mpac-provider-webhooks/1"
WEBHOOKS_SENT = service_metrics("provider").webhook_deliveries


class WebhookSender:
    def __init__(self, http: httpx.AsyncClient, secrets: Sequence[str], timeout_s: float) -> None:
        self.http = http
        self.secrets = tuple(secrets)
        self.timeout_s = timeout_s

    async def __call__(self, event: WebhookEvent) -> AttemptResult:
        body = event_body(event)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(self.secrets, int(time.time()), body),
        }
        started = time.monotonic()
        at = utcnow()
        status_code: int | None = None
        error: str | None = None
        try:
            response = await self.http.post(
                event.endpoint_url, content=body, headers=headers, timeout=self.timeout_s
            )
            status_code = response.status_code
        except httpx.HTTPError as exc:
            error = describe_error(exc)
        duration_ms = int((time.monotonic() - started) * 1000)
        result = AttemptResult(status_code=status_code, error=error, duration_ms=duration_ms, at=at)
        outcome = (
            "delivered"
            if result.succeeded
            else ("refused" if status_code is not None else "unreachable")
        )
        WEBHOOKS_SENT.labels("provider", "sent", outcome).inc()
        if not result.succeeded:
            logger.info(
                "webhook %s (%s) to %s not accepted: %s",
                event.id,
                event.type,
                event.endpoint_url,
                status_code if status_code is not None else error,
            )
        return result


class WebhookDispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        send: WebhookSender,
        *,
        endpoint_url: str,
        schedule_s: Sequence[float],
        batch_size: int = 20,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.send = send
        self.endpoint_url = endpoint_url
        self.schedule_s = tuple(schedule_s)
        self.batch_size = batch_size

    async def run_once(self) -> int:
        """Attempt every due event (up to a batch); returns how many were attempted."""
        async with self.sessionmaker() as session, session.begin():
            events = await WebhookEventRepository(session).claim_due(
                self.endpoint_url, now=utcnow(), limit=self.batch_size
            )
            if not events:
                return 0
            results = await asyncio.gather(*(self.send(event) for event in events))
            for event, result in zip(events, results, strict=True):
                await webhook_service.record_attempt(
                    session, event, result, schedule_s=self.schedule_s, redelivery=False
                )
                if event.status == "failed":
                    logger.warning(
                        "webhook %s (%s) failed after %d attempts; giving up",
                        event.id,
                        event.type,
                        event.scheduled_attempts,
                    )
            return len(events)
