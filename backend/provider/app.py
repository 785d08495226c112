"""mpac-provider: the simulated acquirer pgw talks to (card authorizations, QR wallet, webhooks).

See docs/provider.md for the contract, the test cards and the webhook signature.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from backend.core.service_app import create_service_app
from backend.core.settings import Settings
from backend.provider.authorizations.routes import router as authorizations_router
from backend.provider.context import ProviderContext
from backend.provider.control.routes import router as control_router
from backend.provider.qr_payments.routes import router as qr_payments_router
from backend.provider.refunds.routes import router as refunds_router
from backend.provider.webhooks.delivery import WebhookDispatcher, WebhookSender
from backend.provider.webhooks.routes import router as webhooks_router
from backend.provider.worker import ProviderWorker


@asynccontextmanager
async def _setup(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    provider = ProviderContext.from_settings(settings)
    app.state.provider = provider
    sender = WebhookSender(
        app.state.http, provider.webhook_secrets, settings.provider_webhook_timeout_s
    )
    app.state.webhook_sender = sender
    dispatcher = WebhookDispatcher(
        app.state.sessionmaker,
        sender,
        endpoint_url=provider.webhook_url,
        schedule_s=provider.retry_schedule_s,
    )
    worker = ProviderWorker(app.state.sessionmaker, dispatcher, webhook_url=provider.webhook_url)
    task = asyncio.create_task(worker.run(), name="mpac-provider-worker")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(settings: Settings) -> FastAPI:
    return create_service_app(
        service="provider",
        title="MPAC provider (simulated acquirer)",
        settings=settings,
        routers=[
            authorizations_router,
            refunds_router,
            qr_payments_router,
            webhooks_router,
            control_router,
        ],
        setup=_setup,
    )
