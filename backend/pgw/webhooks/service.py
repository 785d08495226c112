"""Applying the provider's webhook events and reconciling payments whose outcome was unknown."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.models import utcnow
from backend.pgw.connectors.base import Authorization, PaymentConnector, ProviderError, QrPayment
from backend.pgw.models import Payment
from backend.pgw.payments.service import apply_authorization, apply_qr_status, transition
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
    async def handle(self, session: AsyncSession, event: dict[str, Any]) -> str:
        """Apply one event exactly once; returns what happened (for the response and the log)."""
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
            outcome = await self._apply(session, payment, event_type, data)
        await events.set_outcome(event_id, outcome, payment.id if payment else None)
        return outcome

    async def _apply(
        self, session: AsyncSession, payment: Payment, event_type: str, data: dict[str, Any]
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
