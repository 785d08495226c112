"""The one way a service's FastAPI app is assembled: resources, errors, health, middleware."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from sqlalchemy import text
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.database import create_engine, create_sessionmaker
from backend.core.errors import (
    PROBLEM_RESPONSES,
    PROBLEM_SCHEMA,
    ServiceUnavailable,
    Unauthorized,
    install_problem_handlers,
)
from backend.core.jwks import JwksKeySource
from backend.core.redis import create_redis
from backend.core.request_context import RequestContextMiddleware
from backend.core.settings import Settings
from backend.core.text_guard import UnstorableTextMiddleware
from backend.core.tokens import TokenVerifier
from backend.observability.metrics import (
    CONTENT_TYPE_LATEST,
    database_pool_source,
    render_metrics,
    service_metrics,
)
from backend.observability.middleware import ObservabilityMiddleware
from backend.observability.tracing import TracingTransport, configure_tracing, flush_traces

ServiceSetup = Callable[[FastAPI], AbstractAsyncContextManager[None]]

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


_API_CONTENT_TYPES = (b"application/json", b"application/problem+json")
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
_HSTS = b"max-age=31536000; includeSubDomains"


def _reached_over_tls(scope: Scope) -> bool:
    """HTTPS here or at the proxy in front (which then says so in X-Forwarded-Proto)."""
    if scope.get("scheme") == "https":
        return True
    forwarded = dict(scope.get("headers") or []).get(b"x-forwarded-proto", b"")
    return forwarded.split(b",")[0].strip().lower() == b"https"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        behind_tls = _reached_over_tls(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                present = {name.lower(): value for name, value in headers}
                extra = [(n, v) for n, v in _SECURITY_HEADERS if n not in present]
                content_type = present.get(b"content-type", b"")
                if b"content-security-policy" not in present and content_type.startswith(
                    _API_CONTENT_TYPES
                ):
                    # OWASP's API rule: a JSON answer opened as a document runs and embeds
                    # nothing. Pages (the docs UI, the WebView demo) set their own policy.
                    extra.append((b"content-security-policy", _API_CSP))
                if behind_tls and b"strict-transport-security" not in present:
                    extra.append((b"strict-transport-security", _HSTS))
                message["headers"] = [*headers, *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def remote_token_verifier(app: FastAPI) -> TokenVerifier:
    """Verifies portal-issued tokens through the portal's JWKS (for smarttab and pgw)."""
    settings: Settings = app.state.settings
    keys = JwksKeySource(
        settings.jwks_url,
        redis=app.state.redis,
        http=app.state.http,
        ttl_s=settings.jwks_cache_ttl_s,
        min_refetch_interval_s=settings.jwks_min_refetch_interval_s,
    )
    return TokenVerifier(
        keys,
        issuer=settings.resolved_issuer,
        audience=settings.token_audience,
        leeway_s=settings.clock_skew_leeway_s,
    )


def _health_router(service: str) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/readyz", summary="Readiness: database and Redis reachable")
    async def readyz(request: Request) -> dict[str, Any]:
        try:
            async with request.app.state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            await request.app.state.redis.ping()
        except Exception as exc:
            raise ServiceUnavailable(
                f"{service} cannot reach its database or Redis.", code="dependency_unavailable"
            ) from exc
        return {"status": "ready", "service": service}

    return router


def _metrics_router(service: str, settings: Settings) -> APIRouter:
    router = APIRouter(tags=["observability"])

    # Out of the OpenAPI document: an operator's endpoint in Prometheus' text format, not an API.
    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if settings.metrics_token:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), settings.metrics_token.encode()):
                raise Unauthorized(
                    "Scraping /metrics needs its bearer token.", code="token_missing"
                )
        return Response(render_metrics(service), media_type=CONTENT_TYPE_LATEST)

    return router


def create_service_app(
    *,
    service: str,
    title: str,
    settings: Settings,
    routers: Sequence[APIRouter],
    setup: ServiceSetup | None = None,
    middleware: Sequence[Middleware] = (),
) -> FastAPI:
    """``middleware`` runs inside the shared ones (request id, security headers), so what it
    answers itself (a CORS preflight) still carries them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.service = service
        app.state.engine = create_engine(settings, application_name=f"mpac-{service}")
        app.state.sessionmaker = create_sessionmaker(app.state.engine)
        app.state.redis = create_redis(settings)
        app.state.http = httpx.AsyncClient(transport=TracingTransport(service))
        metrics = service_metrics(service)
        pool_source = database_pool_source(service, app.state.engine)
        metrics.add_source("db_pool", pool_source)
        try:
            async with AsyncExitStack() as stack:
                if setup is not None:
                    await stack.enter_async_context(setup(app))
                yield
        finally:
            metrics.remove_source("db_pool", pool_source)
            flush_traces(service)
            await app.state.http.aclose()
            await app.state.redis.aclose()
            await app.state.engine.dispose()

    # Every operation documents its errors as problem details (instead of FastAPI's 422 body,
    # which no service sends); the Problem schema joins the generated components.
    app = FastAPI(title=title, version="0.1.0", lifespan=lifespan, responses=PROBLEM_RESPONSES)

    def openapi_with_problem() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
                PROBLEM_SCHEMA
            )
        return app.openapi_schema or {}

    app.openapi = openapi_with_problem  # type: ignore[method-assign]
    configure_tracing(service, settings)
    # Starlette puts the last one added outermost. The text guard is innermost, so its 422 goes
    # out through CORS, security headers and the request id like any route's answer.
    app.add_middleware(UnstorableTextMiddleware)
    for extra in reversed(middleware):
        app.add_middleware(extra.cls, *extra.args, **extra.kwargs)
    app.add_middleware(SecurityHeadersMiddleware)
    # Inside the request id (its span and access line name the request), outside everything
    # else (it times and counts what the client gets).
    app.add_middleware(ObservabilityMiddleware, service=service)
    app.add_middleware(RequestContextMiddleware)
    install_problem_handlers(app)
    app.include_router(_health_router(service))
    app.include_router(_metrics_router(service, settings))
    for router in routers:
        app.include_router(router)
    return app
