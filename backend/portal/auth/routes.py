from __future__ import annotations

from fastapi import APIRouter, Response

from backend.core.auth import PrincipalDep
from backend.core.authz import ROLE_PERMISSIONS
from backend.core.database import SessionDep
from backend.core.errors import Forbidden, NotFound
from backend.portal.auth.repository import CredentialRepository
from backend.portal.auth.schemas import LoginRequest, Me, RefreshRequest, TokenPair
from backend.portal.auth.service import auth_service
from backend.portal.context import PortalDep

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/login", summary="Exchange e-mail and password for an access and refresh token")
async def login(body: LoginRequest, session: SessionDep, portal: PortalDep) -> TokenPair:
    return await auth_service.login(session, portal, email=body.email, password=body.password)


@router.post("/refresh", summary="Rotate a refresh token; reusing an old one revokes the session")
async def refresh(body: RefreshRequest, session: SessionDep, portal: PortalDep) -> TokenPair:
    return await auth_service.refresh(session, portal, refresh_token=body.refresh_token)


@router.post("/logout", status_code=204, summary="Revoke the refresh token's whole family")
async def logout(body: RefreshRequest, session: SessionDep, portal: PortalDep) -> Response:
    await auth_service.logout(session, portal, refresh_token=body.refresh_token)
    return Response(status_code=204)


@router.get("/me", summary="The logged-in user and their permissions")
async def me(principal: PrincipalDep, session: SessionDep) -> Me:
    if principal.kind != "user":
        raise Forbidden("Only a user token describes a person.", code="user_token_required")
    user = await CredentialRepository(session).by_id(principal.subject_id)
    if user is None:
        raise NotFound("The user of this token no longer exists.", code="user_not_found")
    return Me(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        psp_id=user.psp_id,
        merchant_id=user.merchant_id,
        store_id=user.store_id,
        permissions=sorted(p.value for p in ROLE_PERMISSIONS[principal.role]),
    )
