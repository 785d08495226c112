from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response

from backend.core.auth import require
from backend.core.authz import Permission, Principal
from backend.core.database import SessionDep
from backend.core.errors import BadRequest, problem_response_doc
from backend.smarttab.models import TabPart, TabPaymentAttempt
from backend.smarttab.tabs.schemas import (
    MAX_PARTS,
    AttemptRead,
    CancelIn,
    CashierId,
    DiscountRead,
    ItemAdd,
    ItemRead,
    ItemUpdate,
    PartRead,
    PayIn,
    PaymentSummary,
    PayResult,
    RefreshIn,
    RefundIn,
    RefundRead,
    RefundResult,
    SplitIn,
    SplitRead,
    TabOpen,
    TabPage,
    TabRead,
    TabStatusName,
    TabSummary,
    TabUpdate,
    TaxRead,
    TotalsRead,
)
from backend.smarttab.tabs.service import (
    PreconditionRequired,
    TabsContext,
    TabState,
    tab_service,
)

router = APIRouter(prefix="/v1/tabs", tags=["tabs"])

CanRead = Annotated[Principal, Depends(require(Permission.TAB_READ))]
CanWrite = Annotated[Principal, Depends(require(Permission.TAB_WRITE))]
TabId = Annotated[uuid.UUID, Path(description="The tab's id")]
PartNumber = Annotated[int, Path(ge=1, le=MAX_PARTS, description="The part's number (from 1)")]
IfMatch = Annotated[
    str | None,
    Header(description='The tab\'s ETag as last read, e.g. "3": required on every change'),
]

_ETAG = re.compile(r'"([0-9]{1,9})"|([0-9]{1,9})')
_IF_MATCH_DOC: dict[int | str, dict[str, Any]] = {
    412: problem_response_doc("version_conflict: the tab changed since the ETag sent"),
    428: problem_response_doc("precondition_required: no If-Match"),
}


def expected_version(if_match: str | None) -> int:
    """The version the client last saw, from ``If-Match: "<version>"``."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequired(
            "Changing a tab needs If-Match with the ETag of the version you last read, so "
            "that two terminals cannot overwrite each other's changes."
        )
    value = if_match.strip()
    if value == "*":
        raise PreconditionRequired(
            "If-Match: * does not say which version you read; send the tab's ETag."
        )
    match = _ETAG.fullmatch(value)
    if match is None:
        raise BadRequest(
            'If-Match must be the tab\'s ETag, for example "3".', code="invalid_if_match"
        )
    return int(match.group(1) or match.group(2))


def tabs_context(request: Request, session: SessionDep) -> TabsContext:
    state = request.app.state
    return TabsContext(
        session=session, sessionmaker=state.sessionmaker, redis=state.redis, pgw=state.pgw_client
    )


ContextDep = Annotated[TabsContext, Depends(tabs_context)]


# --- shaping ---------------------------------------------------------------------------------


def _discount(kind: str | None, value: int | None) -> DiscountRead | None:
    if kind is None or value is None:
        return None
    if kind == "percentage":
        return DiscountRead(kind=kind, percent=value / 100)
    return DiscountRead(kind=kind, amount=value)


def attempt_read(attempt: TabPaymentAttempt | None) -> AttemptRead | None:
    if attempt is None:
        return None
    return AttemptRead(
        number=attempt.number,
        status=attempt.status,
        method=attempt.method,
        amount=attempt.amount,
        tip_amount=attempt.tip_amount,
        payment_id=attempt.payment_id,
        failure_code=attempt.failure_code,
        failure_message=attempt.failure_message,
        qr_payload=attempt.qr_payload,
        cashier_id=attempt.cashier_id,
        created_at=attempt.created_at,
    )


def part_read(part: TabPart, attempt: TabPaymentAttempt | None) -> PartRead:
    return PartRead(
        number=part.number,
        status=part.status,
        amount=part.amount,
        tip_share=part.tip_share,
        item_ids=[uuid.UUID(item_id) for item_id in part.item_ids] if part.item_ids else None,
        breakdown=part.breakdown or {},
        amount_captured=part.amount_captured,
        amount_refunded=part.amount_refunded,
        payment_id=part.payment_id,
        cashier_id=part.cashier_id,
        paid_at=part.paid_at,
        attempts=part.attempts,
        last_attempt=attempt_read(attempt),
    )


def tab_read(state: TabState) -> TabRead:
    tab, bill = state.tab, state.bill
    lines = {line.key: line for line in bill.lines}
    numbers = {part.id: part.number for part in state.parts}
    return TabRead(
        id=tab.id,
        psp_id=tab.psp_id,
        merchant_id=tab.merchant_id,
        store_id=tab.store_id,
        status=tab.status,
        version=tab.version,
        label=tab.label,
        table=tab.table_label,
        cashier_id=tab.cashier_id,
        opened_by=tab.opened_by,
        currency=tab.currency,
        discount=_discount(tab.discount_kind, tab.discount_value),
        service_charge_percent=tab.service_charge_bp / 100 if tab.service_charge_bp else None,
        items=[
            ItemRead(
                id=item.id,
                position=item.position,
                name=item.name,
                sku=item.sku,
                quantity=item.quantity,
                unit_price=item.unit_price,
                tax_category=item.tax_category,
                discount=_discount(item.discount_kind, item.discount_value),
                gross=lines[str(item.id)].gross,
                item_discount=lines[str(item.id)].item_discount,
                tab_discount=lines[str(item.id)].tab_discount,
                net=lines[str(item.id)].net,
            )
            for item in state.items
        ],
        totals=TotalsRead(
            subtotal=bill.subtotal,
            item_discounts=bill.item_discounts,
            tab_discount=bill.tab_discount,
            discount_total=bill.discount_total,
            service_charge=bill.service_charge,
            taxes=[
                TaxRead(
                    category=rate.category.value,
                    rate_percent=rate.rate_percent,
                    base=rate.base,
                    tax=rate.tax,
                )
                for rate in bill.rates
            ],
            tax_total=bill.tax_total,
            tip=bill.tip,
            total=bill.total,
        ),
        split=(
            SplitRead(
                mode=tab.split_mode,
                generation=tab.split_generation,
                parts=[part_read(part, state.attempts.get(part.id)) for part in state.parts],
            )
            if tab.split_mode is not None
            else None
        ),
        amount_paid=tab.amount_paid,
        amount_refunded=tab.amount_refunded,
        amount_due=state.amount_due,
        refunds=[
            RefundRead(
                id=refund.id,
                part_number=numbers.get(refund.part_id, 0),
                payment_id=refund.payment_id,
                amount=refund.amount,
                status=refund.status,
                reason=refund.reason,
                failure_code=refund.failure_code,
                cashier_id=refund.cashier_id,
                created_at=refund.created_at,
            )
            for refund in state.refunds
        ],
        created_at=tab.created_at,
        updated_at=tab.updated_at,
        closed_at=tab.closed_at,
    )


def _with_etag(response: Response, state: TabState) -> TabRead:
    response.headers["ETag"] = f'"{state.tab.version}"'
    return tab_read(state)


# --- routes ----------------------------------------------------------------------------------


@router.post("", status_code=201, summary="Open a tab at the caller's store")
async def open_tab(
    body: TabOpen,
    response: Response,
    session: SessionDep,
    request: Request,
    principal: CanWrite,
) -> TabRead:
    state = await tab_service.open(session, request.app.state.redis, principal, body)
    response.headers["Location"] = f"/v1/tabs/{state.tab.id}"
    return _with_etag(response, state)


@router.get("", summary="Tabs in the caller's scope, oldest first")
async def list_tabs(
    session: SessionDep,
    principal: CanRead,
    status: TabStatusName | None = None,
    store_id: uuid.UUID | None = None,
    created_from: dt.datetime | None = None,
    after: Annotated[
        uuid.UUID | None, Query(description="Cursor: next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TabPage:
    rows, cursor = await tab_service.search(
        session,
        principal,
        status=status,
        store_id=store_id,
        created_from=created_from,
        after=after,
        limit=limit,
    )
    return TabPage(
        items=[
            TabSummary(
                id=tab.id,
                store_id=tab.store_id,
                status=tab.status,
                version=tab.version,
                label=tab.label,
                table=tab.table_label,
                currency=tab.currency,
                total=tab.total,
                amount_paid=tab.amount_paid,
                created_at=tab.created_at,
                updated_at=tab.updated_at,
            )
            for tab in rows
        ],
        next_cursor=cursor,
    )


@router.get("/{tab_id}", summary="One tab: items, totals, split, payments, refunds")
async def get_tab(
    tab_id: TabId, response: Response, session: SessionDep, principal: CanRead
) -> TabRead:
    return _with_etag(response, await tab_service.load(session, principal.scope, tab_id))


@router.patch(
    "/{tab_id}", summary="Label, table, discount, service charge, tip", responses=_IF_MATCH_DOC
)
async def update_tab(
    tab_id: TabId,
    body: TabUpdate,
    response: Response,
    request: Request,
    session: SessionDep,
    principal: CanWrite,
    if_match: IfMatch = None,
) -> TabRead:
    expected = expected_version(if_match)
    state = await tab_service.update(
        session, request.app.state.redis, principal, tab_id, expected, body
    )
    return _with_etag(response, state)


@router.post(
    "/{tab_id}/cancel", summary="Cancel a tab no money was taken on", responses=_IF_MATCH_DOC
)
async def cancel_tab(
    tab_id: TabId,
    response: Response,
    request: Request,
    session: SessionDep,
    principal: CanWrite,
    body: Annotated[CancelIn | None, Body()] = None,
    if_match: IfMatch = None,
) -> TabRead:
    expected = expected_version(if_match)
    body = body or CancelIn()
    state = await tab_service.cancel(
        session,
        request.app.state.redis,
        principal,
        tab_id,
        expected,
        body.cashier_id,
        body.reason,
    )
    return _with_etag(response, state)


@router.post("/{tab_id}/items", status_code=201, summary="Add an item", responses=_IF_MATCH_DOC)
async def add_item(
    tab_id: TabId,
    body: ItemAdd,
    response: Response,
    request: Request,
    session: SessionDep,
    principal: CanWrite,
    if_match: IfMatch = None,
) -> TabRead:
    expected = expected_version(if_match)
    state, item = await tab_service.add_item(
        session, request.app.state.redis, principal, tab_id, expected, body
    )
    response.headers["Location"] = f"/v1/tabs/{tab_id}/items/{item.id}"
    return _with_etag(response, state)


@router.patch(
    "/{tab_id}/items/{item_id}",
    summary="Adjust an item (quantity, price, discount…)",
    responses=_IF_MATCH_DOC,
)
async def update_item(
    tab_id: TabId,
    item_id: uuid.UUID,
    body: ItemUpdate,
    response: Response,
    request: Request,
    session: SessionDep,
    principal: CanWrite,
    if_match: IfMatch = None,
) -> TabRead:
    expected = expected_version(if_match)
    state = await tab_service.update_item(
        session, request.app.state.redis, principal, tab_id, item_id, expected, body
    )
    return _with_etag(response, state)


@router.delete("/{tab_id}/items/{item_id}", summary="Remove an item", responses=_IF_MATCH_DOC)
async def remove_item(
    tab_id: TabId,
    item_id: uuid.UUID,
    response: Response,
    request: Request,
    session: SessionDep,
    principal: CanWrite,
    cashier_id: Annotated[CashierId | None, Query()] = None,
    if_match: IfMatch = None,
) -> TabRead:
    expected = expected_version(if_match)
    state = await tab_service.remove_item(
        session, request.app.state.redis, principal, tab_id, item_id, expected, cashier_id
    )
    return _with_etag(response, state)


@router.post(
    "/{tab_id}/splits",
    status_code=201,
    summary="Define the parts the tab is paid in (full, equal, amounts, items)",
    responses=_IF_MATCH_DOC,
)
async def split_tab(
    tab_id: TabId,
    body: Annotated[SplitIn, Body()],
    response: Response,
    request: Request,
    session: SessionDep,
    principal: CanWrite,
    if_match: IfMatch = None,
) -> TabRead:
    expected = expected_version(if_match)
    state = await tab_service.split(
        session, request.app.state.redis, principal, tab_id, expected, body
    )
    return _with_etag(response, state)


@router.post(
    "/{tab_id}/parts/{number}/pay",
    summary="Pay one part through pgw (200: paid or failed; 202: outcome not known yet)",
    responses={**_IF_MATCH_DOC, 202: {"description": "pending: refresh the tab later"}},
)
async def pay_part(
    tab_id: TabId,
    number: PartNumber,
    body: PayIn,
    response: Response,
    context: ContextDep,
    principal: CanWrite,
    if_match: IfMatch = None,
) -> PayResult:
    expected = expected_version(if_match)
    result = await tab_service.pay(context, principal, tab_id, number, expected, body)
    payment = result.payment
    if result.outcome == "pending":
        response.status_code = 202
    return PayResult(
        outcome=result.outcome,
        tab=_with_etag(response, result.state),
        part=part_read(result.part, result.state.attempts.get(result.part.id)),
        payment=(
            PaymentSummary(
                id=payment.id,
                status=payment.status,
                amount=payment.amount,
                tip_amount=payment.tip_amount,
                amount_captured=payment.amount_captured,
                failure_code=payment.failure_code,
                failure_message=payment.failure_message,
                qr_payload=payment.qr_payload,
            )
            if payment is not None
            else None
        ),
    )


@router.post(
    "/{tab_id}/refresh",
    summary="Ask pgw what became of payments and refunds still pending",
    responses=_IF_MATCH_DOC,
)
async def refresh_tab(
    tab_id: TabId,
    response: Response,
    context: ContextDep,
    principal: CanWrite,
    body: Annotated[RefreshIn | None, Body()] = None,
    if_match: IfMatch = None,
) -> TabRead:
    expected = expected_version(if_match)
    state = await tab_service.refresh(
        context, principal, tab_id, expected, body.cashier_id if body else None
    )
    return _with_etag(response, state)


@router.post(
    "/{tab_id}/refunds",
    status_code=201,
    summary="Refund a paid tab, whole or one part (through pgw)",
    responses={**_IF_MATCH_DOC, 202: {"description": "a refund is still pending at pgw"}},
)
async def refund_tab(
    tab_id: TabId,
    body: RefundIn,
    response: Response,
    context: ContextDep,
    principal: CanWrite,
    if_match: IfMatch = None,
) -> RefundResult:
    expected = expected_version(if_match)
    state, refunds = await tab_service.refund(context, principal, tab_id, expected, body)
    if any(refund.status == "pending" for refund in refunds):
        response.status_code = 202
    read = _with_etag(response, state)
    wanted = {refund.id for refund in refunds}
    return RefundResult(tab=read, refunds=[r for r in read.refunds if r.id in wanted])
