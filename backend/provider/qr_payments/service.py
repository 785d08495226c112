"""QR wallet payments: shown by the terminal, completed later by the customer's wallet."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.errors import Conflict, NotFound
from backend.core.models import utcnow
from backend.provider.context import ProviderContext
from backend.provider.ids import new_id
from backend.provider.models import QrPayment
from backend.provider.qr_payments.repository import QrPaymentRepository
from backend.provider.qr_payments.schemas import QrPaymentCreate, QrSimulate
from backend.provider.webhooks.service import webhook_service

_EVENT_OF_STATUS = {
    "paid": "qr_payment.succeeded",
    "declined": "qr_payment.failed",
    "expired": "qr_payment.expired",
}


def qr_event_data(payment: QrPayment) -> dict[str, Any]:
    return {
        "qr_payment_id": payment.id,
        "reference": payment.reference,
        "amount": payment.amount,
        "currency": payment.currency,
        "status": payment.status,
        "wallet": payment.wallet,
    }


async def _emit_completion(session: AsyncSession, payment: QrPayment) -> None:
    await webhook_service.emit(
        session,
        type_=_EVENT_OF_STATUS[payment.status],
        data=qr_event_data(payment),
        endpoint_url=payment.webhook_url,
        reference=payment.reference,
    )


class QrPaymentService:
    async def get(
        self, session: AsyncSession, qr_payment_id: str, *, for_update: bool = False
    ) -> QrPayment:
        payment = await QrPaymentRepository(session).get(qr_payment_id, for_update=for_update)
        if payment is None:
            raise NotFound(
                f"QR payment {qr_payment_id} does not exist.", code="qr_payment_not_found"
            )
        return payment

    async def by_reference(self, session: AsyncSession, reference: str) -> QrPayment:
        payment = await QrPaymentRepository(session).by_reference(reference)
        if payment is None:
            raise NotFound(
                f"No QR payment with reference {reference} was received.",
                code="qr_payment_not_found",
            )
        return payment

    @staticmethod
    def _replay(existing: QrPayment, body: QrPaymentCreate) -> QrPayment:
        if (existing.amount, existing.currency) != (body.amount, body.currency):
            raise Conflict(
                f"Reference {body.reference} was already used for a different payment.",
                code="reference_conflict",
            )
        return existing

    async def create(
        self, session: AsyncSession, provider: ProviderContext, body: QrPaymentCreate
    ) -> QrPayment:
        repository = QrPaymentRepository(session)
        existing = await repository.by_reference(body.reference)
        if existing is not None:
            return self._replay(existing, body)
        now = utcnow()
        payment = await repository.insert_unless_referenced(
            {
                "id": new_id("qr"),
                "reference": body.reference,
                "status": "pending",
                "amount": body.amount,
                "currency": body.currency,
                "wallet": body.wallet,
                "merchant_id": body.merchant_id,
                "store_id": body.store_id,
                "terminal_id": body.terminal_id,
                "amount_refunded": 0,
                "webhook_url": provider.webhook_url,
                "created_at": now,
                "expires_at": now + dt.timedelta(seconds=provider.settings.provider_qr_ttl_s),
            }
        )
        if payment is None:
            raced = await repository.by_reference(body.reference)
            assert raced is not None
            return self._replay(raced, body)
        return payment

    async def simulate(
        self, session: AsyncSession, qr_payment_id: str, body: QrSimulate
    ) -> QrPayment:
        """The customer's wallet pays, declines, or lets the code expire."""
        payment = await self.get(session, qr_payment_id, for_update=True)
        if payment.status != "pending":
            raise Conflict(
                f"The QR payment is already {payment.status}.",
                code="invalid_state",
                current_state=payment.status,
            )
        now = utcnow()
        if body.outcome != "expired" and payment.expires_at <= now:
            payment.status = "expired"
            payment.completed_at = now
            await session.flush()
            await _emit_completion(session, payment)
            # The expiry (and its event) stand even though the wallet's action is refused.
            raise Conflict(
                "The QR code expired before the wallet used it.",
                code="qr_payment_expired",
                current_state="expired",
                commit=True,
            )
        payment.status = body.outcome
        payment.completed_at = now
        await session.flush()
        await _emit_completion(session, payment)
        return payment

    async def expire_overdue(
        self, session: AsyncSession, webhook_url: str, *, limit: int = 100
    ) -> Sequence[QrPayment]:
        expired = await QrPaymentRepository(session).expire_overdue(
            webhook_url, now=utcnow(), limit=limit
        )
        for payment in expired:
            await _emit_completion(session, payment)
        return expired


qr_payment_service = QrPaymentService()
