"""End-of-day settlement (Z-report): close a terminal or a store into an immutable batch.

Rules (docs/settlement.md says them for merchants and integrators):

- A batch takes every payment of its terminal (or store) that is settled (captured,
  partially_refunded, refunded) and not yet in a batch, and every succeeded refund not yet in a
  batch; the rows are stamped with the batch id in the close's own transaction, so each lands
  in exactly one batch. A store close takes what terminal closes have not taken, including
  payments made without a terminal.
- Refunds are netted on the day they happen: a refund goes into the batch closed after it,
  whichever batch its payment went into.
- ``period_start`` is the previous batch's ``period_end`` for the same terminal (or store),
  null for the first; ``period_end`` is when the close ran. Membership is decided by what was
  committed when the close ran, not by timestamps.
- Closing with nothing new makes an empty batch (the Z-report of a quiet day); the same
  Idempotency-Key replays the first answer instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.authz import Principal
from backend.core.errors import Forbidden, NotFound, Unprocessable
from backend.core.ids import uuid7
from backend.core.models import utcnow
from backend.pgw.models import SettlementBatch
from backend.pgw.payments.service import actor_of
from backend.pgw.settlement.repository import ClosedPayment, ClosedRefund, SettlementRepository
from backend.pgw.settlement.schemas import CloseTarget, SettlementClose

# Breakdown key for a payment without the attribute (a QR wallet payment has no card brand).
NONE_KEY = "none"
BREAKDOWNS = ("by_method", "by_card_brand", "by_entry_mode")


def resolve_target(principal: Principal, body: SettlementClose) -> CloseTarget:
    """Which terminal or store the caller means, from its token and the body (no I/O)."""
    own_store = principal.scope.store_id
    if own_store is not None and body.store_id not in (None, own_store):
        raise Unprocessable("store_id differs from the caller's store.", code="store_mismatch")
    if principal.kind == "device":
        scope = body.scope or "terminal"
        if scope == "terminal":
            if body.terminal_id not in (None, principal.terminal_id):
                raise Forbidden(
                    "A terminal closes only itself; close another terminal from the portal.",
                    code="terminal_mismatch",
                )
            return CloseTarget(
                scope="terminal", store_id=own_store, terminal_id=principal.terminal_id
            )
    else:
        scope = body.scope or ("terminal" if body.terminal_id is not None else "store")
    store_id = body.store_id or own_store
    if scope == "terminal":
        if body.terminal_id is None:
            raise Unprocessable(
                "Say which terminal to close (terminal_id).", code="terminal_required"
            )
        return CloseTarget(scope="terminal", store_id=store_id, terminal_id=body.terminal_id)
    if body.terminal_id is not None:
        raise Unprocessable(
            "A store close takes every terminal of the store: leave terminal_id out.",
            code="terminal_not_allowed",
        )
    if store_id is None:
        raise Unprocessable("Say which store to close (store_id).", code="store_required")
    return CloseTarget(scope="store", store_id=store_id, terminal_id=None)


def _entry(bucket: dict[str, dict[str, int]], key: str | None) -> dict[str, int]:
    return bucket.setdefault(
        key or NONE_KEY,
        {"count": 0, "amount": 0, "refund_count": 0, "refund_amount": 0, "net": 0},
    )


def compute_totals(
    payments: Iterable[ClosedPayment], refunds: Iterable[ClosedRefund]
) -> dict[str, Any]:
    """The batch's totals per currency, in integer minor units (shape: docs/settlement.md)."""
    totals: dict[str, dict[str, Any]] = {}

    def currency(code: str) -> dict[str, Any]:
        return totals.setdefault(
            code,
            {
                "payment_count": 0,
                "refund_count": 0,
                "gross": 0,
                "tips": 0,
                "refunds": 0,
                "net": 0,
                **{name: {} for name in BREAKDOWNS},
            },
        )

    for payment in payments:
        line = currency(payment.currency)
        line["payment_count"] += 1
        line["gross"] += payment.amount_captured
        line["tips"] += payment.tip_amount
        keys: tuple[str | None, ...] = (payment.method, payment.card_brand, payment.entry_mode)
        for name, key in zip(BREAKDOWNS, keys, strict=True):
            entry = _entry(line[name], key)
            entry["count"] += 1
            entry["amount"] += payment.amount_captured
    for refund in refunds:
        line = currency(refund.currency)
        line["refund_count"] += 1
        line["refunds"] += refund.amount
        keys = (refund.method, refund.card_brand, refund.entry_mode)
        for name, key in zip(BREAKDOWNS, keys, strict=True):
            entry = _entry(line[name], key)
            entry["refund_count"] += 1
            entry["refund_amount"] += refund.amount
    for line in totals.values():
        line["net"] = line["gross"] - line["refunds"]
        for name in BREAKDOWNS:
            for entry in line[name].values():
                entry["net"] = entry["amount"] - entry["refund_amount"]
            line[name] = dict(sorted(line[name].items()))
    return dict(sorted(totals.items()))


class SettlementService:
    async def close(
        self, session: AsyncSession, principal: Principal, target: CloseTarget
    ) -> SettlementBatch:
        repository = SettlementRepository(session, principal.scope)
        if target.terminal_id is not None:
            terminal = await repository.terminal(target.terminal_id)
            if terminal is None:
                raise NotFound(
                    f"Terminal {target.terminal_id} is not known to the gateway.",
                    code="terminal_not_found",
                )
            if target.store_id not in (None, terminal.store_id):
                raise Unprocessable("The terminal belongs to another store.", code="store_mismatch")
            psp_id, merchant_id, store_id = terminal.psp_id, terminal.merchant_id, terminal.store_id
        else:
            assert target.store_id is not None
            store = await repository.store(target.store_id)
            if store is None:
                raise NotFound(
                    f"Store {target.store_id} is not known to the gateway.",
                    code="store_not_found",
                )
            psp_id, merchant_id, store_id = store.psp_id, store.merchant_id, store.id

        await repository.lock_store(store_id)
        previous = await repository.previous(target.scope, store_id, target.terminal_id)
        batch_id = uuid7()
        payments = await repository.claim_payments(
            batch_id, merchant_id=merchant_id, store_id=store_id, terminal_id=target.terminal_id
        )
        refunds = await repository.claim_refunds(
            batch_id, merchant_id=merchant_id, store_id=store_id, terminal_id=target.terminal_id
        )
        closed_at = utcnow()
        batch = SettlementBatch(
            id=batch_id,
            psp_id=psp_id,
            merchant_id=merchant_id,
            store_id=store_id,
            terminal_id=target.terminal_id,
            scope=target.scope,
            period_start=previous.period_end if previous is not None else None,
            period_end=closed_at,
            closed_at=closed_at,
            closed_by=actor_of(principal),
            payment_count=len(payments),
            refund_count=len(refunds),
            totals=compute_totals(payments, refunds),
        )
        return await repository.add(batch)

    async def get(
        self, session: AsyncSession, principal: Principal, batch_id: uuid.UUID
    ) -> SettlementBatch:
        batch = await SettlementRepository(session, principal.scope).get(batch_id)
        if batch is None:
            raise NotFound(
                f"Settlement batch {batch_id} does not exist.", code="settlement_not_found"
            )
        return batch

    async def search(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        store_id: uuid.UUID | None,
        terminal_id: uuid.UUID | None,
        scope: str | None,
        before: uuid.UUID | None,
        limit: int,
    ) -> tuple[Sequence[SettlementBatch], uuid.UUID | None]:
        return await SettlementRepository(session, principal.scope).search(
            store_id=store_id, terminal_id=terminal_id, scope=scope, before=before, limit=limit
        )


settlement_service = SettlementService()
