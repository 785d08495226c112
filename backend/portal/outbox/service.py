"""portal -> pgw directory sync: publish changes to the outbox, relay them after commit."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.models import utcnow
from backend.portal.models import Merchant, OutboxMessage, Store, Terminal
from backend.portal.outbox.repository import OutboxRepository

logger = logging.getLogger(__name__)
_MAX_BACKOFF_S = 60


class DirectoryOutbox:
    async def merchant_changed(self, session: AsyncSession, merchant: Merchant) -> None:
        await self._publish(
            session,
            "merchant",
            merchant.id,
            merchant.psp_id,
            merchant.id,
            {"psp_id": str(merchant.psp_id), "name": merchant.name, "status": merchant.status},
        )

    async def store_changed(self, session: AsyncSession, store: Store) -> None:
        await self._publish(
            session,
            "store",
            store.id,
            store.psp_id,
            store.merchant_id,
            {
                "psp_id": str(store.psp_id),
                "merchant_id": str(store.merchant_id),
                "name": store.name,
                "timezone": store.timezone,
                "status": store.status,
            },
        )

    async def terminal_changed(self, session: AsyncSession, terminal: Terminal) -> None:
        await self._publish(
            session,
            "terminal",
            terminal.id,
            terminal.psp_id,
            terminal.merchant_id,
            {
                "psp_id": str(terminal.psp_id),
                "merchant_id": str(terminal.merchant_id),
                "store_id": str(terminal.store_id),
                "serial": terminal.serial,
                "status": terminal.status,
            },
        )

    async def _publish(
        self,
        session: AsyncSession,
        topic: str,
        aggregate_id: Any,
        psp_id: Any,
        merchant_id: Any,
        payload: dict[str, Any],
    ) -> None:
        await OutboxRepository(session).add(
            OutboxMessage(
                topic=topic,
                aggregate_id=aggregate_id,
                psp_id=psp_id,
                merchant_id=merchant_id,
                payload=payload,
            )
        )


class OutboxRelay:
    """Delivers due messages to pgw; a failure only delays that message (exponential backoff)."""

    async def deliver_due(
        self, session: AsyncSession, pgw: httpx.AsyncClient, *, limit: int = 100
    ) -> int:
        now = utcnow()
        delivered = 0
        for message in await OutboxRepository(session).lock_due(now=now, limit=limit):
            body = {**message.payload, "source_version": message.id}
            try:
                response = await pgw.put(
                    f"/internal/v1/directory/{message.topic}s/{message.aggregate_id}", json=body
                )
                response.raise_for_status()
            except httpx.HTTPError as exc:
                message.attempts += 1
                backoff = min(2**message.attempts, _MAX_BACKOFF_S)
                message.next_attempt_at = now + dt.timedelta(seconds=backoff)
                message.last_error = f"{type(exc).__name__}: {exc}"[:500]
                logger.warning(
                    "outbox %s to pgw failed (attempt %d): %s",
                    message.id,
                    message.attempts,
                    message.last_error,
                )
                continue
            message.delivered_at = utcnow()
            delivered += 1
        return delivered


directory_outbox = DirectoryOutbox()
outbox_relay = OutboxRelay()
