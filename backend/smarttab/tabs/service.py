"""Tabs: the bill, how it is split and how each part is paid through pgw (docs/smarttab.md).

Every change claims the tab's next version with ``UPDATE ... WHERE version = :expected`` (the
client's ``If-Match``), records a store event in the same transaction and reprices the tab.
Services never commit, with one exception written down here: paying and refunding call pgw
between two transactions. The first (its own session, committed before the call) marks the
part ``processing`` with the attempt's Idempotency-Key; the second (the request's session)
applies pgw's answer under the tab's row lock. A crash in between leaves a ``processing`` part
whose key is known, so a retry or a refresh finds out what happened and nothing is charged twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.authz import Permission, Principal, TenantScope
from backend.core.database import commit_and_run_effects
from backend.core.errors import Conflict, Forbidden, NotFound, Problem, Unprocessable
from backend.core.ids import uuid7
from backend.core.models import utcnow
from backend.smarttab.events.service import record_event
from backend.smarttab.models import Tab, TabItem, TabPart, TabPaymentAttempt, TabRefund
from backend.smarttab.tabs import pricing
from backend.smarttab.tabs.pgw_client import (
    GatewayError,
    GatewayPayment,
    GatewayRefund,
    GatewayRefused,
    GatewayUnavailable,
    PgwClient,
)
from backend.smarttab.tabs.repository import (
    TabItemRepository,
    TabPartRepository,
    TabPaymentAttemptRepository,
    TabRefundRepository,
    TabRepository,
)
from backend.smarttab.tabs.schemas import (
    AmountsSplit,
    DiscountIn,
    EqualSplit,
    FullSplit,
    ItemAdd,
    ItemsSplit,
    ItemUpdate,
    Outcome,
    PayIn,
    RefundIn,
    TabOpen,
    TabUpdate,
)

logger = logging.getLogger(__name__)

MAX_ITEMS = 200
# An attempt pgw has no record of this long after it started was never received: smarttab gave
# up waiting after the provider timeout + 10 s, and pgw commits a payment before calling out.
ABANDONED_AFTER = dt.timedelta(minutes=2)
PAID_PART = frozenset({"paid", "partially_refunded", "refunded"})
CLOSED_TAB = frozenset({"paid", "cancelled", "partially_refunded", "refunded"})
# pgw payment statuses, by what they mean for a part.
CAPTURED = frozenset({"captured", "partially_refunded", "refunded"})
UNSUCCESSFUL = frozenset({"declined", "failed", "expired", "canceled", "voided"})
# The pgw codes that say "the same key is already being (or was) used": no outcome to apply.
KEY_IN_PROGRESS = "idempotency_request_in_progress"
KEY_REUSED = "idempotency_key_reused"


# --- problems --------------------------------------------------------------------------------


class TabNotFound(NotFound):
    code = "tab_not_found"


class PreconditionRequired(Problem):
    status, code, title = 428, "precondition_required", "Precondition required"


class VersionConflict(Problem):
    status, code, title = 412, "version_conflict", "Precondition failed"

    def __init__(self, current_version: int) -> None:
        super().__init__(
            f"The tab changed meanwhile; it is at version {current_version}. Re-read it and "
            "retry with its ETag.",
            headers={"ETag": f'"{current_version}"'},
            current_version=current_version,
        )


def _state_conflict(tab: Tab, action: str) -> Conflict:
    return Conflict(
        f"A {tab.status} tab cannot {action}.",
        code="tab_state_conflict",
        current_status=tab.status,
    )


# --- state -----------------------------------------------------------------------------------


@dataclass
class TabsContext:
    """What a tab operation reaches besides the request's session."""

    session: AsyncSession
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    pgw: PgwClient


@dataclass(frozen=True)
class Actor:
    """Who made a change: the authenticated caller and, if given, the cashier at the terminal."""

    principal: Principal
    cashier_id: str | None

    @classmethod
    def of(cls, principal: Principal, cashier_id: str | None) -> Actor:
        if cashier_id is None and principal.kind == "user":
            cashier_id = str(principal.subject_id)
        return cls(principal, cashier_id)

    @property
    def label(self) -> str:
        return f"{self.principal.kind}:{self.principal.subject_id}"


@dataclass
class TabState:
    tab: Tab
    items: list[TabItem]
    parts: list[TabPart]  # of the current split; empty without one
    attempts: dict[uuid.UUID, TabPaymentAttempt]  # each part's latest attempt, by part id
    refunds: list[TabRefund]
    bill: pricing.Bill

    def part(self, number: int) -> TabPart | None:
        return next((part for part in self.parts if part.number == number), None)

    @property
    def amount_due(self) -> int:
        if self.tab.status in CLOSED_TAB:
            return 0
        return self.tab.total - sum(part.amount for part in self.parts if part.status in PAID_PART)


def tab_scope(tab: Tab) -> TenantScope:
    return TenantScope(psp_id=tab.psp_id, merchant_id=tab.merchant_id, store_id=tab.store_id)


def adjustment(kind: str | None, value: int | None) -> pricing.Adjustment | None:
    if kind is None or value is None:
        return None
    return pricing.Adjustment(pricing.AdjustmentKind(kind), value)


def _discount_columns(discount: DiscountIn | None) -> tuple[str | None, int | None]:
    if discount is None:
        return None, None
    if discount.kind == "percentage":
        assert discount.percent is not None
        return "percentage", _basis_points(discount.percent)
    return "fixed", discount.amount


def _basis_points(percent: Decimal) -> int:
    return int(percent * 100)


def price_tab(tab: Tab, items: Sequence[TabItem]) -> pricing.Bill:
    lines = [
        pricing.Line(
            key=str(item.id),
            quantity=item.quantity,
            unit_price=item.unit_price,
            tax_category=pricing.TaxCategory(item.tax_category),
            discount=adjustment(item.discount_kind, item.discount_value),
        )
        for item in items
    ]
    return pricing.price(
        lines,
        currency=tab.currency,
        discount=adjustment(tab.discount_kind, tab.discount_value),
        service_charge_bp=tab.service_charge_bp,
        tip=tab.tip_amount,
    )


def _store_totals(tab: Tab, bill: pricing.Bill) -> None:
    if bill.total > pricing.MAX_AMOUNT:
        raise Unprocessable(
            f"The tab's total would exceed {pricing.MAX_AMOUNT} minor units.",
            code="tab_total_too_large",
        )
    tab.subtotal = bill.subtotal
    tab.discount_total = bill.discount_total
    tab.service_charge = bill.service_charge
    tab.tax_total = bill.tax_total
    tab.total = bill.total


def derive_status(tab: Tab, parts: Sequence[TabPart]) -> None:
    """A tab is ``paying`` while a part's payment is unsettled, ``paid`` once every part is."""
    if tab.status == "cancelled":
        return
    if any(part.status == "processing" for part in parts):
        tab.status = "paying"
    elif parts and all(part.status in PAID_PART for part in parts):
        if tab.amount_refunded == 0:
            tab.status = "paid"
        elif tab.amount_refunded >= tab.amount_paid:
            tab.status = "refunded"
        else:
            tab.status = "partially_refunded"
        if tab.closed_at is None:
            tab.closed_at = utcnow()
    else:
        tab.status = "open"


def _totals(tab: Tab) -> dict[str, Any]:
    return {
        "currency": tab.currency,
        "subtotal": tab.subtotal,
        "discount_total": tab.discount_total,
        "service_charge": tab.service_charge,
        "tax_total": tab.tax_total,
        "tip": tab.tip_amount,
        "total": tab.total,
        "amount_paid": tab.amount_paid,
        "amount_refunded": tab.amount_refunded,
    }


@dataclass
class _Events:
    """The store events one transaction records, in order, once the tab's version is final."""

    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add(self, event_type: str, **data: Any) -> None:
        self.items.append((event_type, data))

    def __bool__(self) -> bool:
        return bool(self.items)


async def _record(
    session: AsyncSession, redis: Redis, state: TabState, actor: Actor, events: _Events
) -> None:
    tab = state.tab
    await session.flush()
    for event_type, extra in events.items:
        data = {
            "tab_id": str(tab.id),
            "version": tab.version,
            "status": tab.status,
            "totals": _totals(tab),
            "actor": actor.label,
            "cashier_id": actor.cashier_id,
            **extra,
        }
        await record_event(session, redis, tab_scope(tab), event_type, data)


# --- payments: what smarttab remembers between the two transactions --------------------------


@dataclass(frozen=True)
class AttemptTicket:
    tab_id: uuid.UUID
    part_id: uuid.UUID
    attempt_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    idempotency_key: str
    request: dict[str, Any]  # the pgw body without the card


@dataclass(frozen=True)
class GatewayAnswer:
    """pgw's answer to one payment attempt: a payment, a refusal, or nothing usable."""

    payment: GatewayPayment | None = None
    refused: GatewayRefused | None = None


@dataclass(frozen=True)
class RefundTicket:
    refund_id: uuid.UUID
    payment_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    idempotency_key: str
    amount: int
    reason: str | None


@dataclass(frozen=True)
class RefundAnswer:
    refund: GatewayRefund | None = None
    refused: GatewayRefused | None = None


@dataclass
class PayOutcome:
    state: TabState
    part: TabPart
    payment: GatewayPayment | None

    @property
    def outcome(self) -> Outcome:
        if self.part.status in PAID_PART:
            return "paid"
        if self.part.status == "processing":
            return "pending"
        return "failed"


def attempt_reference(tab_id: uuid.UUID, generation: int, number: int, attempt: int) -> str:
    """The pgw ``reference`` of one attempt; its Idempotency-Key is ``smarttab:`` + this.

    Tab, split generation, part number and attempt number: retrying the same attempt (its
    outcome unknown) reuses the key, a new attempt after a decline or failure gets a new one.
    """
    return f"tab:{tab_id}:split:{generation}:part:{number}:attempt:{attempt}"


class TabService:
    # --- reads -------------------------------------------------------------------------------

    async def load(
        self,
        session: AsyncSession,
        scope: TenantScope,
        tab_id: uuid.UUID,
        *,
        for_update: bool = False,
    ) -> TabState:
        tab = await TabRepository(session, scope).get(tab_id, for_update=for_update)
        if tab is None:
            raise TabNotFound(f"Tab {tab_id} does not exist.")
        return await self._children(session, scope, tab)

    async def _children(self, session: AsyncSession, scope: TenantScope, tab: Tab) -> TabState:
        items = list(await TabItemRepository(session, scope).for_tab(tab.id))
        parts: list[TabPart] = []
        if tab.split_mode is not None:
            parts = list(
                await TabPartRepository(session, scope).for_generation(tab.id, tab.split_generation)
            )
        attempts = await TabPaymentAttemptRepository(session, scope).latest_for(parts)
        numbers = {part.id: part.number for part in parts}
        refunds = sorted(
            await TabRefundRepository(session, scope).for_tab(tab.id),
            key=lambda refund: (refund.created_at, numbers.get(refund.part_id, 0)),
        )
        return TabState(tab, items, parts, attempts, refunds, price_tab(tab, items))

    async def search(
        self, session: AsyncSession, principal: Principal, **filters: Any
    ) -> tuple[Sequence[Tab], uuid.UUID | None]:
        return await TabRepository(session, principal.scope).search(**filters)

    # --- the common shape of a change --------------------------------------------------------

    async def _claim(
        self, session: AsyncSession, principal: Principal, tab_id: uuid.UUID, expected: int
    ) -> TabState:
        """Load the tab and claim its next version; 412 if ``expected`` is not current."""
        repository = TabRepository(session, principal.scope)
        tab = await repository.get(tab_id)
        if tab is None:
            raise TabNotFound(f"Tab {tab_id} does not exist.")
        if tab.version != expected:
            raise VersionConflict(tab.version)
        if await repository.claim_version(tab.id, expected) is None:
            current = await repository.current_version(tab.id)
            raise VersionConflict(current if current is not None else tab.version)
        # The row is ours until commit: what we read now is what the claimed version saw.
        await session.refresh(tab)
        return await self._children(session, principal.scope, tab)

    @staticmethod
    def _require_editable(state: TabState) -> None:
        """The bill may change while the tab is open and no money has moved on it."""
        if state.tab.status != "open":
            raise _state_conflict(state.tab, "change its bill")
        if any(part.status not in ("unpaid", "failed") for part in state.parts):
            raise Conflict(
                "Payment has started on this tab; its bill can no longer change.",
                code="tab_locked",
            )

    @staticmethod
    def _clear_split(state: TabState) -> bool:
        """A change to the bill voids a split no money moved on (its parts stay as history)."""
        if state.tab.split_mode is None:
            return False
        state.tab.split_mode = None
        state.parts = []
        state.attempts = {}
        return True

    async def _reprice(self, state: TabState) -> None:
        state.bill = price_tab(state.tab, state.items)
        _store_totals(state.tab, state.bill)

    # --- tab lifecycle -----------------------------------------------------------------------

    async def open(
        self, session: AsyncSession, redis: Redis, principal: Principal, body: TabOpen
    ) -> TabState:
        scope = principal.scope
        if scope.store_id is None or scope.merchant_id is None:
            raise Forbidden(
                "Tabs are opened at a store, by its terminals or its staff.",
                code="store_scope_required",
            )
        actor = Actor.of(principal, body.cashier_id)
        tab = Tab(
            id=uuid7(),
            psp_id=scope.psp_id,
            merchant_id=scope.merchant_id,
            store_id=scope.store_id,
            status="open",
            version=1,
            label=body.label,
            table_label=body.table,
            cashier_id=actor.cashier_id,
            opened_by=actor.label,
            currency=body.currency,
            service_charge_bp=(
                _basis_points(body.service_charge_percent) if body.service_charge_percent else None
            ),
            tip_amount=0,
            subtotal=0,
            discount_total=0,
            service_charge=0,
            tax_total=0,
            total=0,
            amount_paid=0,
            amount_refunded=0,
            split_generation=0,
            next_position=1,
        )
        await TabRepository(session, scope).add(tab)
        await session.refresh(tab)
        state = TabState(tab, [], [], {}, [], price_tab(tab, []))
        events = _Events()
        events.add("tab.opened", label=tab.label, table=tab.table_label)
        await _record(session, redis, state, actor, events)
        return state

    async def update(
        self,
        session: AsyncSession,
        redis: Redis,
        principal: Principal,
        tab_id: uuid.UUID,
        expected: int,
        body: TabUpdate,
    ) -> TabState:
        changes = body.model_fields_set - {"cashier_id"}
        if not changes:
            raise Unprocessable("Send at least one field to change.", code="empty_update")
        state = await self._claim(session, principal, tab_id, expected)
        tab = state.tab
        if tab.status in CLOSED_TAB:
            raise _state_conflict(tab, "change")
        split_cleared = False
        if changes & {"discount", "service_charge_percent", "tip_amount"}:
            self._require_editable(state)
            if "discount" in changes:
                tab.discount_kind, tab.discount_value = _discount_columns(body.discount)
            if "service_charge_percent" in changes:
                percent = body.service_charge_percent
                tab.service_charge_bp = _basis_points(percent) if percent else None
            if "tip_amount" in changes:
                tab.tip_amount = body.tip_amount or 0
            split_cleared = self._clear_split(state)
            await self._reprice(state)
        if "label" in changes:
            tab.label = body.label
        if "table" in changes:
            tab.table_label = body.table
        events = _Events()
        events.add("tab.updated", changed=sorted(changes), split_cleared=split_cleared)
        await _record(session, redis, state, Actor.of(principal, body.cashier_id), events)
        return state

    async def cancel(
        self,
        session: AsyncSession,
        redis: Redis,
        principal: Principal,
        tab_id: uuid.UUID,
        expected: int,
        cashier_id: str | None,
        reason: str | None,
    ) -> TabState:
        state = await self._claim(session, principal, tab_id, expected)
        if state.tab.status != "open":
            raise _state_conflict(state.tab, "be cancelled")
        if any(part.status in PAID_PART or part.status == "processing" for part in state.parts):
            raise Conflict(
                "Money was taken on this tab: refund it instead of cancelling.", code="tab_locked"
            )
        state.tab.status = "cancelled"
        state.tab.closed_at = utcnow()
        events = _Events()
        events.add("tab.cancelled", reason=reason)
        await _record(session, redis, state, Actor.of(principal, cashier_id), events)
        return state

    # --- items -------------------------------------------------------------------------------

    async def add_item(
        self,
        session: AsyncSession,
        redis: Redis,
        principal: Principal,
        tab_id: uuid.UUID,
        expected: int,
        body: ItemAdd,
    ) -> tuple[TabState, TabItem]:
        state = await self._claim(session, principal, tab_id, expected)
        self._require_editable(state)
        if len(state.items) >= MAX_ITEMS:
            raise Conflict(f"A tab holds at most {MAX_ITEMS} items.", code="tab_item_limit")
        tab = state.tab
        discount_kind, discount_value = _discount_columns(body.discount)
        item = TabItem(
            id=uuid7(),
            tab_id=tab.id,
            psp_id=tab.psp_id,
            merchant_id=tab.merchant_id,
            store_id=tab.store_id,
            position=tab.next_position,
            name=body.name,
            sku=body.sku,
            quantity=body.quantity,
            unit_price=body.unit_price,
            tax_category=body.tax_category,
            discount_kind=discount_kind,
            discount_value=discount_value,
        )
        tab.next_position += 1
        await TabItemRepository(session, principal.scope).add(item)
        state.items.append(item)
        split_cleared = self._clear_split(state)
        await self._reprice(state)
        events = _Events()
        events.add("tab.item_added", item=_item_event(item), split_cleared=split_cleared)
        await _record(session, redis, state, Actor.of(principal, body.cashier_id), events)
        return state, item

    def _item(self, state: TabState, item_id: uuid.UUID) -> TabItem:
        item = next((item for item in state.items if item.id == item_id), None)
        if item is None:
            raise NotFound(f"Item {item_id} is not on this tab.", code="item_not_found")
        return item

    async def update_item(
        self,
        session: AsyncSession,
        redis: Redis,
        principal: Principal,
        tab_id: uuid.UUID,
        item_id: uuid.UUID,
        expected: int,
        body: ItemUpdate,
    ) -> TabState:
        changes = body.model_fields_set - {"cashier_id"}
        if not changes:
            raise Unprocessable("Send at least one field to change.", code="empty_update")
        for required in ("name", "quantity", "unit_price", "tax_category"):
            if required in changes and getattr(body, required) is None:
                raise Unprocessable(f"{required} cannot be null.", code="validation_failed")
        state = await self._claim(session, principal, tab_id, expected)
        item = self._item(state, item_id)
        self._require_editable(state)
        if body.name is not None:
            item.name = body.name
        if "sku" in changes:
            item.sku = body.sku
        if body.quantity is not None:
            item.quantity = body.quantity
        if body.unit_price is not None:
            item.unit_price = body.unit_price
        if body.tax_category is not None:
            item.tax_category = body.tax_category
        if "discount" in changes:
            item.discount_kind, item.discount_value = _discount_columns(body.discount)
        split_cleared = self._clear_split(state)
        await self._reprice(state)
        events = _Events()
        events.add(
            "tab.item_updated",
            item=_item_event(item),
            changed=sorted(changes),
            split_cleared=split_cleared,
        )
        await _record(session, redis, state, Actor.of(principal, body.cashier_id), events)
        return state

    async def remove_item(
        self,
        session: AsyncSession,
        redis: Redis,
        principal: Principal,
        tab_id: uuid.UUID,
        item_id: uuid.UUID,
        expected: int,
        cashier_id: str | None,
    ) -> TabState:
        state = await self._claim(session, principal, tab_id, expected)
        item = self._item(state, item_id)
        self._require_editable(state)
        removed = _item_event(item)
        await TabItemRepository(session, principal.scope).remove(item)
        state.items = [other for other in state.items if other.id != item_id]
        split_cleared = self._clear_split(state)
        await self._reprice(state)
        events = _Events()
        events.add("tab.item_removed", item=removed, split_cleared=split_cleared)
        await _record(session, redis, state, Actor.of(principal, cashier_id), events)
        return state

    # --- splitting ---------------------------------------------------------------------------

    async def split(
        self,
        session: AsyncSession,
        redis: Redis,
        principal: Principal,
        tab_id: uuid.UUID,
        expected: int,
        body: FullSplit | EqualSplit | AmountsSplit | ItemsSplit,
    ) -> TabState:
        state = await self._claim(session, principal, tab_id, expected)
        tab = state.tab
        self._require_editable(state)
        bill = state.bill
        if bill.amount_before_tip <= 0:
            raise Conflict("The tab has nothing to pay.", code="nothing_to_pay")
        item_ids: list[list[str]] | None = None
        if isinstance(body, FullSplit):
            shares = pricing.split_full(bill)
        elif isinstance(body, EqualSplit):
            shares = pricing.split_equal(bill, body.count)
        elif isinstance(body, AmountsSplit):
            if sum(body.amounts) != bill.total:
                raise Unprocessable(
                    f"The amounts sum to {sum(body.amounts)}, the tab's total is {bill.total}.",
                    code="split_amounts_mismatch",
                    total=bill.total,
                )
            shares = pricing.split_amounts(bill, body.amounts)
        else:
            item_ids = self._check_item_groups(state, body.parts)
            shares = pricing.split_items(bill, item_ids)
        for number, share in enumerate(shares, start=1):
            if share.amount_before_tip <= 0:
                raise Unprocessable(
                    f"Part {number} would pay nothing but tip; use fewer parts.",
                    code="split_part_too_small",
                    part_number=number,
                )
        tab.split_generation += 1
        tab.split_mode = body.mode
        parts = []
        for number, share in enumerate(shares, start=1):
            breakdown: dict[str, Any] = {}
            if share.net is not None:
                breakdown = {
                    "net": share.net,
                    "service_charge": share.service_charge,
                    "taxes": share.taxes,
                    "tax": share.tax,
                }
            parts.append(
                TabPart(
                    id=uuid7(),
                    tab_id=tab.id,
                    psp_id=tab.psp_id,
                    merchant_id=tab.merchant_id,
                    store_id=tab.store_id,
                    generation=tab.split_generation,
                    number=number,
                    status="unpaid",
                    amount=share.amount,
                    tip_share=share.tip_share,
                    item_ids=item_ids[number - 1] if item_ids is not None else None,
                    breakdown=breakdown,
                    attempts=0,
                    amount_captured=0,
                    amount_refunded=0,
                )
            )
        session.add_all(parts)
        state.parts = parts
        state.attempts = {}
        events = _Events()
        events.add(
            "tab.split",
            mode=body.mode,
            generation=tab.split_generation,
            parts=[{"number": part.number, "amount": part.amount} for part in parts],
        )
        await _record(session, redis, state, Actor.of(principal, body.cashier_id), events)
        return state

    @staticmethod
    def _check_item_groups(state: TabState, groups: list[list[uuid.UUID]]) -> list[list[str]]:
        on_tab = {item.id for item in state.items}
        seen: set[uuid.UUID] = set()
        repeated: set[uuid.UUID] = set()
        for group in groups:
            for item_id in group:
                (repeated if item_id in seen else seen).add(item_id)
        unknown = seen - on_tab
        missing = on_tab - seen
        empty = [number for number, group in enumerate(groups, start=1) if not group]
        if unknown or missing or repeated or empty:
            raise Unprocessable(
                "Every item of the tab must be in exactly one part, and every part needs one.",
                code="split_items_mismatch",
                unknown=sorted(str(item_id) for item_id in unknown),
                missing=sorted(str(item_id) for item_id in missing),
                repeated=sorted(str(item_id) for item_id in repeated),
                empty_parts=empty,
            )
        return [[str(item_id) for item_id in group] for group in groups]

    # --- paying ------------------------------------------------------------------------------

    @staticmethod
    def _check_method(body: PayIn) -> None:
        if body.method == "card_present" and (body.card is None or body.entry_mode is None):
            raise Unprocessable(
                "A card-present payment needs the card read and its entry_mode.",
                code="card_required",
            )
        if body.method == "qr_wallet" and (body.card is not None or body.entry_mode is not None):
            raise Unprocessable("A QR wallet payment carries no card.", code="card_not_allowed")

    async def pay(
        self,
        ctx: TabsContext,
        principal: Principal,
        tab_id: uuid.UUID,
        number: int,
        expected: int,
        body: PayIn,
    ) -> PayOutcome:
        if not principal.can(Permission.PAYMENT_CREATE):
            raise Forbidden(
                f"Role {principal.role.value!r} lacks the 'payment:create' permission.",
                code="permission_denied",
                permission=Permission.PAYMENT_CREATE.value,
            )
        self._check_method(body)
        actor = Actor.of(principal, body.cashier_id)
        # Transaction 1, committed before pgw is called: the part is "processing" under a key.
        async with ctx.sessionmaker() as session:
            ticket = await self._begin_attempt(
                session, ctx.redis, principal, actor, tab_id, number, expected, body
            )
            await commit_and_run_effects(session)
        request = dict(ticket.request)
        if body.card is not None:
            request["card"] = body.card.model_dump(exclude_none=True)
        answer = GatewayAnswer()
        try:
            answer = GatewayAnswer(
                payment=await ctx.pgw.create_payment(
                    merchant_id=ticket.merchant_id,
                    store_id=ticket.store_id,
                    key=ticket.idempotency_key,
                    body=request,
                )
            )
        except GatewayUnavailable as exc:
            logger.warning("tab %s: payment outcome unknown (%s)", tab_id, exc)
        except GatewayRefused as exc:
            if exc.code == KEY_IN_PROGRESS:
                raise Conflict(
                    "This part's payment is still being processed; retry shortly.",
                    code="payment_in_progress",
                    headers={"Retry-After": "1"},
                ) from exc
            if exc.code == KEY_REUSED:
                raise Conflict(
                    "The outcome of this part's last attempt is unknown and it was made with "
                    "other payment details: retry with the same card, or refresh the tab.",
                    code="attempt_in_doubt",
                ) from exc
            answer = GatewayAnswer(refused=exc)
        # Transaction 2, the request's: apply pgw's answer under the tab's row lock.
        state = await self.load(ctx.session, principal.scope, tab_id, for_update=True)
        events = _Events()
        part = next((part for part in state.parts if part.id == ticket.part_id), None)
        if part is None:  # cannot happen: a split with a processing part is never replaced
            raise Conflict("The tab's split changed during the payment.", code="split_changed")
        attempt = state.attempts.get(part.id)
        if attempt is not None and attempt.id == ticket.attempt_id:
            self._settle_attempt(state, part, attempt, answer, events)
        await self._bump_and_record(ctx.session, ctx.redis, state, actor, events)
        return PayOutcome(state, part, answer.payment)

    async def _begin_attempt(
        self,
        session: AsyncSession,
        redis: Redis,
        principal: Principal,
        actor: Actor,
        tab_id: uuid.UUID,
        number: int,
        expected: int,
        body: PayIn,
    ) -> AttemptTicket:
        state = await self._claim(session, principal, tab_id, expected)
        tab = state.tab
        if tab.status not in ("open", "paying"):
            raise _state_conflict(tab, "take a payment")
        if tab.split_mode is None:
            raise Conflict(
                "Define how the tab is paid first (POST /v1/tabs/{id}/splits).",
                code="split_required",
            )
        part = state.part(number)
        if part is None:
            raise NotFound(f"The tab's split has no part {number}.", code="part_not_found")
        if part.status in PAID_PART:
            raise Conflict(f"Part {number} is already paid.", code="part_already_paid")
        events = _Events()
        attempt = state.attempts.get(part.id)
        if part.status == "processing" and attempt is not None:
            # Its outcome is unknown: retry the same attempt, under the same key.
            if (attempt.method, attempt.entry_mode, attempt.extra_tip) != (
                body.method,
                body.entry_mode,
                body.tip_amount,
            ):
                raise Conflict(
                    f"The outcome of attempt {attempt.number} of part {number} is not known "
                    "yet: retry it with the same method, entry mode and tip, or refresh the tab.",
                    code="attempt_in_doubt",
                    attempt=attempt.number,
                )
            attempt.updated_at = utcnow()  # sent again now: the abandonment clock restarts
            events.add(
                "tab.payment_started", part_number=number, attempt=attempt.number, retry=True
            )
        else:
            part.attempts += 1
            reference = attempt_reference(tab.id, tab.split_generation, number, part.attempts)
            attempt = TabPaymentAttempt(
                id=uuid7(),
                tab_id=tab.id,
                part_id=part.id,
                psp_id=tab.psp_id,
                merchant_id=tab.merchant_id,
                store_id=tab.store_id,
                number=part.attempts,
                idempotency_key=f"smarttab:{reference}",
                reference=reference,
                status="processing",
                method=body.method,
                entry_mode=body.entry_mode,
                amount=part.amount - part.tip_share,
                tip_amount=part.tip_share + body.tip_amount,
                extra_tip=body.tip_amount,
                cashier_id=actor.cashier_id,
                actor=actor.label,
            )
            session.add(attempt)
            state.attempts[part.id] = attempt
            part.status = "processing"
            events.add(
                "tab.payment_started",
                part_number=number,
                attempt=attempt.number,
                retry=False,
                amount=attempt.amount,
                tip_amount=attempt.tip_amount,
                method=attempt.method,
            )
        derive_status(tab, state.parts)
        await _record(session, redis, state, actor, events)
        return AttemptTicket(
            tab_id=tab.id,
            part_id=part.id,
            attempt_id=attempt.id,
            merchant_id=tab.merchant_id,
            store_id=tab.store_id,
            idempotency_key=attempt.idempotency_key,
            request=_payment_request(tab, part, attempt),
        )

    def _settle_attempt(
        self,
        state: TabState,
        part: TabPart,
        attempt: TabPaymentAttempt,
        answer: GatewayAnswer,
        events: _Events,
    ) -> None:
        """Apply pgw's answer to a part whose attempt is unsettled; no answer changes nothing."""
        if attempt.status not in ("processing", "requires_action"):
            return
        tab = state.tab
        payment, refused = answer.payment, answer.refused
        now = utcnow()
        if refused is not None:
            # pgw refused before creating a payment (a claimed key would have been replayed).
            attempt.status = "failed"
            attempt.failure_code = refused.code
            attempt.failure_message = refused.detail[:500]
            part.status = "failed"
            events.add(
                "tab.part_failed",
                part_number=part.number,
                attempt=attempt.number,
                failure_code=refused.code,
            )
        elif payment is None:
            return
        elif payment.status in CAPTURED:
            attempt.status = "captured"
            attempt.payment_id = payment.id
            part.status = "paid"
            part.payment_id = payment.id
            part.amount_captured = payment.amount_captured
            part.amount_refunded = payment.amount_refunded
            part.cashier_id = attempt.cashier_id
            part.paid_at = now
            if part.amount_refunded:
                part.status = (
                    "refunded"
                    if part.amount_refunded >= part.amount_captured
                    else "partially_refunded"
                )
            tab.amount_paid += payment.amount_captured
            tab.amount_refunded += payment.amount_refunded
            events.add(
                "tab.part_paid",
                part_number=part.number,
                attempt=attempt.number,
                payment_id=str(payment.id),
                amount_captured=payment.amount_captured,
                paid_by=attempt.cashier_id,
            )
        elif payment.status in UNSUCCESSFUL:
            attempt.status = payment.status if payment.status != "voided" else "failed"
            attempt.payment_id = payment.id
            attempt.failure_code = payment.failure_code or payment.status
            attempt.failure_message = (payment.failure_message or "")[:500] or None
            part.status = "failed"
            events.add(
                "tab.part_failed",
                part_number=part.number,
                attempt=attempt.number,
                payment_id=str(payment.id),
                failure_code=attempt.failure_code,
            )
        else:
            status = "requires_action" if payment.status == "requires_action" else "processing"
            if (attempt.status, attempt.payment_id, attempt.qr_payload) == (
                status,
                payment.id,
                payment.qr_payload,
            ):
                return
            attempt.status = status
            attempt.payment_id = payment.id
            attempt.qr_payload = payment.qr_payload
            events.add(
                "tab.payment_pending",
                part_number=part.number,
                attempt=attempt.number,
                payment_id=str(payment.id),
                payment_status=payment.status,
            )
        attempt.updated_at = now
        was = tab.status
        derive_status(tab, state.parts)
        if tab.status == "paid" and was != "paid":
            events.add("tab.paid", amount_paid=tab.amount_paid)

    async def _bump_and_record(
        self,
        session: AsyncSession,
        redis: Redis,
        state: TabState,
        actor: Actor,
        events: _Events,
    ) -> None:
        """A change applied under the row lock (not a client's intent): next version, events."""
        if not events:
            return
        state.tab.version += 1
        state.tab.updated_at = utcnow()
        await _record(session, redis, state, actor, events)

    # --- refresh: ask pgw what became of unsettled payments and refunds ----------------------

    async def refresh(
        self,
        ctx: TabsContext,
        principal: Principal,
        tab_id: uuid.UUID,
        expected: int,
        cashier_id: str | None,
    ) -> TabState:
        actor = Actor.of(principal, cashier_id)
        async with ctx.sessionmaker() as session:
            state = await self.load(session, principal.scope, tab_id)
            if state.tab.version != expected:
                raise VersionConflict(state.tab.version)
            tab = state.tab
            unsettled = [
                state.attempts[part.id]
                for part in state.parts
                if part.status == "processing" and part.id in state.attempts
            ]
            pending = [refund for refund in state.refunds if refund.status == "pending"]
            lookups = [
                (attempt.id, attempt.payment_id, attempt.reference, attempt.updated_at)
                for attempt in unsettled
            ]
            refund_tickets = [_refund_ticket(tab, refund) for refund in pending]
        answers: dict[uuid.UUID, GatewayAnswer] = {}
        for attempt_id, payment_id, reference, since in lookups:
            try:
                if payment_id is not None:
                    payment: GatewayPayment | None = await ctx.pgw.get_payment(
                        merchant_id=tab.merchant_id, store_id=tab.store_id, payment_id=payment_id
                    )
                else:
                    payment = await ctx.pgw.find_payment(
                        merchant_id=tab.merchant_id, store_id=tab.store_id, reference=reference
                    )
            except GatewayError as exc:
                logger.warning("tab %s: could not refresh attempt %s (%s)", tab_id, attempt_id, exc)
                continue
            if payment is not None:
                answers[attempt_id] = GatewayAnswer(payment=payment)
            elif utcnow() - since > ABANDONED_AFTER:
                # pgw never received it, and no request that old can still be running there.
                answers[attempt_id] = GatewayAnswer(
                    refused=GatewayRefused(
                        404, "payment_not_found", "pgw holds no payment for this attempt."
                    )
                )
        refund_answers = await self._send_refunds(ctx.pgw, refund_tickets)
        state = await self.load(ctx.session, principal.scope, tab_id, for_update=True)
        events = _Events()
        for part in state.parts:
            attempt = state.attempts.get(part.id)
            if attempt is not None and attempt.id in answers:
                self._settle_attempt(state, part, attempt, answers[attempt.id], events)
        self._settle_refunds(state, refund_answers, events)
        await self._bump_and_record(ctx.session, ctx.redis, state, actor, events)
        return state

    # --- refunds -----------------------------------------------------------------------------

    async def refund(
        self,
        ctx: TabsContext,
        principal: Principal,
        tab_id: uuid.UUID,
        expected: int,
        body: RefundIn,
    ) -> tuple[TabState, list[TabRefund]]:
        if not principal.can(Permission.PAYMENT_REFUND):
            raise Forbidden(
                f"Role {principal.role.value!r} lacks the 'payment:refund' permission.",
                code="permission_denied",
                permission=Permission.PAYMENT_REFUND.value,
            )
        if body.amount is not None and body.part_number is None:
            raise Unprocessable(
                "A partial amount is refunded from one part: name its part_number.",
                code="refund_part_required",
            )
        actor = Actor.of(principal, body.cashier_id)
        async with ctx.sessionmaker() as session:
            tickets = await self._begin_refund(
                session, ctx.redis, principal, actor, tab_id, expected, body
            )
            await commit_and_run_effects(session)
        answers = await self._send_refunds(ctx.pgw, tickets)
        state = await self.load(ctx.session, principal.scope, tab_id, for_update=True)
        events = _Events()
        self._settle_refunds(state, answers, events)
        await self._bump_and_record(ctx.session, ctx.redis, state, actor, events)
        wanted = {ticket.refund_id for ticket in tickets}
        return state, [refund for refund in state.refunds if refund.id in wanted]

    async def _begin_refund(
        self,
        session: AsyncSession,
        redis: Redis,
        principal: Principal,
        actor: Actor,
        tab_id: uuid.UUID,
        expected: int,
        body: RefundIn,
    ) -> list[RefundTicket]:
        state = await self._claim(session, principal, tab_id, expected)
        tab = state.tab
        if tab.status not in ("paid", "partially_refunded"):
            raise _state_conflict(tab, "be refunded")
        pending: dict[uuid.UUID, int] = {}
        for refund in state.refunds:
            if refund.status == "pending":
                pending[refund.part_id] = pending.get(refund.part_id, 0) + refund.amount

        def refundable(part: TabPart) -> int:
            return part.amount_captured - part.amount_refunded - pending.get(part.id, 0)

        if body.part_number is not None:
            part = state.part(body.part_number)
            if part is None:
                raise NotFound(
                    f"The tab's split has no part {body.part_number}.", code="part_not_found"
                )
            left = refundable(part)
            amount = body.amount if body.amount is not None else left
            if left <= 0:
                raise Conflict(
                    f"Part {part.number} has nothing left to refund.", code="nothing_to_refund"
                )
            if amount > left:
                raise Unprocessable(
                    f"Cannot refund {amount}: {left} is left of what part {part.number} paid.",
                    code="refund_exceeds_paid",
                    refundable=left,
                )
            targets = [(part, amount)]
        else:
            targets = [(part, refundable(part)) for part in state.parts if refundable(part) > 0]
            if not targets:
                raise Conflict("The tab has nothing left to refund.", code="nothing_to_refund")
        refunds = []
        for part, amount in targets:
            assert part.payment_id is not None
            refund_id = uuid7()
            refund = TabRefund(
                id=refund_id,
                tab_id=tab.id,
                part_id=part.id,
                psp_id=tab.psp_id,
                merchant_id=tab.merchant_id,
                store_id=tab.store_id,
                payment_id=part.payment_id,
                amount=amount,
                reason=body.reason,
                status="pending",
                idempotency_key=f"smarttab:tab:{tab.id}:refund:{refund_id}",
                cashier_id=actor.cashier_id,
                actor=actor.label,
            )
            refunds.append(refund)
        session.add_all(refunds)
        state.refunds.extend(refunds)
        events = _Events()
        numbers = {part.id: part.number for part in state.parts}
        events.add(
            "tab.refund_requested",
            refunds=[
                {
                    "refund_id": str(refund.id),
                    "part_number": numbers[refund.part_id],
                    "amount": refund.amount,
                }
                for refund in refunds
            ],
            reason=body.reason,
        )
        await _record(session, redis, state, actor, events)
        return [_refund_ticket(tab, refund) for refund in refunds]

    async def _send_refunds(
        self, pgw: PgwClient, tickets: Sequence[RefundTicket]
    ) -> dict[uuid.UUID, RefundAnswer]:
        answers: dict[uuid.UUID, RefundAnswer] = {}
        for ticket in tickets:
            try:
                answers[ticket.refund_id] = RefundAnswer(
                    refund=await pgw.refund(
                        merchant_id=ticket.merchant_id,
                        store_id=ticket.store_id,
                        payment_id=ticket.payment_id,
                        key=ticket.idempotency_key,
                        amount=ticket.amount,
                        reason=ticket.reason,
                    )
                )
            except GatewayUnavailable as exc:
                logger.warning("refund %s: outcome unknown (%s)", ticket.refund_id, exc)
            except GatewayRefused as exc:
                if exc.code in (KEY_IN_PROGRESS, KEY_REUSED):
                    continue
                answers[ticket.refund_id] = RefundAnswer(refused=exc)
        return answers

    def _settle_refunds(
        self, state: TabState, answers: dict[uuid.UUID, RefundAnswer], events: _Events
    ) -> None:
        tab = state.tab
        parts = {part.id: part for part in state.parts}
        refunded, failed = [], []
        for refund in state.refunds:
            answer = answers.get(refund.id)
            if refund.status != "pending" or answer is None:
                continue
            part = parts.get(refund.part_id)
            refund.updated_at = utcnow()
            if answer.refund is not None and answer.refund.status == "succeeded" and part:
                refund.status = "succeeded"
                refund.pgw_refund_id = answer.refund.id
                part.amount_refunded += refund.amount
                part.status = (
                    "refunded"
                    if part.amount_refunded >= part.amount_captured
                    else "partially_refunded"
                )
                tab.amount_refunded += refund.amount
                refunded.append({"part_number": part.number, "amount": refund.amount})
            else:
                refund.status = "failed"
                refund.failure_code = (
                    answer.refused.code if answer.refused is not None else "refund_failed"
                )
                failed.append(
                    {
                        "part_number": part.number if part else None,
                        "amount": refund.amount,
                        "failure_code": refund.failure_code,
                    }
                )
        if not refunded and not failed:
            return
        derive_status(tab, state.parts)
        if refunded:
            events.add("tab.refunded", refunds=refunded)
        if failed:
            events.add("tab.refund_failed", refunds=failed)


def _item_event(item: TabItem) -> dict[str, Any]:
    return {
        "id": str(item.id),
        "name": item.name,
        "quantity": item.quantity,
        "unit_price": item.unit_price,
        "tax_category": item.tax_category,
    }


def _payment_request(tab: Tab, part: TabPart, attempt: TabPaymentAttempt) -> dict[str, Any]:
    """The pgw body of an attempt, from what was stored: a retry sends the same bytes."""
    request: dict[str, Any] = {
        "amount": attempt.amount,
        "currency": tab.currency,
        "tip_amount": attempt.tip_amount,
        "method": attempt.method,
        "reference": attempt.reference,
        "metadata": {
            "tab_id": str(tab.id),
            "part_number": str(part.number),
            "attempt": str(attempt.number),
        },
    }
    if attempt.entry_mode is not None:
        request["entry_mode"] = attempt.entry_mode
    if attempt.cashier_id is not None:
        request["cashier_id"] = attempt.cashier_id
    return request


def _refund_ticket(tab: Tab, refund: TabRefund) -> RefundTicket:
    return RefundTicket(
        refund_id=refund.id,
        payment_id=refund.payment_id,
        merchant_id=tab.merchant_id,
        store_id=tab.store_id,
        idempotency_key=refund.idempotency_key,
        amount=refund.amount,
        reason=refund.reason,
    )


tab_service = TabService()
