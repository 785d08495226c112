"""SQL of settlement: claiming unbatched payments and refunds, reading batches and their lines."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import select, text, update

from backend.core.authz import apply_tenant_scope
from backend.core.repository import TenantRepository
from backend.pgw.models import KnownStore, KnownTerminal, Payment, Refund, SettlementBatch
from backend.pgw.payments.states import SETTLED_STATUSES

_SETTLED = sorted(status.value for status in SETTLED_STATUSES)


@dataclass(frozen=True)
class ClosedPayment:
    id: uuid.UUID
    currency: str
    amount_captured: int
    tip_amount: int
    method: str
    card_brand: str | None
    entry_mode: str | None


@dataclass(frozen=True)
class ClosedRefund:
    id: uuid.UUID
    payment_id: uuid.UUID
    currency: str
    amount: int
    # Of the refunded payment, for the breakdowns (None when the payment is not visible).
    method: str | None
    card_brand: str | None
    entry_mode: str | None


class SettlementRepository(TenantRepository[SettlementBatch]):
    model = SettlementBatch

    # -- directory (read through the caller's scope: a foreign store is simply not found) -------

    async def store(self, store_id: uuid.UUID) -> KnownStore | None:
        statement = apply_tenant_scope(
            select(KnownStore).where(KnownStore.id == store_id), KnownStore, self.scope
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def terminal(self, terminal_id: uuid.UUID) -> KnownTerminal | None:
        statement = apply_tenant_scope(
            select(KnownTerminal).where(KnownTerminal.id == terminal_id), KnownTerminal, self.scope
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    # -- closing --------------------------------------------------------------------------------

    async def lock_store(self, store_id: uuid.UUID) -> None:
        """Serialise every close of one store (terminal or store scope) until commit.

        Row locks alone already keep a payment out of two batches; this lock also makes
        ``period_start`` (the previous batch's end) exact when two closes race.
        """
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"pgw.settlement:{store_id}"},
        )

    async def previous(
        self, scope: str, store_id: uuid.UUID, terminal_id: uuid.UUID | None
    ) -> SettlementBatch | None:
        statement = self.scoped().where(
            SettlementBatch.scope == scope,
            SettlementBatch.store_id == store_id,
            SettlementBatch.terminal_id == terminal_id
            if terminal_id is not None
            else SettlementBatch.terminal_id.is_(None),
        )
        statement = statement.order_by(SettlementBatch.period_end.desc()).limit(1)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def claim_payments(
        self,
        batch_id: uuid.UUID,
        *,
        merchant_id: uuid.UUID,
        store_id: uuid.UUID,
        terminal_id: uuid.UUID | None,
    ) -> list[ClosedPayment]:
        """Stamp every settled, unbatched payment of the store (or terminal) with ``batch_id``.

        One UPDATE: it locks each row it changes, and a row another transaction is changing is
        re-checked once that one commits, so a payment lands in exactly one batch. A payment
        that becomes settled after this statement's snapshot is left for the next close.
        """
        conditions = [
            Payment.merchant_id == merchant_id,
            Payment.store_id == store_id,
            Payment.settlement_batch_id.is_(None),
            Payment.status.in_(_SETTLED),
        ]
        if terminal_id is not None:
            conditions.append(Payment.terminal_id == terminal_id)
        statement = (
            update(Payment)
            .where(*conditions)
            .values(settlement_batch_id=batch_id)
            .returning(
                Payment.id,
                Payment.currency,
                Payment.amount_captured,
                Payment.tip_amount,
                Payment.method,
                Payment.card_brand,
                Payment.entry_mode,
            )
            .execution_options(synchronize_session=False)
        )
        rows = (await self.session.execute(statement)).all()
        return [ClosedPayment(*row) for row in rows]

    async def claim_refunds(
        self,
        batch_id: uuid.UUID,
        *,
        merchant_id: uuid.UUID,
        store_id: uuid.UUID,
        terminal_id: uuid.UUID | None,
    ) -> list[ClosedRefund]:
        """Stamp every succeeded, unbatched refund of the store (or made at the terminal)."""
        conditions = [
            Refund.merchant_id == merchant_id,
            Refund.store_id == store_id,
            Refund.settlement_batch_id.is_(None),
            Refund.status == "succeeded",
        ]
        if terminal_id is not None:
            conditions.append(Refund.terminal_id == terminal_id)
        statement = (
            update(Refund)
            .where(*conditions)
            .values(settlement_batch_id=batch_id)
            .returning(Refund.id, Refund.payment_id, Refund.currency, Refund.amount)
            .execution_options(synchronize_session=False)
        )
        claimed = (await self.session.execute(statement)).all()
        paid = await self._payments(merchant_id, {row[1] for row in claimed})
        refunds = []
        for id_, payment_id, currency, amount in claimed:
            payment = paid.get(payment_id)
            refunds.append(
                ClosedRefund(
                    id_,
                    payment_id,
                    currency,
                    amount,
                    payment.method if payment else None,
                    payment.card_brand if payment else None,
                    payment.entry_mode if payment else None,
                )
            )
        return refunds

    async def _payments(
        self, merchant_id: uuid.UUID, payment_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, Payment]:
        if not payment_ids:
            return {}
        statement = apply_tenant_scope(
            select(Payment).where(
                Payment.merchant_id == merchant_id, Payment.id.in_(list(payment_ids))
            ),
            Payment,
            self.scope,
        )
        return {row.id: row for row in (await self.session.execute(statement)).scalars()}

    # -- reading --------------------------------------------------------------------------------

    async def search(
        self,
        *,
        store_id: uuid.UUID | None,
        terminal_id: uuid.UUID | None,
        scope: str | None,
        before: uuid.UUID | None,
        limit: int,
    ) -> tuple[Sequence[SettlementBatch], uuid.UUID | None]:
        """Newest first (ids are UUIDv7 made when the close ran); ``before`` is the cursor."""
        statement = select(SettlementBatch).order_by(SettlementBatch.id.desc()).limit(limit + 1)
        for column, value in (
            (SettlementBatch.store_id, store_id),
            (SettlementBatch.terminal_id, terminal_id),
            (SettlementBatch.scope, scope),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if before is not None:
            statement = statement.where(SettlementBatch.id < before)
        rows = (await self.session.execute(self.scoped(statement))).scalars().all()
        cursor = rows[limit - 1].id if len(rows) > limit else None
        return rows[:limit], cursor

    async def payments_of(self, batch: SettlementBatch) -> Sequence[Payment]:
        statement = apply_tenant_scope(
            select(Payment)
            .where(
                Payment.settlement_batch_id == batch.id,
                Payment.merchant_id == batch.merchant_id,
                Payment.store_id == batch.store_id,
                # Created before the close: lets PostgreSQL skip later monthly partitions.
                Payment.created_at <= batch.period_end,
            )
            .order_by(Payment.created_at, Payment.id),
            Payment,
            self.scope,
        )
        return (await self.session.execute(statement)).scalars().all()

    async def refunds_of(self, batch: SettlementBatch) -> list[tuple[Refund, Payment | None]]:
        """The batch's refunds with the payment each refunds (for brand, last4, method)."""
        statement = apply_tenant_scope(
            select(Refund)
            .where(
                Refund.settlement_batch_id == batch.id,
                Refund.merchant_id == batch.merchant_id,
                Refund.store_id == batch.store_id,
            )
            .order_by(Refund.created_at, Refund.id),
            Refund,
            self.scope,
        )
        refunds = (await self.session.execute(statement)).scalars().all()
        paid = await self._payments(batch.merchant_id, {refund.payment_id for refund in refunds})
        return [(refund, paid.get(refund.payment_id)) for refund in refunds]
