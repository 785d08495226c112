from __future__ import annotations

from fastapi import APIRouter

from backend.core.database import SessionDep
from backend.provider.context import SIMULATED
from backend.provider.refunds.schemas import RefundCreate, RefundRead
from backend.provider.refunds.service import refund_service

router = APIRouter(prefix="/v1", tags=["refunds"], dependencies=SIMULATED)


@router.post(
    "/authorizations/{authorization_id}/refunds",
    summary="Refund (part of) a captured card payment; idempotent by reference",
)
async def refund_authorization(
    authorization_id: str, body: RefundCreate, session: SessionDep
) -> RefundRead:
    return RefundRead.model_validate(
        await refund_service.refund_authorization(session, authorization_id, body)
    )


@router.post(
    "/qr-payments/{qr_payment_id}/refunds",
    summary="Refund (part of) a paid QR payment; idempotent by reference",
)
async def refund_qr_payment(
    qr_payment_id: str, body: RefundCreate, session: SessionDep
) -> RefundRead:
    return RefundRead.model_validate(
        await refund_service.refund_qr_payment(session, qr_payment_id, body)
    )
