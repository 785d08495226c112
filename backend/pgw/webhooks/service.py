"""Applying the provider's webhook events and reconciling payments whose outcome was unknown."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.errors import ServiceUnavailable
from backend.core.models import utcnow
from backend.pgw.connectors.base import Authorization, PaymentConnector, ProviderError, QrPayment
from backend.pgw.models import Payment
from backend.pgw.payments.service import (
    apply_authorization,
    apply_qr_status,
    record_payment_event,
    transition,
)
from backend.pgw.payments.states import PaymentStatus, can_transition
from backend.pgw.webhooks.repository import ProviderEventRepository, ProviderPaymentRepository

logger = logging.getLogger(__name__)
SYSTEM_ACTOR = "system:provider"

_QR_STATUS_BY_EVENT = {
    "qr_payment.succeeded": "paid",
    "qr_payment.failed": "declined",
    "qr_payment.expired": "expired",
}


def _reference(data: dict[str, Any]) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(data.get("reference")))
    except ValueError:
        return None


class ProviderEventService:
    async def handle(
        self,
        session: AsyncSession,
        event: dict[str, Any],
        connector: PaymentConnector | None = None,
    ) -> str:
        """Apply one event exactly once; returns what happened (for the response and the log).

        ``connector``: how to reverse an approval that arrives for a payment pgw has already
        failed (without it such an event is only recorded)."""
        event_id, event_type = str(event["id"]), str(event["type"])
        data: dict[str, Any] = event.get("data") or {}
        events = ProviderEventRepository(session)
        if not await events.record_once(event_id, event_type, event):
            return "duplicate"
        reference = _reference(data)
        payment = (
            await ProviderPaymentRepository(session).lock_by_id(reference) if reference else None
        )
        if payment is None:
            outcome = "unknown_payment"
        else:
            outcome = await self._apply(session, payment, event_type, data, connector)
        await events.set_outcome(event_id, outcome, payment.id if payment else None)
        return outcome

    async def _apply(
        self,
        session: AsyncSession,
        payment: Payment,
        event_type: str,
        data: dict[str, Any],
        connector: PaymentConnector | None,
    ) -> str:
        target: PaymentStatus | None = None
        if event_type in _QR_STATUS_BY_EVENT and payment.method == "qr_wallet":
            qr = QrPayment(
                provider_reference=str(data.get("qr_payment_id") or payment.provider_reference),
                status=_QR_STATUS_BY_EVENT[event_type],
                qr_payload=payment.qr_payload or "",
                expires_at=None,
            )
            if not can_transition(PaymentStatus(payment.status), self._qr_target(qr)):
                # Late or out of order (say "expired" after "succeeded"): the payment already
                # holds a final answer, and a later event cannot rewrite money that moved.
                return f"ignored_in_{payment.status}"
            target = apply_qr_status(payment, qr)
        elif event_type in ("authorization.approved", "authorization.declined"):
            late_approval = (
                event_type == "authorization.approved"
                and payment.status == PaymentStatus.FAILED.value
                and data.get("status") == "approved"
            )
            if late_approval and connector is not None:
                return await self._reverse_late_approval(session, connector, payment, data)
            if payment.status != PaymentStatus.PROCESSING.value:
                return f"ignored_in_{payment.status}"
            target, _ = apply_authorization(payment, _authorization_from(data))
        else:
            return "ignored_type"
        assert target is not None
        await transition(
            session,
            payment,
            target,
            event_type=f"payment.{target.value}",
            actor=SYSTEM_ACTOR,
            data={"via": "webhook", "event_type": event_type},
        )
        return f"applied_{target.value}"

    async def _reverse_late_approval(
        self,
        session: AsyncSession,
        connector: PaymentConnector,
        payment: Payment,
        data: dict[str, Any],
    ) -> str:
        """The provider approved a payment pgw already told the terminal had failed (it saw no
        record of it at the provider, which then processed a request still in flight): the
        customer was charged for a sale the merchant believes unpaid. pgw gives the money back
        (void, or a refund once captured) and keeps the payment ``failed``.

        Reversed before the event is acknowledged: when the provider cannot be reached the
        event is refused with 503, nothing is recorded, and the provider delivers it again.
        """
        authorization = _authorization_from(data)
        try:
            if authorization.captured and authorization.amount_captured > 0:
                await connector.refund(
                    authorization.provider_reference,
                    # The same refund id on every delivery: the provider refunds once.
                    reference=uuid.uuid5(payment.id, "late-approval-reversal"),
                    amount=authorization.amount_captured,
                    qr=False,
                )
                how = "refunded"
            else:
                await connector.void(authorization.provider_reference)
                how = "voided"
        except ProviderError as exc:
            raise ServiceUnavailable(
                "A late approval of a failed payment could not be reversed yet; "
                "deliver the event again.",
                code="reversal_pending",
                headers={"Retry-After": "5"},
            ) from exc
        logger.warning(
            "payment %s (failed: %s) was approved late by the provider; %s it",
            payment.id,
            payment.failure_code,
            how,
        )
        await record_payment_event(
            session,
            payment,
            event_type="payment.late_approval_reversed",
            from_status=payment.status,
            actor=SYSTEM_ACTOR,
            amount=authorization.amount_captured or payment.amount + payment.tip_amount,
            data={"via": "webhook", "reversal": how},
        )
        return f"reversed_late_approval_{how}"

    @staticmethod
    def _qr_target(qr: QrPayment) -> PaymentStatus:
        return {
            "paid": PaymentStatus.CAPTURED,
            "declined": PaymentStatus.DECLINED,
            "expired": PaymentStatus.EXPIRED,
        }[qr.status]


def _authorization_from(data: dict[str, Any]) -> Authorization:
    return Authorization(
        provider_reference=str(data.get("id") or data.get("authorization_id") or ""),
        approved=data.get("status") == "approved",
        decline_code=data.get("decline_code"),
        auth_code=data.get("auth_code"),
        brand=data.get("brand"),
        last4=data.get("last4"),
        exp_month=data.get("exp_month"),
        exp_year=data.get("exp_year"),
        fingerprint=data.get("fingerprint"),
        captured=bool(data.get("captured")),
        amount_captured=int(data.get("amount_captured") or 0),
    )


class Reconciler:
    """Resolves payments left ``processing`` (provider timeout, crash) by asking the provider.

    It only touches payments older than the provider timeout, so it never races the request
    that is still waiting for the provider's answer.
    """

    async def run_once(
        self,
        session: AsyncSession,
        connector: PaymentConnector,
        *,
        min_age_s: float,
        limit: int = 50,
        payment_ids: Collection[uuid.UUID] | None = None,
    ) -> dict[str, int]:
        """One pass; ``payment_ids`` limits it to those payments (an operator's targeted run)."""
        counts: dict[str, int] = {}
        stuck = await ProviderPaymentRepository(session).lock_stuck_processing(
            older_than=utcnow() - dt.timedelta(seconds=min_age_s),
            limit=limit,
            payment_ids=payment_ids,
        )
        for payment in stuck:
            result = await self._resolve(session, connector, payment)
            counts[result] = counts.get(result, 0) + 1
        return counts

    async def _resolve(
        self, session: AsyncSession, connector: PaymentConnector, payment: Payment
    ) -> str:
        try:
            found: Authorization | QrPayment | None = (
                await connector.find_qr_payment(payment.id)
                if payment.method == "qr_wallet"
                else await connector.find_authorization(payment.id)
            )
        except ProviderError:
            return "provider_unreachable"
        data = {"via": "reconciler"}
        if found is None:
            # The provider never received it, so nothing was charged: failing is safe.
            payment.failure_code = "provider_no_record"
            payment.failure_message = (
                "The provider has no record of this payment; nothing was charged."
            )
            await transition(
                session,
                payment,
                PaymentStatus.FAILED,
                event_type="payment.failed",
                actor="system:reconciler",
                data=data,
            )
            return "failed"
        if isinstance(found, QrPayment):
            target = apply_qr_status(payment, found) or PaymentStatus.REQUIRES_ACTION
        else:
            target, _ = apply_authorization(payment, found)
        await transition(
            session,
            payment,
            target,
            event_type=f"payment.{target.value}",
            actor="system:reconciler",
            data=data,
        )
        return target.value


provider_event_service = ProviderEventService()
reconciler = Reconciler()
