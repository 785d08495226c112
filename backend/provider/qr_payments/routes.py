from __future__ import annotations

from fastapi import APIRouter

from backend.core.database import SessionDep
from backend.provider.context import API_KEY, SIMULATED, ProviderDep
from backend.provider.qr_payments.schemas import QrPaymentCreate, QrPaymentRead, QrSimulate
from backend.provider.qr_payments.service import qr_payment_service

router = APIRouter(prefix="/v1/qr-payments", tags=["qr-payments"])


@router.post("", dependencies=SIMULATED, summary="Create a wallet QR code; idempotent by reference")
async def create_qr_payment(
    body: QrPaymentCreate, session: SessionDep, provider: ProviderDep
) -> QrPaymentRead:
    return QrPaymentRead.model_validate(await qr_payment_service.create(session, provider, body))


@router.get(
    "/by-reference/{reference}", dependencies=SIMULATED, summary="The QR payment of a reference"
)
async def get_qr_payment_by_reference(reference: str, session: SessionDep) -> QrPaymentRead:
    return QrPaymentRead.model_validate(await qr_payment_service.by_reference(session, reference))


@router.get("/{qr_payment_id}", dependencies=SIMULATED, summary="One QR payment")
async def get_qr_payment(qr_payment_id: str, session: SessionDep) -> QrPaymentRead:
    return QrPaymentRead.model_validate(await qr_payment_service.get(session, qr_payment_id))


@router.post(
    "/{qr_payment_id}/simulate",
    dependencies=API_KEY,
    summary="Dev/test control: the customer's wallet pays, declines or lets the code expire",
)
async def simulate_qr_payment(
    qr_payment_id: str, body: QrSimulate, session: SessionDep
) -> QrPaymentRead:
    return QrPaymentRead.model_validate(
        await qr_payment_service.simulate(session, qr_payment_id, body)
    )
