"""The provider's background work: webhook delivery and QR code expiry, polled."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.provider.qr_payments.service import qr_payment_service
from backend.provider.webhooks.delivery import WebhookDispatcher

logger = logging.getLogger(__name__)

POLL_S = 0.1
EXPIRY_SWEEP_S = 1.0
ERROR_BACKOFF_S = 1.0


class ProviderWorker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        dispatcher: WebhookDispatcher,
        *,
        webhook_url: str,
        poll_s: float = POLL_S,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.dispatcher = dispatcher
        self.webhook_url = webhook_url
        self.poll_s = poll_s
        self._last_sweep = 0.0

    async def _expire_qr_codes(self) -> None:
        async with self.sessionmaker() as session, session.begin():
            expired = await qr_payment_service.expire_overdue(session, self.webhook_url)
        if expired:
            logger.info("expired %d unpaid QR payment(s)", len(expired))

    async def tick(self) -> int:
        attempted = await self.dispatcher.run_once()
        if time.monotonic() - self._last_sweep >= EXPIRY_SWEEP_S:
            self._last_sweep = time.monotonic()
            await self._expire_qr_codes()
        return attempted

    async def run(self) -> None:
        while True:
            try:
                attempted = await self.tick()
                delay = 0.0 if attempted else self.poll_s
            except Exception:
                # The database may be restarting; the events wait in the outbox meanwhile.
                logger.exception("provider background work failed; retrying")
                delay = ERROR_BACKOFF_S
            await asyncio.sleep(delay)
