from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from backend.core.auth import require
from backend.core.authz import Permission, Principal
from backend.core.database import SessionDep
from backend.pgw.context import PgwDep
from backend.pgw.idempotency.http import Outcome, run_idempotent
from backend.pgw.idempotency.service import Claim
from backend.pgw.models import Payment
from backend.pgw.payment_tokens.service import refuse_payment_token
from backend.pgw.payments.repository import PaymentRepository, RefundRepository
from backend.pgw.payments.schemas import (
    CaptureRequest,
    CardRead,
    PaymentCreate,
    PaymentEventRead,
    PaymentPage,
    PaymentRead,
    RefundCreate,
    RefundRead,
    RefundResult,
)
from backend.pgw.payments.service import payment_service
from backend.pgw.payments.states import PaymentStatus

router = APIRouter(prefix="/v1/payments", tags=["payments"])

CanCreate = Annotated[Principal, Depends(require(Permission.PAYMENT_CREATE))]
CanRead = Annotated[Principal, Depends(require(Permission.PAYMENT_READ))]
CanRefund = Annotated[Principal, Depends(require(Permission.PAYMENT_REFUND))]

_IDEMPOTENCY_DOC = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "maxLength": 255},
            "description": "Unique per intended operation; reuse it when retrying.",
        }
    ]
}


def payment_read(payment: Payment) -> PaymentRead:
    card = (
        CardRead(
            brand=payment.card_brand,
            last4=payment.card_last4,
            exp_month=payment.card_exp_month,
            exp_year=payment.card_exp_year,
            fingerprint=payment.card_fingerprint,
        )
        if payment.card_last4
        else None
    )
    return PaymentRead(
        id=payment.id,
        status=payment.status,
        method=payment.method,
        entry_mode=payment.entry_mode,
        capture_method=payment.capture_method,
        currency=payment.currency,
        amount=payment.amount,
        tip_amount=payment.tip_amount,
        amount_captured=payment.amount_captured,
        amount_refunded=payment.amount_refunded,
        amount_refundable=payment.amount_captured - payment.amount_refunded,
        card=card,
        auth_code=payment.auth_code,
        qr_payload=payment.qr_payload,
        failure_code=payment.failure_code,
        failure_message=payment.failure_message,
        reference=payment.reference,
        description=payment.description,
        cashier_id=payment.cashier_id,
        metadata=payment.metadata_,
        psp_id=payment.psp_id,
        merchant_id=payment.merchant_id,
        store_id=payment.store_id,
        terminal_id=payment.terminal_id,
        settlement_batch_id=payment.settlement_batch_id,
        created_at=payment.created_at,
        updated_at=payment.updated_at,
        captured_at=payment.captured_at,
    )


def _location(result: BaseModel) -> dict[str, str]:
    assert isinstance(result, PaymentRead)
    return {"Location": f"/v1/payments/{result.id}"}


@router.post(
    "",
    status_code=201,
    response_model=PaymentRead,
    summary="Take a payment (card present or QR wallet); idempotent by Idempotency-Key",
    openapi_extra=_IDEMPOTENCY_DOC,
    responses={202: {"description": "Outcome not known yet (provider timeout): status processing"}},
)
async def create_payment(
    body: PaymentCreate, request: Request, session: SessionDep, pgw: PgwDep, principal: CanCreate
) -> JSONResponse:
    async def execute(claim: Claim) -> Outcome:
        payment, resumed = await payment_service.begin_create(
            pgw.sessionmaker, principal, claim.resource_id, body, fresh=claim.fresh
        )
        payment = await payment_service.finish_create(
            session, pgw.connector, principal, payment, body, resumed=resumed
        )
        if payment.status == PaymentStatus.PROCESSING.value:
            return 202, payment_read(payment), False
        return 201, payment_read(payment), True

    return await run_idempotent(
        request,
        session,
        pgw,
        principal,
        operation="payment.create",
        body=body,
        execute=execute,
        headers=_location,
    )


@router.get("", summary="Payments in the caller's scope, newest first")
async def list_payments(
    session: SessionDep,
    principal: CanRead,
    store_id: uuid.UUID | None = None,
    terminal_id: uuid.UUID | None = None,
    status: PaymentStatus | None = None,
    method: Literal["card_present", "qr_wallet"] | None = None,
    reference: str | None = Query(default=None, max_length=128),
    created_from: dt.datetime | None = None,
    created_to: dt.datetime | None = None,
    before: uuid.UUID | None = Query(
        default=None, description="Cursor: next_cursor of the previous page"
    ),
    limit: int = Query(default=50, ge=1, le=200),
) -> PaymentPage:
    refuse_payment_token(principal, "list payments")
    rows, cursor = await PaymentRepository(session, principal.scope).search(
        store_id=store_id,
        terminal_id=terminal_id,
        status=status.value if status else None,
        method=method,
        reference=reference,
        created_from=created_from,
        created_to=created_to,
        before=before,
        limit=limit,
    )
    return PaymentPage(items=[payment_read(row) for row in rows], next_cursor=cursor)


@router.get("/{payment_id}", summary="One payment")
async def get_payment(
    payment_id: uuid.UUID, session: SessionDep, principal: CanRead
) -> PaymentRead:
    return payment_read(await payment_service.get(session, principal, payment_id))


@router.get("/{payment_id}/events", summary="Every status change of a payment")
async def list_payment_events(
    payment_id: uuid.UUID, session: SessionDep, principal: CanRead
) -> list[PaymentEventRead]:
    payment = await payment_service.get(session, principal, payment_id)
    events = await PaymentRepository(session, principal.scope).events(payment)
    return [PaymentEventRead.model_validate(event) for event in events]


@router.get("/{payment_id}/refunds", summary="Refunds of a payment")
async def list_refunds(
    payment_id: uuid.UUID, session: SessionDep, principal: CanRead
) -> list[RefundRead]:
    await payment_service.get(session, principal, payment_id)
    refunds = await RefundRepository(session, principal.scope).for_payment(payment_id)
    return [RefundRead.model_validate(refund) for refund in refunds]


@router.post(
    "/{payment_id}/capture",
    response_model=PaymentRead,
    summary="Capture an authorized payment (once; partial allowed)",
    openapi_extra=_IDEMPOTENCY_DOC,
)
async def capture_payment(
    payment_id: uuid.UUID,
    body: CaptureRequest,
    request: Request,
    session: SessionDep,
    pgw: PgwDep,
    principal: CanCreate,
) -> JSONResponse:
    refuse_payment_token(principal, "capture a payment")

    async def execute(claim: Claim) -> Outcome:
        payment = await payment_service.capture(session, pgw.connector, principal, payment_id, body)
        return 200, payment_read(payment), True

    return await run_idempotent(
        request, session, pgw, principal, operation="payment.capture", body=body, execute=execute
    )


@router.post(
    "/{payment_id}/void",
    response_model=PaymentRead,
    summary="Void an authorized payment, or cancel a QR payment still waiting",
    openapi_extra=_IDEMPOTENCY_DOC,
)
async def void_payment(
    payment_id: uuid.UUID, request: Request, session: SessionDep, pgw: PgwDep, principal: CanCreate
) -> JSONResponse:
    async def execute(claim: Claim) -> Outcome:
        payment = await payment_service.void(session, pgw.connector, principal, payment_id)
        return 200, payment_read(payment), True

    return await run_idempotent(
        request, session, pgw, principal, operation="payment.void", body=None, execute=execute
    )


@router.post(
    "/{payment_id}/refunds",
    status_code=201,
    response_model=RefundResult,
    summary="Refund part or all of what was captured (never more)",
    openapi_extra=_IDEMPOTENCY_DOC,
)
async def refund_payment(
    payment_id: uuid.UUID,
    body: RefundCreate,
    request: Request,
    session: SessionDep,
    pgw: PgwDep,
    principal: CanRefund,
) -> JSONResponse:
    async def execute(claim: Claim) -> Outcome:
        refund, payment = await payment_service.refund(
            session, pgw.connector, principal, payment_id, claim.resource_id, body
        )
        return (
            201,
            RefundResult(refund=RefundRead.model_validate(refund), payment=payment_read(payment)),
            True,
        )

    return await run_idempotent(
        request, session, pgw, principal, operation="payment.refund", body=body, execute=execute
    )
