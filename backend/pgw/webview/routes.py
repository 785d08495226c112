"""Routes for web pages in the terminal's WebView: the SDK files, the demo page, the QR code of
a QR payment as SVG and a payment's status as server-sent events (docs/payment-tokens.md)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from backend.core.auth import require
from backend.core.authz import Permission, Principal
from backend.core.database import SessionDep
from backend.core.errors import problem_response_doc
from backend.pgw.context import PgwDep
from backend.pgw.payments.routes import payment_read
from backend.pgw.payments.service import payment_service
from backend.pgw.webview import static
from backend.pgw.webview.service import PaymentStream, StreamLimits, qr_svg

CanRead = Annotated[Principal, Depends(require(Permission.PAYMENT_READ))]

payments_router = APIRouter(prefix="/v1/payments", tags=["payments"])
# Static files: not API, so not in the OpenAPI document.
files_router = APIRouter(include_in_schema=False)


@payments_router.get(
    "/{payment_id}/qr.svg",
    summary="The QR code of a QR payment waiting to be paid, as SVG",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}, "description": "The code to scan"},
        404: problem_response_doc("`payment_not_found`"),
        409: problem_response_doc("`qr_not_available`: not a QR payment, or not waiting"),
    },
)
async def payment_qr_code(
    payment_id: uuid.UUID,
    session: SessionDep,
    principal: CanRead,
    scale: int = Query(default=6, ge=1, le=20, description="Pixels per QR module"),
) -> Response:
    payment = await payment_service.get(session, principal, payment_id)
    return Response(
        qr_svg(payment, scale=scale),
        media_type=static.SVG,
        headers={
            "Cache-Control": "no-store",
            # Opened on its own, the image runs nothing and loads nothing.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )


@payments_router.get(
    "/{payment_id}/stream",
    summary="A payment's status as server-sent events, until it stops waiting",
    description=(
        "`text/event-stream`: an `event: status` (`id:` the payment's version, `data:` the "
        "payment as `GET /v1/payments/{id}` answers it) at once and at every change, until the "
        "status is no longer pending, processing or requires_action; then the stream ends. "
        "`: heartbeat` comments keep an idle stream open. A token that expires or is revoked "
        "meanwhile ends it with an `event: error` whose data is the problem. It never stays "
        "open longer than the token lives or MPAC_PGW_STREAM_MAX_S (default 5 minutes)."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        404: problem_response_doc("`payment_not_found`"),
    },
)
async def payment_stream(
    payment_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    pgw: PgwDep,
    principal: CanRead,
) -> StreamingResponse:
    # Refusals (401, 404) are answered as usual, before the stream starts. The request's
    # session is closed when this returns; the stream's polls use short sessions of their own.
    first = await payment_service.get(session, principal, payment_id)
    settings = pgw.settings
    stream = PaymentStream(
        pgw.sessionmaker,
        principal,
        first,
        read=payment_read,
        limits=StreamLimits(
            poll_interval_s=settings.pgw_stream_poll_interval_s,
            heartbeat_s=settings.pgw_stream_heartbeat_s,
            max_duration_s=settings.pgw_stream_max_s,
        ),
        instance=request.url.path,
    )
    return StreamingResponse(
        stream.events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _serve(request: Request, pgw: PgwDep, folder: static.StaticFolder, name: str) -> Response:
    root = static.sdk_root(pgw.settings.webview_sdk_dir)
    file = await static.load(root, folder, name)
    if static.etag_matches(request.headers.get("if-none-match"), file.etag):
        return Response(status_code=304, headers=dict(file.headers))
    return Response(file.body, media_type=file.content_type, headers=dict(file.headers))


@files_router.api_route("/sdk/v1/{name}", methods=["GET", "HEAD"])
async def sdk_file(name: str, request: Request, pgw: PgwDep) -> Response:
    """``mpac-pay.mjs`` (ES module), ``mpac-pay.js`` (script tag), ``mpac-pay.d.ts``."""
    return await _serve(request, pgw, static.SDK_FILES, name)


@files_router.api_route("/demo/webview/", methods=["GET", "HEAD"])
async def demo_page(request: Request, pgw: PgwDep) -> Response:
    """The demo merchant page; its token comes in the URL fragment (``#token=pt_…``)."""
    return await _serve(request, pgw, static.DEMO_FILES, "index.html")


@files_router.api_route("/demo/webview/{name}", methods=["GET", "HEAD"])
async def demo_asset(name: str, request: Request, pgw: PgwDep) -> Response:
    return await _serve(request, pgw, static.DEMO_FILES, name)
