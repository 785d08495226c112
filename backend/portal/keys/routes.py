from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from backend.core.jwks import jwks_document
from backend.core.settings import Settings
from backend.core.tokens import ALLOWED_ALGORITHMS

router = APIRouter(tags=["keys"])


@router.get("/.well-known/jwks.json", summary="Public keys that verify portal-issued tokens")
async def jwks(request: Request) -> JSONResponse:
    document = jwks_document(await request.app.state.key_ring.jwks())
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=60"})


@router.get(
    "/.well-known/oauth-authorization-server",
    summary="RFC 8414 metadata for the device token endpoint",
)
async def authorization_server_metadata(request: Request) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    return {
        "issuer": settings.resolved_issuer,
        "token_endpoint": settings.token_endpoint,
        "jwks_uri": settings.jwks_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": sorted(ALLOWED_ALGORITHMS),
    }
