from __future__ import annotations

from fastapi import APIRouter, Form

from backend.core.database import SessionDep
from backend.portal.context import PortalDep
from backend.portal.devices.schemas import DeviceToken, Enrollment, EnrollmentRequest
from backend.portal.devices.service import device_service

router = APIRouter(tags=["devices"])


@router.post(
    "/v1/devices/enroll",
    summary="A terminal registers its own public key with a one-time activation code",
)
async def enroll(body: EnrollmentRequest, session: SessionDep, portal: PortalDep) -> Enrollment:
    return await device_service.enroll(session, portal, body)


@router.post(
    "/oauth2/token",
    summary="OAuth2 client_credentials with private_key_jwt client authentication (RFC 7523)",
)
async def token(
    session: SessionDep,
    portal: PortalDep,
    grant_type: str | None = Form(default=None),
    client_assertion_type: str | None = Form(default=None),
    client_assertion: str | None = Form(default=None, max_length=8192),
    client_id: str | None = Form(default=None, max_length=64),
    scope: str | None = Form(default=None, max_length=512),
) -> DeviceToken:
    return await device_service.issue_token(
        session,
        portal,
        grant_type=grant_type,
        client_assertion_type=client_assertion_type,
        client_assertion=client_assertion,
        client_id=client_id,
    )
