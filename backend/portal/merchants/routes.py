from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backend.core.auth import require
from backend.core.authz import Permission, Principal
from backend.core.database import SessionDep
from backend.core.schemas import Page
from backend.portal.context import PortalDep
from backend.portal.merchants.repository import MerchantRepository
from backend.portal.merchants.schemas import (
    BankAccount,
    MerchantCreate,
    MerchantRead,
    MerchantUpdate,
)
from backend.portal.merchants.service import merchant_service

router = APIRouter(prefix="/v1/merchants", tags=["merchants"])


@router.get("", summary="Merchants in the caller's scope")
async def list_merchants(
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.MERCHANT_READ))],
    after: uuid.UUID | None = None,
    limit: int = Query(default=50, ge=1, le=200),
) -> Page[MerchantRead]:
    rows, cursor = await MerchantRepository(session, principal.scope).page(limit=limit, after=after)
    return Page(items=[MerchantRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.post("", status_code=201, summary="Create a merchant under the caller's PSP")
async def create_merchant(
    body: MerchantCreate,
    session: SessionDep,
    portal: PortalDep,
    principal: Annotated[Principal, Depends(require(Permission.MERCHANT_CREATE))],
) -> MerchantRead:
    merchant = await merchant_service.create(session, principal, portal.cipher, body)
    return MerchantRead.model_validate(merchant)


@router.get("/{merchant_id}", summary="One merchant")
async def get_merchant(
    merchant_id: uuid.UUID,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.MERCHANT_READ))],
) -> MerchantRead:
    return MerchantRead.model_validate(await merchant_service.get(session, principal, merchant_id))


@router.patch("/{merchant_id}", summary="Rename, suspend or change the settlement account")
async def update_merchant(
    merchant_id: uuid.UUID,
    body: MerchantUpdate,
    session: SessionDep,
    portal: PortalDep,
    principal: Annotated[Principal, Depends(require(Permission.MERCHANT_UPDATE))],
) -> MerchantRead:
    merchant = await merchant_service.update(session, principal, portal.cipher, merchant_id, body)
    return MerchantRead.model_validate(merchant)


@router.get("/{merchant_id}/bank-account", summary="The decrypted settlement account (audited)")
async def get_bank_account(
    merchant_id: uuid.UUID,
    session: SessionDep,
    portal: PortalDep,
    principal: Annotated[Principal, Depends(require(Permission.MERCHANT_BANK_ACCOUNT_READ))],
) -> BankAccount:
    return await merchant_service.bank_account(session, principal, portal.cipher, merchant_id)
