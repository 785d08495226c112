"""svc-smarttab: tabs and orders on terminals (filled by the SmartTab issue)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from backend.core.auth import whoami_router
from backend.core.service_app import create_service_app, remote_token_verifier
from backend.core.settings import Settings
from backend.smarttab.realtime.lifespan import realtime
from backend.smarttab.realtime.routes import router as realtime_router
from backend.smarttab.tabs.pgw_client import PgwClient
from backend.smarttab.tabs.routes import router as tabs_router


@asynccontextmanager
async def _setup(app: FastAPI) -> AsyncIterator[None]:
    app.state.token_verifier = remote_token_verifier(app)
    # Signed as "smarttab" (docs/s2s-auth.md): how tabs pay and refund through pgw.
    app.state.pgw_client = PgwClient.from_settings(app.state.settings)
    try:
        async with realtime(app):
            yield
    finally:
        await app.state.pgw_client.aclose()


def create_app(settings: Settings) -> FastAPI:
    return create_service_app(
        service="smarttab",
        title="MPAC svc-smarttab",
        settings=settings,
        routers=[whoami_router(), realtime_router, tabs_router],
        setup=_setup,
    )
