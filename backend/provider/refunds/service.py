"""Refunds of captured card payments and of paid QR payments, idempotent by reference.

The parent's row lock serialises refunds of one payment, so the running total can never pass
what was captured (the database's CHECK constraints say the same).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.errors import Conflict
from backend.core.models import utcnow
from backend.provider.authorizations.service import authorization_service, invalid_state
from backend.provider.ids import new_id
from backend.provider.models import Authorization, QrPayment, Refund
from backend.provider.qr_payments.service import qr_payment_service
from backend.provider.refunds.repository import RefundRepository
from backend.provider.refunds.schemas import RefundCreate, RefundRead
from backend.provider.webhooks.service import webhook_service

Parent = Authorization | QrPayment


def _parent_key(parent: Parent) -> tuple[str | None, str | None]:
    if isinstance(parent, Authorization):
        return parent.id, None
    return None, parent.id


def _replay(
    existing: Refund, parent_key: tuple[str | None, str | None], body: RefundCreate
) -> Refund:
    if (existing.authorization_id, existing.qr_payment_id) != parent_key or (
        existing.amount != body.amount
    ):
        raise Conflict(
            f"Reference {body.reference} was already used for a different refund.",
            code="reference_conflict",
        )
    return existing


def _refundable(parent: Parent) -> int:
    """What may still be refunded, or a 409 when the payment cannot be refunded at all."""
    if isinstance(parent, Authorization):
        if parent.status != "approved" or parent.voided or not parent.captured:
            raise invalid_state(parent, "refunded")
        return parent.amount_captured - parent.amount_refunded
    if parent.status != "paid":
        raise Conflict(
            f"A {parent.status} QR payment cannot be refunded.",
            code="invalid_state",
            current_state=parent.status,
        )
    return parent.amount - parent.amount_refunded


class RefundService:
    async def refund_authorization(
        self, session: AsyncSession, authorization_id: str, body: RefundCreate
    ) -> Refund:
        existing = await RefundRepository(session).by_reference(body.reference)
        if existing is not None:
            return _replay(existing, (authorization_id, None), body)
        authorization = await authorization_service.get(session, authorization_id, for_update=True)
        return await self._refund(session, authorization, body)

    async def refund_qr_payment(
        self, session: AsyncSession, qr_payment_id: str, body: RefundCreate
    ) -> Refund:
        existing = await RefundRepository(session).by_reference(body.reference)
        if existing is not None:
            return _replay(existing, (None, qr_payment_id), body)
        payment = await qr_payment_service.get(session, qr_payment_id, for_update=True)
        return await self._refund(session, payment, body)

    async def _refund(self, session: AsyncSession, parent: Parent, body: RefundCreate) -> Refund:
        repository = RefundRepository(session)
        parent_key = _parent_key(parent)
        # Re-read under the parent's lock: a racing request with this reference has settled.
        existing = await repository.by_reference(body.reference)
        if existing is not None:
            return _replay(existing, parent_key, body)
        remaining = _refundable(parent)
        if body.amount > remaining:
            raise Conflict(
                f"Refunding {body.amount} would exceed what was captured ({remaining} remains).",
                code="refund_exceeds_captured",
                refundable_amount=remaining,
            )
        refund = await repository.insert_unless_referenced(
            {
                "id": new_id("re"),
                "reference": body.reference,
                "authorization_id": parent_key[0],
                "qr_payment_id": parent_key[1],
                "amount": body.amount,
                "currency": parent.currency,
                "status": "succeeded",
                "created_at": utcnow(),
            }
        )
        if refund is None:
            # The reference was taken meanwhile by a refund of another payment.
            raced = await repository.by_reference(body.reference)
            assert raced is not None
            return _replay(raced, parent_key, body)
        parent.amount_refunded += body.amount
        await session.flush()
        await webhook_service.emit(
            session,
            type_="refund.succeeded",
            data=RefundRead.model_validate(refund).model_dump(mode="json"),
            endpoint_url=parent.webhook_url,
            reference=parent.reference,
            refund_reference=refund.reference,
        )
        return refund


refund_service = RefundService()
