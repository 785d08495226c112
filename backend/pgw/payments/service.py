"""Payments: create (card present or QR wallet), capture, void, refund, with provider calls.

Order of work for anything that reaches the provider: (1) the intent is committed (the payment
in ``processing``, or the refund id fixed in the idempotency claim), (2) the provider is called
outside any transaction, (3) the outcome is applied in the request's transaction. A crash between
(1) and (3) leaves a ``processing`` payment that the reconciler settles by asking the provider;
a retry with the same Idempotency-Key resumes the same payment id, which the provider treats
idempotently (it is the provider reference), so nothing is charged twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.authz import Principal
from backend.core.database import on_commit
from backend.core.errors import Conflict, NotFound, Problem, Unprocessable
from backend.core.ids import uuid7_time
from backend.core.models import utcnow
from backend.observability.metrics import service_metrics
from backend.pgw.connectors.base import (
    Authorization,
    CardData,
    PaymentConnector,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    QrPayment,
)
from backend.pgw.directory.service import PayingPoint, directory_service
from backend.pgw.models import Payment, PaymentEvent, Refund
from backend.pgw.payment_tokens.service import enforce_on_create, enforce_on_payment
from backend.pgw.payments.repository import PaymentEventWriter, PaymentRepository, RefundRepository
from backend.pgw.payments.schemas import CaptureRequest, PaymentCreate, RefundCreate
from backend.pgw.payments.states import PaymentStatus, can_transition

logger = logging.getLogger(__name__)
S = PaymentStatus
PAYMENTS = service_metrics("pgw").payments


class IllegalTransition(Conflict):
    code, title = "illegal_transition", "Not allowed in the payment's current state"


def actor_of(principal: Principal) -> str:
    return f"{principal.kind}:{principal.subject_id}"


async def transition(
    session: AsyncSession,
    payment: Payment,
    target: PaymentStatus,
    *,
    event_type: str,
    actor: str | None,
    amount: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """The only place a payment's status changes; every change leaves a payment event."""
    current = PaymentStatus(payment.status)
    if not can_transition(current, target):
        raise IllegalTransition(
            f"A {current.value} payment cannot become {target.value}.",
            current_status=current.value,
            payment_id=str(payment.id),
        )
    now = utcnow()
    payment.status = target.value
    method = payment.method
    on_commit(session, lambda: PAYMENTS.labels("pgw", target.value, method).inc())
    payment.updated_at = now
    payment.version += 1
    await record_payment_event(
        session,
        payment,
        event_type=event_type,
        from_status=current.value,
        actor=actor,
        amount=amount,
        data=data,
        at=now,
    )


async def record_payment_event(
    session: AsyncSession,
    payment: Payment,
    *,
    event_type: str,
    from_status: str,
    actor: str | None,
    amount: int | None = None,
    data: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> None:
    """Add to the payment's history; ``to_status`` is the status it has now."""
    await PaymentEventWriter(session).add(
        PaymentEvent(
            created_at=at or utcnow(),
            payment_id=payment.id,
            psp_id=payment.psp_id,
            merchant_id=payment.merchant_id,
            store_id=payment.store_id,
            event_type=event_type,
            from_status=from_status,
            to_status=payment.status,
            amount=amount,
            actor=actor,
            data=data or {},
        )
    )


def apply_authorization(
    payment: Payment, result: Authorization
) -> tuple[PaymentStatus, dict[str, Any]]:
    """Copy the provider's answer onto the payment; returns the status it leads to."""
    payment.provider_reference = result.provider_reference
    payment.card_brand = result.brand
    payment.card_last4 = result.last4
    payment.card_exp_month = result.exp_month
    payment.card_exp_year = result.exp_year
    payment.card_fingerprint = result.fingerprint
    if not result.approved:
        payment.failure_code = result.decline_code or "declined"
        payment.failure_message = f"The card was declined ({payment.failure_code})."
        return S.DECLINED, {"decline_code": payment.failure_code}
    payment.auth_code = result.auth_code
    if result.captured:
        payment.amount_captured = result.amount_captured
        payment.captured_at = utcnow()
        return S.CAPTURED, {"auth_code": result.auth_code}
    return S.AUTHORIZED, {"auth_code": result.auth_code}


def apply_qr_status(payment: Payment, qr: QrPayment) -> PaymentStatus | None:
    """The status a QR payment's provider state leads to, or None while the customer decides."""
    payment.provider_reference = qr.provider_reference
    payment.qr_payload = qr.qr_payload
    if qr.status == "paid":
        payment.amount_captured = payment.amount + payment.tip_amount
        payment.captured_at = utcnow()
        return S.CAPTURED
    if qr.status == "declined":
        payment.failure_code, payment.failure_message = "wallet_declined", "The wallet declined."
        return S.DECLINED
    if qr.status == "expired":
        payment.failure_code, payment.failure_message = "qr_expired", "The QR code expired unpaid."
        return S.EXPIRED
    return None


class PaymentService:
    async def get(
        self,
        session: AsyncSession,
        principal: Principal,
        payment_id: uuid.UUID,
        *,
        for_update: bool = False,
    ) -> Payment:
        payment = await PaymentRepository(session, principal.scope).get(
            payment_id, for_update=for_update
        )
        if payment is None:
            raise NotFound(f"Payment {payment_id} does not exist.", code="payment_not_found")
        await enforce_on_payment(session, principal, payment)
        return payment

    async def paying_point(
        self, session: AsyncSession, principal: Principal, body: PaymentCreate
    ) -> PayingPoint:
        store_id = principal.scope.store_id or body.store_id
        if store_id is None:
            raise Unprocessable(
                "Say which store the payment is for (store_id).", code="store_required"
            )
        if principal.scope.store_id is not None and body.store_id not in (
            None,
            principal.scope.store_id,
        ):
            raise Unprocessable("store_id differs from the caller's store.", code="store_mismatch")
        return await directory_service.paying_point(
            session, principal.scope, store_id, principal.terminal_id
        )

    async def begin_create(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        principal: Principal,
        payment_id: uuid.UUID,
        body: PaymentCreate,
        *,
        fresh: bool = False,
    ) -> tuple[Payment, bool]:
        """Step (1): commit the payment as ``processing``; returns it and whether it existed.

        ``fresh``: the id was minted by this request's idempotency claim, so no earlier attempt
        can have written it and the lookup is skipped.
        """
        if body.method == "card_present" and (body.card is None or body.entry_mode is None):
            raise Unprocessable(
                "A card-present payment needs the card read and its entry_mode.",
                code="card_required",
            )
        if body.method == "qr_wallet" and body.card is not None:
            raise Unprocessable("A QR wallet payment carries no card.", code="card_not_allowed")
        if body.method == "qr_wallet" and body.capture_method == "manual":
            raise Unprocessable(
                "QR wallet payments capture automatically.", code="capture_method_not_supported"
            )
        async with sessionmaker() as session, session.begin():
            if not fresh:
                existing = await PaymentRepository(session, principal.scope).get(payment_id)
                if existing is not None:
                    await enforce_on_payment(session, principal, existing)
                    return existing, True
            await enforce_on_create(session, principal, body, payment_id)
            point = await self.paying_point(session, principal, body)
            created_at = uuid7_time(payment_id)
            payment = Payment(
                id=payment_id,
                created_at=created_at,
                updated_at=created_at,
                psp_id=point.psp_id,
                merchant_id=point.merchant_id,
                store_id=point.store_id,
                terminal_id=point.terminal_id,
                status=S.PENDING.value,
                method=body.method,
                entry_mode=body.entry_mode,
                capture_method=body.capture_method,
                currency=body.currency,
                amount=body.amount,
                tip_amount=body.tip_amount,
                amount_captured=0,
                amount_refunded=0,
                reference=body.reference,
                description=body.description,
                cashier_id=body.cashier_id,
                metadata_=dict(body.metadata),
                version=1,
            )
            # Inserted by the transition's flush, already ``processing``: one INSERT, where
            # inserting it ``pending`` and then moving it would cost an UPDATE more.
            session.add(payment)
            await transition(
                session,
                payment,
                S.PROCESSING,
                event_type="payment.created",
                actor=actor_of(principal),
                amount=body.amount + body.tip_amount,
                data={"method": body.method, "entry_mode": body.entry_mode},
            )
            return payment, False

    async def _claim_from_reconciler(
        self, session: AsyncSession, principal: Principal, payment_id: uuid.UUID
    ) -> Payment:
        """Re-read a resumed payment under its row lock and, while it is ``processing``, mark it
        as being worked on, then release the row for the provider call.

        The reconciler only takes payments unchanged for longer than the provider timeout:
        touching ``updated_at`` keeps it from deciding "the provider has no record, nothing was
        charged" at the moment this retry sends the payment again. A reconciler already
        holding the row is waited for, and its decision is what this retry returns.
        """
        payment = await self.get(session, principal, payment_id, for_update=True)
        if payment.status == S.PROCESSING.value:
            payment.updated_at = utcnow()
        # Release the row while the provider works: a slow acquirer must not hold locks.
        await session.commit()
        return payment

    async def finish_create(
        self,
        session: AsyncSession,
        connector: PaymentConnector,
        principal: Principal,
        begun: Payment,
        body: PaymentCreate,
        *,
        resumed: bool,
    ) -> Payment:
        """Steps (2) and (3): ask the provider, then record what it said.

        ``begun`` is what :meth:`begin_create` committed (or found). A resumed payment (a retry
        after a lost answer) is read again, since a webhook or the reconciler may have settled
        it since; it first asks the provider whether it already has it, and only sends it again
        when the provider never saw it. A new one goes straight to the provider.
        """
        payment_id = begun.id
        payment = begun
        if resumed:
            claimed = await self._claim_from_reconciler(session, principal, payment_id)
            if claimed.status != S.PROCESSING.value:
                return claimed  # resumed after it was already settled
            payment = claimed
        total = payment.amount + payment.tip_amount
        outcome: Authorization | QrPayment | None = None
        failure: tuple[str, str] | None = None
        try:
            if resumed:
                outcome = await (
                    connector.find_qr_payment(payment.id)
                    if payment.method == "qr_wallet"
                    else connector.find_authorization(payment.id)
                )
                if outcome is None:
                    # The lookup may have taken up to the provider timeout: claim it again for
                    # as long as the payment is sent.
                    claimed = await self._claim_from_reconciler(session, principal, payment_id)
                    if claimed.status != S.PROCESSING.value:
                        return claimed  # a webhook settled it meanwhile
            if outcome is not None:
                pass
            elif payment.method == "qr_wallet":
                outcome = await connector.create_qr_payment(
                    reference=payment.id,
                    amount=total,
                    currency=payment.currency,
                    merchant_id=payment.merchant_id,
                    store_id=payment.store_id,
                )
            else:
                assert body.card is not None
                assert payment.entry_mode is not None
                card = CardData(
                    pan=body.card.pan,
                    exp_month=body.card.exp_month,
                    exp_year=body.card.exp_year,
                    cvv=body.card.cvv,
                    pin=body.card.pin,
                )
                outcome = await connector.authorize(
                    reference=payment.id,
                    amount=total,
                    currency=payment.currency,
                    capture=payment.capture_method == "automatic",
                    entry_mode=payment.entry_mode,
                    card=card,
                    merchant_id=payment.merchant_id,
                    store_id=payment.store_id,
                    terminal_id=payment.terminal_id,
                )
        except ProviderTimeout:
            logger.warning(
                "provider timeout for payment %s; left processing for the reconciler", payment.id
            )
        except ProviderUnavailable:
            if resumed:
                # An earlier attempt may have reached the provider and charged the card: only
                # the provider can say, once it is back (this retry again, or the reconciler).
                logger.warning(
                    "provider unavailable while resuming payment %s; left processing", payment.id
                )
            else:
                failure = (
                    "provider_unavailable",
                    "The payment provider is unavailable; nothing was charged.",
                )
        except ProviderRejected as rejected:
            failure = (rejected.code, rejected.detail or "The provider rejected the payment.")
        if outcome is None and failure is None:
            # No answer in time: the answer is 202 ``processing`` as asked, whatever a webhook
            # may have written meanwhile; a retry with the key, the webhook or the reconciler
            # settles it. Nothing to write, so the row is not even read again.
            return payment
        # Read afresh in this session (never an object loaded before the provider call: it
        # would not show what a webhook changed in the meantime).
        payment = await self.get(session, principal, payment_id, for_update=True)
        if payment.status != S.PROCESSING.value:
            return payment  # the reconciler or a webhook got there first
        actor = actor_of(principal)
        if failure is not None:
            payment.failure_code, payment.failure_message = failure
            await transition(
                session,
                payment,
                S.FAILED,
                event_type="payment.failed",
                actor=actor,
                data={"code": failure[0]},
            )
        elif isinstance(outcome, Authorization):
            target, data = apply_authorization(payment, outcome)
            await transition(
                session,
                payment,
                target,
                event_type=f"payment.{target.value}",
                actor=actor,
                amount=total,
                data=data,
            )
        elif isinstance(outcome, QrPayment):
            target = apply_qr_status(payment, outcome) or S.REQUIRES_ACTION
            await transition(
                session, payment, target, event_type=f"payment.{target.value}", actor=actor
            )
        return payment

    async def capture(
        self,
        session: AsyncSession,
        connector: PaymentConnector,
        principal: Principal,
        payment_id: uuid.UUID,
        body: CaptureRequest,
    ) -> Payment:
        payment = await self.get(session, principal, payment_id, for_update=True)
        authorized_total = payment.amount + payment.tip_amount
        amount = body.amount if body.amount is not None else authorized_total
        if payment.status != S.AUTHORIZED.value:
            raise IllegalTransition(
                f"A {payment.status} payment cannot be captured.",
                current_status=payment.status,
                payment_id=str(payment.id),
            )
        if amount > authorized_total:
            raise Unprocessable(
                f"Cannot capture {amount}: only {authorized_total} was authorized.",
                code="capture_exceeds_authorized",
                authorized=authorized_total,
            )
        result = await self._provider(self._capture_at_provider(connector, payment, amount))
        payment.amount_captured = result.amount_captured or amount
        payment.captured_at = utcnow()
        await transition(
            session,
            payment,
            S.CAPTURED,
            event_type="payment.captured",
            actor=actor_of(principal),
            amount=payment.amount_captured,
            # One capture only; what was not captured goes back to the cardholder.
            data={"released": authorized_total - payment.amount_captured},
        )
        return payment

    async def _capture_at_provider(
        self, connector: PaymentConnector, payment: Payment, amount: int
    ) -> Authorization:
        """The provider's capture, or the capture an earlier attempt already made there.

        The provider captures once and refuses a second capture (``already_captured``) without
        saying what it captured. Only pgw captures this authorization, and the payment is still
        ``authorized`` under its row lock, so that refusal means an earlier attempt whose answer
        was lost (a provider timeout: 504, retried with the same key) did capture: pgw records
        what the provider holds instead of refusing every retry while the card stays charged.
        """
        assert payment.provider_reference is not None
        try:
            return await connector.capture(payment.provider_reference, amount)
        except ProviderRejected as rejected:
            if rejected.code != "already_captured":
                raise
            found = await connector.find_authorization(payment.id)
            if found is None or not found.captured:
                raise
            return found

    async def void(
        self,
        session: AsyncSession,
        connector: PaymentConnector,
        principal: Principal,
        payment_id: uuid.UUID,
    ) -> Payment:
        payment = await self.get(session, principal, payment_id, for_update=True)
        actor = actor_of(principal)
        if payment.status == S.REQUIRES_ACTION.value:
            await transition(
                session, payment, S.CANCELED, event_type="payment.canceled", actor=actor
            )
            return payment
        if payment.status != S.AUTHORIZED.value:
            raise IllegalTransition(
                f"A {payment.status} payment cannot be voided; refund it instead."
                if payment.status in (S.CAPTURED.value, S.PARTIALLY_REFUNDED.value)
                else f"A {payment.status} payment cannot be voided.",
                current_status=payment.status,
                payment_id=str(payment.id),
            )
        assert payment.provider_reference is not None
        await self._provider(connector.void(payment.provider_reference))
        await transition(session, payment, S.VOIDED, event_type="payment.voided", actor=actor)
        return payment

    async def refund(
        self,
        session: AsyncSession,
        connector: PaymentConnector,
        principal: Principal,
        payment_id: uuid.UUID,
        refund_id: uuid.UUID,
        body: RefundCreate,
    ) -> tuple[Refund, Payment]:
        payment = await self.get(session, principal, payment_id, for_update=True)
        if payment.status not in (S.CAPTURED.value, S.PARTIALLY_REFUNDED.value):
            raise IllegalTransition(
                f"A {payment.status} payment cannot be refunded.",
                current_status=payment.status,
                payment_id=str(payment.id),
            )
        refundable = payment.amount_captured - payment.amount_refunded
        amount = body.amount if body.amount is not None else refundable
        if amount > refundable:
            raise Unprocessable(
                f"Cannot refund {amount}: {refundable} is left of what was captured.",
                code="refund_exceeds_captured",
                refundable=refundable,
            )
        assert payment.provider_reference is not None
        await self._provider(
            connector.refund(
                payment.provider_reference,
                reference=refund_id,
                amount=amount,
                qr=payment.method == "qr_wallet",
            )
        )
        refund = Refund(
            id=refund_id,
            payment_id=payment.id,
            psp_id=payment.psp_id,
            merchant_id=payment.merchant_id,
            store_id=payment.store_id,
            terminal_id=principal.terminal_id or payment.terminal_id,
            amount=amount,
            currency=payment.currency,
            status="succeeded",
            reason=body.reason,
        )
        await RefundRepository(session, principal.scope).add(refund)
        payment.amount_refunded += amount
        target = (
            S.REFUNDED
            if payment.amount_refunded == payment.amount_captured
            else S.PARTIALLY_REFUNDED
        )
        await transition(
            session,
            payment,
            target,
            event_type="payment.refunded",
            actor=actor_of(principal),
            amount=amount,
            data={"refund_id": str(refund.id)},
        )
        return refund, payment

    async def _provider(self, call: Any) -> Any:
        """Provider calls that change an existing payment: failures are the caller's to retry."""
        try:
            return await call
        except ProviderTimeout as exc:
            # The provider may still act on it (the retry finds out and records it once).
            raise Problem(
                "The payment provider did not answer in time; it may still have acted. Retry "
                "with the same Idempotency-Key.",
                code="provider_timeout",
                status=504,
                title="Provider timeout",
                headers={"Retry-After": "2"},
            ) from exc
        except ProviderUnavailable as exc:
            raise Problem(
                "The payment provider is unavailable; retry with the same Idempotency-Key.",
                code="provider_unavailable",
                status=503,
                title="Provider unavailable",
                headers={"Retry-After": "2"},
            ) from exc
        except ProviderRejected as exc:
            raise Conflict(
                exc.detail or "The provider refused the operation.", code=exc.code
            ) from exc


payment_service = PaymentService()
