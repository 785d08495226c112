from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from backend.core.auth import PrincipalDep, require
from backend.core.authz import Permission, Principal
from backend.core.database import SessionDep
from backend.core.models import utcnow
from backend.pgw.context import PgwDep
from backend.pgw.models import PaymentToken
from backend.pgw.payment_tokens.schemas import (
    PaymentTokenCreate,
    PaymentTokenInfo,
    PaymentTokenIssued,
)
from backend.pgw.payment_tokens.service import payment_token_service

router = APIRouter(prefix="/v1/payment-tokens", tags=["payment tokens"])

CanCreate = Annotated[Principal, Depends(require(Permission.PAYMENT_CREATE))]


def _info(row: PaymentToken) -> PaymentTokenInfo:
    return PaymentTokenInfo(
        id=row.id,
        expires_at=row.expires_at,
        expires_in=max(0, int((row.expires_at - utcnow()).total_seconds())),
        store_id=row.store_id,
        terminal_id=row.terminal_id,
        amount=row.amount,
        currency=row.currency,
        payment_id=row.payment_id,
    )


@router.post(
    "",
    status_code=201,
    summary="Issue a short-lived payment token for web content in the terminal's WebView",
)
async def issue_payment_token(
    body: PaymentTokenCreate, session: SessionDep, pgw: PgwDep, principal: CanCreate
) -> PaymentTokenIssued:
    ttl_s = pgw.settings.payment_token_ttl_s
    issued = await payment_token_service.issue(session, principal, body, ttl_s=ttl_s)
    info = _info(issued.row).model_dump() | {"expires_in": ttl_s}
    return PaymentTokenIssued(**info, token=issued.token, reference=body.reference)


@router.get("/current", summary="The payment token presented (its limits and binding)")
async def current_payment_token(session: SessionDep, principal: PrincipalDep) -> PaymentTokenInfo:
    row = await payment_token_service.current(session, principal)
    return _info(row)


@router.delete(
    "/current",
    status_code=204,
    summary="Revoke the payment token presented (when the page is done with it)",
)
async def revoke_current_payment_token(session: SessionDep, principal: PrincipalDep) -> Response:
    await payment_token_service.revoke(session, principal)
    return Response(status_code=204)
