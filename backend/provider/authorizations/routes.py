from __future__ import annotations

from fastapi import APIRouter

from backend.core.database import SessionDep
from backend.provider.authorizations.schemas import (
    AuthorizationCreate,
    AuthorizationRead,
    CaptureRequest,
)
from backend.provider.authorizations.service import authorization_service
from backend.provider.context import SIMULATED, ProviderDep

router = APIRouter(prefix="/v1/authorizations", tags=["authorizations"], dependencies=SIMULATED)


@router.post(
    "", summary="Authorize (and optionally capture) a card payment; idempotent by reference"
)
async def create_authorization(
    body: AuthorizationCreate, session: SessionDep, provider: ProviderDep
) -> AuthorizationRead:
    authorization = await authorization_service.authorize(session, provider, body)
    return AuthorizationRead.model_validate(authorization)


@router.get("/by-reference/{reference}", summary="The authorization made for a reference")
async def get_authorization_by_reference(reference: str, session: SessionDep) -> AuthorizationRead:
    return AuthorizationRead.model_validate(
        await authorization_service.by_reference(session, reference)
    )


@router.get("/{authorization_id}", summary="One authorization")
async def get_authorization(authorization_id: str, session: SessionDep) -> AuthorizationRead:
    return AuthorizationRead.model_validate(
        await authorization_service.get(session, authorization_id)
    )


@router.post("/{authorization_id}/capture", summary="Capture once, up to the authorized amount")
async def capture_authorization(
    authorization_id: str, session: SessionDep, body: CaptureRequest | None = None
) -> AuthorizationRead:
    authorization = await authorization_service.capture(
        session, authorization_id, body or CaptureRequest()
    )
    return AuthorizationRead.model_validate(authorization)


@router.post("/{authorization_id}/void", summary="Release an uncaptured authorization")
async def void_authorization(authorization_id: str, session: SessionDep) -> AuthorizationRead:
    return AuthorizationRead.model_validate(
        await authorization_service.void(session, authorization_id)
    )
