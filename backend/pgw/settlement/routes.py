from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from backend.core.auth import require
from backend.core.authz import Permission, Principal
from backend.core.database import SessionDep
from backend.pgw.context import PgwDep
from backend.pgw.idempotency.http import Outcome, run_idempotent
from backend.pgw.idempotency.service import Claim
from backend.pgw.models import SettlementBatch
from backend.pgw.settlement.csv_report import batch_csv
from backend.pgw.settlement.repository import SettlementRepository
from backend.pgw.settlement.schemas import SettlementClose, SettlementPage, SettlementRead
from backend.pgw.settlement.service import resolve_target, settlement_service

router = APIRouter(prefix="/v1/settlements", tags=["settlements"])

CanRead = Annotated[Principal, Depends(require(Permission.SETTLEMENT_READ))]
CanClose = Annotated[Principal, Depends(require(Permission.SETTLEMENT_CLOSE))]

_CLOSE_DOC = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "maxLength": 255},
            "description": "Unique per intended close; reuse it when retrying (replays the batch).",
        }
    ]
}
_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "The batch as CSV"}
}


def _location(result: BaseModel) -> dict[str, str]:
    assert isinstance(result, SettlementRead)
    return {"Location": f"/v1/settlements/{result.id}"}


@router.post(
    "/close",
    status_code=201,
    response_model=SettlementRead,
    summary="Close a terminal or a store: an immutable batch of what was not yet settled",
    openapi_extra=_CLOSE_DOC,
)
async def close_settlement(
    body: SettlementClose, request: Request, session: SessionDep, pgw: PgwDep, principal: CanClose
) -> JSONResponse:
    target = resolve_target(principal, body)

    async def execute(claim: Claim) -> Outcome:
        batch = await settlement_service.close(session, principal, target)
        return 201, SettlementRead.model_validate(batch), True

    return await run_idempotent(
        request,
        session,
        pgw,
        principal,
        operation="settlement.close",
        body=target,
        execute=execute,
        headers=_location,
    )


@router.get("", summary="Settlement batches in the caller's scope, newest first")
async def list_settlements(
    session: SessionDep,
    principal: CanRead,
    store_id: uuid.UUID | None = None,
    terminal_id: uuid.UUID | None = None,
    scope: Literal["terminal", "store"] | None = None,
    before: uuid.UUID | None = Query(
        default=None, description="Cursor: next_cursor of the previous page"
    ),
    limit: int = Query(default=50, ge=1, le=200),
) -> SettlementPage:
    rows, cursor = await settlement_service.search(
        session,
        principal,
        store_id=store_id,
        terminal_id=terminal_id,
        scope=scope,
        before=before,
        limit=limit,
    )
    return SettlementPage(
        items=[SettlementRead.model_validate(row) for row in rows], next_cursor=cursor
    )


async def _csv_response(
    session: SessionDep, principal: Principal, batch: SettlementBatch
) -> Response:
    repository = SettlementRepository(session, principal.scope)
    body = batch_csv(batch, await repository.payments_of(batch), await repository.refunds_of(batch))
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="settlement-{batch.id}.csv"'},
    )


# Declared before "/{batch_id}", which would otherwise take "<id>.csv" as a (bad) id.
@router.get(
    "/{batch_id}.csv",
    response_class=Response,
    responses=_CSV_RESPONSE,
    summary="One batch as CSV: its payments and refunds, then its totals",
)
async def get_settlement_csv(
    batch_id: uuid.UUID, session: SessionDep, principal: CanRead
) -> Response:
    batch = await settlement_service.get(session, principal, batch_id)
    return await _csv_response(session, principal, batch)


@router.get(
    "/{batch_id}",
    response_model=SettlementRead,
    responses=_CSV_RESPONSE,
    summary="One batch (JSON, or CSV with ?format=csv)",
)
async def get_settlement(
    batch_id: uuid.UUID,
    session: SessionDep,
    principal: CanRead,
    format: Literal["json", "csv"] = "json",
) -> Response:
    batch = await settlement_service.get(session, principal, batch_id)
    if format == "csv":
        return await _csv_response(session, principal, batch)
    return JSONResponse(SettlementRead.model_validate(batch).model_dump(mode="json"))
