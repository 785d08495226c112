"""mpac-pgw: the payment gateway (payments, refunds, idempotency, provider webhooks)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from starlette.middleware import Middleware

from backend.core.auth import whoami_router
from backend.core.authz import Principal, TenantScope
from backend.core.background import periodic
from backend.core.cors import CorsMiddleware
from backend.core.field_encryption import FieldCipher
from backend.core.hmac_signing import ServiceCaller
from backend.core.service_app import create_service_app, remote_token_verifier
from backend.core.settings import Settings
from backend.pgw.connectors.simulated import SimulatedProviderConnector
from backend.pgw.context import PgwContext
from backend.pgw.directory.routes import router as directory_router
from backend.pgw.directory.service import directory_service
from backend.pgw.idempotency.service import IdempotencyService
from backend.pgw.partitions import ensure_partitions
from backend.pgw.payment_tokens.routes import router as payment_tokens_router
from backend.pgw.payment_tokens.service import payment_token_service
from backend.pgw.payments.routes import router as payments_router
from backend.pgw.settlement.routes import router as settlement_router
from backend.pgw.webhooks.routes import router as webhooks_router
from backend.pgw.webhooks.service import reconciler
from backend.pgw.webview.cors import PGW_CORS_POLICIES
from backend.pgw.webview.routes import files_router as webview_files_router
from backend.pgw.webview.routes import payments_router as webview_payments_router

logger = logging.getLogger(__name__)
_PARTITION_CHECK_S = 6 * 3600


@asynccontextmanager
async def _setup(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.token_verifier = remote_token_verifier(app)
    cipher = FieldCipher.from_spec(settings.field_encryption_keys)
    pgw = PgwContext(
        settings=settings,
        connector=SimulatedProviderConnector(
            app.state.http,
            base_url=settings.provider_url,
            api_key=settings.provider_api_key,
            timeout_s=settings.pgw_provider_timeout_s,
        ),
        sessionmaker=app.state.sessionmaker,
        idempotency=IdempotencyService(
            retention_s=settings.idempotency_retention_s,
            stale_after_s=settings.idempotency_stale_after_s,
        ),
        fingerprint_secret=cipher.derive_key("pgw.idempotency.fingerprint"),
    )
    app.state.pgw = pgw

    async def service_scope(request: Request, caller: ServiceCaller) -> TenantScope:
        async with pgw.sessionmaker() as session:
            return await directory_service.service_scope(
                session, caller.merchant_id, caller.store_id
            )

    app.state.service_scope_resolver = service_scope

    async def payment_token(request: Request, token: str) -> Principal:
        return await payment_token_service.resolve(pgw.sessionmaker, token)

    app.state.payment_token_resolver = payment_token
    created = await ensure_partitions(app.state.engine)
    if created:
        logger.info("created partitions %s", ", ".join(created))
    # Only payments older than the provider timeout: younger ones may still get their answer.
    min_age_s = max(settings.reconciler_min_age_s, settings.pgw_provider_timeout_s + 1)

    async def reconcile() -> None:
        async with pgw.sessionmaker() as session, session.begin():
            counts = await reconciler.run_once(session, pgw.connector, min_age_s=min_age_s)
        if counts:
            logger.info("reconciler resolved %s", counts)

    async def maintain_partitions() -> None:
        await ensure_partitions(app.state.engine)

    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            periodic("pgw-reconciler", settings.reconciler_interval_s, reconcile)
        )
        await stack.enter_async_context(
            periodic("pgw-partitions", _PARTITION_CHECK_S, maintain_partitions)
        )
        yield


def create_app(settings: Settings) -> FastAPI:
    return create_service_app(
        service="pgw",
        title="MPAC mpac-pgw",
        settings=settings,
        routers=[
            whoami_router(),
            payments_router,
            payment_tokens_router,
            webhooks_router,
            directory_router,
            settlement_router,
            webview_payments_router,
            webview_files_router,
        ],
        setup=_setup,
        middleware=[Middleware(CorsMiddleware, policies=PGW_CORS_POLICIES)],
    )
