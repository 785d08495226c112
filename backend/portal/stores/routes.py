from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backend.core.auth import require
from backend.core.authz import Permission, Principal
from backend.core.database import SessionDep
from backend.core.schemas import Page
from backend.portal.stores.repository import StoreRepository
from backend.portal.stores.schemas import StoreCreate, StoreRead, StoreUpdate
from backend.portal.stores.service import store_service

router = APIRouter(prefix="/v1/stores", tags=["stores"])


@router.get("", summary="Stores in the caller's scope")
async def list_stores(
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.STORE_READ))],
    merchant_id: uuid.UUID | None = None,
    after: uuid.UUID | None = None,
    limit: int = Query(default=50, ge=1, le=200),
) -> Page[StoreRead]:
    rows, cursor = await StoreRepository(session, principal.scope).search(
        merchant_id=merchant_id, limit=limit, after=after
    )
    return Page(items=[StoreRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.post("", status_code=201, summary="Open a store for a merchant in the caller's scope")
async def create_store(
    body: StoreCreate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.STORE_WRITE))],
) -> StoreRead:
    return StoreRead.model_validate(await store_service.create(session, principal, body))


@router.get("/{store_id}", summary="One store")
async def get_store(
    store_id: uuid.UUID,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.STORE_READ))],
) -> StoreRead:
    return StoreRead.model_validate(await store_service.get(session, principal, store_id))


@router.patch("/{store_id}", summary="Rename, move time zone or close a store")
async def update_store(
    store_id: uuid.UUID,
    body: StoreUpdate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.STORE_WRITE))],
) -> StoreRead:
    return StoreRead.model_validate(await store_service.update(session, principal, store_id, body))
