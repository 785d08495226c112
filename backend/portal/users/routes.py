from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backend.core.auth import require
from backend.core.authz import Permission, Principal
from backend.core.database import SessionDep
from backend.core.schemas import Page
from backend.portal.context import PortalDep
from backend.portal.users.repository import UserRepository
from backend.portal.users.schemas import UserCreate, UserRead, UserUpdate
from backend.portal.users.service import user_service

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get("", summary="Users in the caller's scope")
async def list_users(
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.USER_READ))],
    after: uuid.UUID | None = None,
    limit: int = Query(default=50, ge=1, le=200),
) -> Page[UserRead]:
    rows, cursor = await UserRepository(session, principal.scope).page(limit=limit, after=after)
    return Page(items=[UserRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.post("", status_code=201, summary="Create a user with a role the caller may grant")
async def create_user(
    body: UserCreate,
    session: SessionDep,
    portal: PortalDep,
    principal: Annotated[Principal, Depends(require(Permission.USER_WRITE))],
) -> UserRead:
    user = await user_service.create(session, principal, portal.passwords, body)
    return UserRead.model_validate(user)


@router.get("/{user_id}", summary="One user")
async def get_user(
    user_id: uuid.UUID,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.USER_READ))],
) -> UserRead:
    return UserRead.model_validate(await user_service.get(session, principal, user_id))


@router.patch("/{user_id}", summary="Rename, change role (same level) or disable a user")
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.USER_WRITE))],
) -> UserRead:
    return UserRead.model_validate(await user_service.update(session, principal, user_id, body))
