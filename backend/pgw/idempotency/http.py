"""Running a money-moving route under its Idempotency-Key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.authz import Principal
from backend.pgw.context import PgwContext
from backend.pgw.idempotency.service import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    Claim,
    IdempotentRequest,
    request_fingerprint,
    require_key,
)

# (status, body, complete): complete=False leaves the key resumable (the outcome is not final
# yet, so a retry should look again rather than replay a "processing" answer forever).
Outcome = tuple[int, BaseModel, bool]


def caller_identity(principal: Principal) -> str:
    token = principal.payment_token_id or ""
    return f"{principal.kind}:{principal.subject_id}:{token}"


async def run_idempotent(
    request: Request,
    session: AsyncSession,
    pgw: PgwContext,
    principal: Principal,
    *,
    operation: str,
    body: BaseModel | None,
    execute: Callable[[Claim], Awaitable[Outcome]],
    headers: Callable[[BaseModel], dict[str, str]] | None = None,
) -> JSONResponse:
    key = require_key(request.headers.get(IDEMPOTENCY_HEADER))
    payload: Any = body.model_dump(mode="json") if body is not None else None
    # Keys are scoped to the caller's merchant (or PSP for PSP-wide staff) and the operation.
    tenant_id = principal.scope.merchant_id or principal.scope.psp_id
    claim = await pgw.idempotency.claim(
        pgw.sessionmaker,
        IdempotentRequest(
            merchant_id=tenant_id,
            operation=operation,
            key=key,
            fingerprint=request_fingerprint(
                pgw.fingerprint_secret,
                caller_identity(principal),
                request.method,
                request.url.path,
                payload,
            ),
        ),
    )
    if claim.is_replay:
        assert claim.replay_status is not None
        return JSONResponse(
            claim.replay_body, status_code=claim.replay_status, headers={REPLAYED_HEADER: "true"}
        )
    try:
        status, result, complete = await execute(claim)
    except BaseException:
        await session.rollback()
        await pgw.idempotency.release(pgw.sessionmaker, claim)
        raise
    response_body = result.model_dump(mode="json")
    if complete:
        await pgw.idempotency.complete(session, claim, status, response_body)
    else:
        await session.commit()
        await pgw.idempotency.release(pgw.sessionmaker, claim)
    return JSONResponse(
        response_body, status_code=status, headers=headers(result) if headers else None
    )
