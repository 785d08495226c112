"""Directory sync from the portal (HMAC-signed, caller ``portal`` only)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from backend.core.database import SessionDep
from backend.core.errors import NotFound
from backend.core.hmac_signing import ServiceCaller, require_caller
from backend.pgw.directory.repository import DirectoryRepository, upsert_newer
from backend.pgw.directory.schemas import MerchantSync, StoreSync, SyncResult, TerminalSync
from backend.pgw.models import KnownMerchant, KnownStore, KnownTerminal

router = APIRouter(prefix="/internal/v1/directory", tags=["directory sync"])

FromPortal = Annotated[ServiceCaller, Depends(require_caller("portal"))]
FromPlatform = Annotated[ServiceCaller, Depends(require_caller("portal", "smarttab"))]


@router.put("/merchants/{merchant_id}", summary="Upsert a merchant (newer source_version wins)")
async def sync_merchant(
    merchant_id: uuid.UUID, body: MerchantSync, session: SessionDep, caller: FromPortal
) -> SyncResult:
    applied = await upsert_newer(session, KnownMerchant, {"id": merchant_id, **body.model_dump()})
    return SyncResult(id=merchant_id, applied=applied)


@router.put("/stores/{store_id}", summary="Upsert a store (newer source_version wins)")
async def sync_store(
    store_id: uuid.UUID, body: StoreSync, session: SessionDep, caller: FromPortal
) -> SyncResult:
    applied = await upsert_newer(session, KnownStore, {"id": store_id, **body.model_dump()})
    return SyncResult(id=store_id, applied=applied)


@router.put("/terminals/{terminal_id}", summary="Upsert a terminal (newer source_version wins)")
async def sync_terminal(
    terminal_id: uuid.UUID, body: TerminalSync, session: SessionDep, caller: FromPortal
) -> SyncResult:
    applied = await upsert_newer(session, KnownTerminal, {"id": terminal_id, **body.model_dump()})
    return SyncResult(id=terminal_id, applied=applied)


@router.get("/stores/{store_id}", summary="What pgw knows of a store (for operators and tests)")
async def get_store(
    store_id: uuid.UUID, session: SessionDep, caller: FromPlatform
) -> dict[str, Any]:
    store = await DirectoryRepository(session).store(store_id)
    if store is None:
        raise NotFound(f"Store {store_id} has not been synced.", code="store_not_synced")
    return {
        "id": str(store.id),
        "merchant_id": str(store.merchant_id),
        "status": store.status,
        "source_version": store.source_version,
    }


@router.get("/terminals/{terminal_id}", summary="What pgw knows of a terminal")
async def get_terminal(
    terminal_id: uuid.UUID, session: SessionDep, caller: FromPlatform
) -> dict[str, Any]:
    terminal = await DirectoryRepository(session).terminal(terminal_id)
    if terminal is None:
        raise NotFound(f"Terminal {terminal_id} has not been synced.", code="terminal_not_synced")
    return {
        "id": str(terminal.id),
        "store_id": str(terminal.store_id),
        "status": terminal.status,
        "source_version": terminal.source_version,
    }
