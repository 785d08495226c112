"""svc-portal: tenants, users, RBAC, human JWT, device enrollment and the device token endpoint."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from backend.core.background import periodic
from backend.core.field_encryption import FieldCipher
from backend.core.hmac_signing import signed_client
from backend.core.passwords import Passwords
from backend.core.service_app import create_service_app
from backend.core.settings import Settings
from backend.core.tokens import TokenVerifier
from backend.portal.audit.routes import router as audit_router
from backend.portal.audit.service import AuditEventType, audit_log
from backend.portal.auth.routes import router as auth_router
from backend.portal.context import PortalContext
from backend.portal.devices.routes import router as devices_router
from backend.portal.keys.routes import router as keys_router
from backend.portal.keys.service import KeyRing, signing_key_service
from backend.portal.merchants.routes import router as merchants_router
from backend.portal.outbox.service import outbox_relay
from backend.portal.stores.routes import router as stores_router
from backend.portal.terminals.routes import router as terminals_router
from backend.portal.users.routes import router as users_router

logger = logging.getLogger(__name__)


@asynccontextmanager
async def _setup(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    cipher = FieldCipher.from_spec(settings.field_encryption_keys)
    async with app.state.sessionmaker() as session, session.begin():
        await signing_key_service.ensure_active(session, cipher)
    key_ring = KeyRing(
        app.state.sessionmaker,
        cipher,
        refresh_s=settings.key_ring_refresh_s,
        activation_delay_s=settings.signing_key_activation_delay_s,
    )
    await key_ring.load()
    app.state.key_ring = key_ring
    app.state.portal = PortalContext(
        settings=settings,
        key_ring=key_ring,
        cipher=cipher,
        passwords=Passwords(settings),
        redis=app.state.redis,
        sessionmaker=app.state.sessionmaker,
    )
    app.state.token_verifier = TokenVerifier(
        key_ring,
        issuer=settings.resolved_issuer,
        audience=settings.token_audience,
        leeway_s=settings.clock_skew_leeway_s,
    )

    async def audit_refused_token(request: Request, reason: str, detail: str) -> None:
        # The request is about to fail, so the record goes in its own transaction.
        await audit_log.record_now(
            app.state.sessionmaker,
            AuditEventType.ACCESS_TOKEN_REFUSED,
            outcome="failure",
            reason=reason,
            detail={"path": request.url.path, "method": request.method},
        )

    app.state.on_token_refused = audit_refused_token

    try:
        pgw_client = signed_client(settings, "portal", settings.url_of("pgw"))
    except LookupError:
        # Without a key pgw would refuse every delivery; say so once instead of failing each.
        logger.warning(
            "no s2s key for caller 'portal' (MPAC_S2S_KEYS): directory sync to pgw is off"
        )
        yield
        return

    async def relay_outbox() -> None:
        async with app.state.sessionmaker() as session, session.begin():
            await outbox_relay.deliver_due(session, pgw_client)

    try:
        async with periodic("portal-outbox-relay", settings.outbox_relay_interval_s, relay_outbox):
            yield
    finally:
        await pgw_client.aclose()


def create_app(settings: Settings) -> FastAPI:
    return create_service_app(
        service="portal",
        title="MPAC svc-portal",
        settings=settings,
        routers=[
            keys_router,
            auth_router,
            devices_router,
            merchants_router,
            stores_router,
            users_router,
            terminals_router,
            audit_router,
        ],
        setup=_setup,
    )
