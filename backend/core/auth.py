"""Bearer authentication and permission checks shared by every service's routes."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from backend.core.authz import HUMAN_ROLES, Permission, Principal, Role, TenantScope
from backend.core.errors import Forbidden, Unauthorized
from backend.core.tokens import InvalidToken, TokenVerifier
from backend.observability.logs import LogTenant, bind_log_tenant

if TYPE_CHECKING:
    from backend.core.hmac_signing import ServiceCaller

TOKEN_USE_USER = "user"
TOKEN_USE_DEVICE = "device"

# Called with (request, reason, detail) when a bearer token is refused, so a service can audit it.
RefusalHook = Callable[[Request, str, str], Awaitable[None]]


def _optional_uuid(value: Any) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value else None


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    try:
        scope = TenantScope(
            psp_id=uuid.UUID(str(claims["psp_id"])),
            merchant_id=_optional_uuid(claims.get("merchant_id")),
            store_id=_optional_uuid(claims.get("store_id")),
        )
        kind = "device" if claims["token_use"] == TOKEN_USE_DEVICE else "user"
        role = Role.TERMINAL if kind == "device" else Role(claims["role"])
        if kind == "user" and role not in HUMAN_ROLES:
            raise ValueError(f"a user token cannot carry the {role.value} role")
        return Principal(
            kind=kind,
            subject_id=uuid.UUID(str(claims["sub"])),
            role=role,
            scope=scope,
            token_id=str(claims.get("jti")),
            expires_at=dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
            if claims.get("exp") is not None
            else None,
        )
    except (KeyError, ValueError) as exc:
        raise InvalidToken("bad_claims", "the token's tenant or role claims are invalid") from exc


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Send an access token as 'Authorization: Bearer <token>'.",
            code="missing_token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


# Resolves the tenant a verified service caller acts for; a service that accepts HMAC-signed
# callers on its bearer routes sets one on app.state.service_scope_resolver.
ServiceScopeResolver = Callable[[Request, "ServiceCaller"], Awaitable[TenantScope]]
SERVICE_NAMESPACE = uuid.UUID("6d706163-0000-4000-8000-736572766963")


def _authenticated(request: Request, principal: Principal) -> Principal:
    """Record who the request acts for: handlers read it, log lines and spans carry its tenant."""
    request.state.principal = principal
    scope = principal.scope
    bind_log_tenant(LogTenant(scope.psp_id, scope.merchant_id, scope.store_id, principal.kind))
    return principal


async def _authenticate_service(request: Request, resolver: ServiceScopeResolver) -> Principal:
    from backend.core.hmac_signing import verify_signed_request

    caller = await verify_signed_request(request)
    scope = await resolver(request, caller)
    principal = Principal(
        kind="service",
        subject_id=uuid.uuid5(SERVICE_NAMESPACE, caller.caller),
        role=Role.SERVICE,
        scope=scope,
        token_id=None,
    )
    return _authenticated(request, principal)


# Opaque WebView payment tokens (docs/payment-tokens.md) start with this; a service that accepts
# them sets app.state.payment_token_resolver, which answers the Principal or raises a Problem.
PAYMENT_TOKEN_PREFIX = "pt_"
PaymentTokenResolver = Callable[[Request, str], Awaitable[Principal]]


async def authenticate(request: Request) -> Principal:
    resolver: ServiceScopeResolver | None = getattr(
        request.app.state, "service_scope_resolver", None
    )
    if resolver is not None and "x-mpac-signature" in request.headers:
        return await _authenticate_service(request, resolver)
    token = bearer_token(request)
    payment_token_resolver: PaymentTokenResolver | None = getattr(
        request.app.state, "payment_token_resolver", None
    )
    if payment_token_resolver is not None and token.startswith(PAYMENT_TOKEN_PREFIX):
        principal = await payment_token_resolver(request, token)
        return _authenticated(request, principal)
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        claims = await verifier.verify(token, token_uses=(TOKEN_USE_USER, TOKEN_USE_DEVICE))
        principal = principal_from_claims(claims)
    except InvalidToken as exc:
        hook: RefusalHook | None = getattr(request.app.state, "on_token_refused", None)
        if hook is not None:
            await hook(request, exc.reason, exc.detail)
        raise Unauthorized(exc.detail, code=f"token_{exc.reason}") from exc
    return _authenticated(request, principal)


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that authenticates and then checks the permission matrix."""

    async def check(principal: PrincipalDep) -> Principal:
        if not principal.can(permission):
            raise Forbidden(
                f"Role {principal.role.value!r} lacks the {permission.value!r} permission.",
                code="permission_denied",
                permission=permission.value,
            )
        return principal

    return check


def whoami_router() -> Any:
    """``GET /v1/whoami``: what this service understood of the caller's token."""
    from fastapi import APIRouter

    router = APIRouter(tags=["auth"])

    @router.get("/v1/whoami", summary="The authenticated caller as this service sees it")
    async def whoami(principal: PrincipalDep) -> dict[str, Any]:
        return {
            "kind": principal.kind,
            "subject_id": str(principal.subject_id),
            "role": principal.role.value,
            "psp_id": str(principal.scope.psp_id),
            "merchant_id": str(principal.scope.merchant_id)
            if principal.scope.merchant_id
            else None,
            "store_id": str(principal.scope.store_id) if principal.scope.store_id else None,
        }

    return router
