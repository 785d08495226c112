"""``GET /v1/stream`` (WebSocket), ``POST /v1/stream/notices`` and the per-process stats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Annotated

from fastapi import APIRouter, Depends, Request, WebSocket

from backend.core.auth import require
from backend.core.authz import Permission, Principal
from backend.core.database import SessionDep
from backend.core.errors import Forbidden
from backend.core.hmac_signing import ServiceCaller, require_caller
from backend.core.settings import Settings
from backend.smarttab.realtime import service
from backend.smarttab.realtime.hub import StreamHub
from backend.smarttab.realtime.protocol import (
    AuthMessage,
    Close,
    CloseCode,
    ProtocolError,
    parse_client_message,
    parse_last_seq,
)
from backend.smarttab.realtime.schemas import NoticeIn, NoticeOut, StreamStats
from backend.smarttab.realtime.session import StreamSession

logger = logging.getLogger(__name__)
router = APIRouter(tags=["stream"])


class _Refused(Exception):
    def __init__(self, close: Close) -> None:
        super().__init__(close.reason)
        self.close = close


async def _credentials(websocket: WebSocket, settings: Settings) -> tuple[str, int | None]:
    """The bearer token (header, or first message) and the ``last_seq`` given with it, if any."""
    try:
        query_last_seq = parse_last_seq(websocket.query_params.get("last_seq"))
    except ProtocolError as exc:
        raise _Refused(Close(CloseCode.PROTOCOL_ERROR, f"protocol error: {exc}")) from exc
    header = websocket.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(Close(CloseCode.UNAUTHORIZED, "send 'Authorization: Bearer <token>'"))
        return token.strip(), query_last_seq
    timeout = settings.ws_auth_timeout_s
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout)
    except TimeoutError as exc:
        raise _Refused(
            Close(CloseCode.UNAUTHORIZED, f"authentication required: no auth within {timeout:g} s")
        ) from exc
    if message["type"] == "websocket.disconnect":
        raise _Refused(Close(CloseCode.NORMAL, ""))
    try:
        first = parse_client_message(message.get("text") or "")
    except ProtocolError:
        first = None
    if not isinstance(first, AuthMessage):
        raise _Refused(
            Close(
                CloseCode.UNAUTHORIZED,
                "authentication required: send an Authorization header or first "
                '{"type": "auth", "token": ...}',
            )
        )
    if None not in (first.last_seq, query_last_seq) and first.last_seq != query_last_seq:
        raise _Refused(
            Close(CloseCode.PROTOCOL_ERROR, "protocol error: two different last_seq values")
        )
    return first.token, first.last_seq if first.last_seq is not None else query_last_seq


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket) -> None:
    """A store's events, live and replayed (docs/smarttab.md, "Real-time channel")."""
    app = websocket.app
    settings: Settings = app.state.settings
    hub: StreamHub = app.state.stream_hub
    # Accept first: close codes and reasons only reach a client on an open socket.
    await websocket.accept()
    try:
        token, last_seq = await _credentials(websocket, settings)
        identity = await service.authenticate_stream(
            app.state.token_verifier, token, leeway_s=settings.clock_skew_leeway_s
        )
    except (_Refused, service.StreamRefused) as refused:
        await _refuse(websocket, hub, refused.close)
        return
    except Exception:
        # The JWKS or Redis failing under the verifier: the client may simply retry.
        logger.exception("stream authentication failed")
        await _refuse(websocket, hub, Close(CloseCode.INTERNAL_ERROR, "internal error; retry"))
        return
    session = StreamSession(
        websocket,
        identity,
        settings=settings,
        sessionmaker=app.state.sessionmaker,
        hub=hub,
        verifier=app.state.token_verifier,
        start_after=last_seq,
    )
    await session.serve()


async def _refuse(websocket: WebSocket, hub: StreamHub, close: Close) -> None:
    if close.code != CloseCode.NORMAL:
        hub.stats.closes[int(close.code)] += 1
    with contextlib.suppress(Exception):
        await websocket.close(code=int(close.code), reason=close.wire_reason)


@router.post(
    "/v1/stream/notices",
    status_code=201,
    summary="Send a short notice to every device of the caller's store",
)
async def post_notice(
    body: NoticeIn,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.TAB_WRITE))],
) -> NoticeOut:
    if principal.scope.store_id is None:
        raise Forbidden(
            "Notices go to one store: use a device token or a store-level user's token.",
            code="store_scope_required",
        )
    event = await service.post_notice(session, request.app.state.redis, principal, body.text)
    return NoticeOut(
        store_id=str(event.store_id), seq=event.seq, event=event.event_type, data=event.data
    )


@router.get(
    "/internal/v1/stream/stats",
    summary="This process's stream counters (signed smarttab operators only)",
)
async def stream_stats(
    request: Request,
    _caller: Annotated[ServiceCaller, Depends(require_caller("smarttab"))],
) -> StreamStats:
    hub: StreamHub = request.app.state.stream_hub
    return StreamStats(pid=os.getpid(), **hub.snapshot())
