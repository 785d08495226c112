"""Device identity: enrollment by activation code and OAuth2 ``private_key_jwt`` (RFC 7523).

A terminal proves who it is with a short-lived assertion signed by the EC P-256 key it generated
itself and registered at enrollment; the portal answers with a device access token of 60-120 s.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
import uuid
from typing import Any, NoReturn

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.auth import TOKEN_USE_DEVICE
from backend.core.errors import BadRequest, Problem, TooManyRequests, Unprocessable
from backend.core.models import utcnow
from backend.core.request_context import current_client_ip
from backend.core.tokens import (
    InvalidToken,
    decode_with_key,
    unverified_header,
    verification_key_from_jwk,
)
from backend.portal.audit.service import AuditEventType, audit_log
from backend.portal.context import PortalContext
from backend.portal.devices.repository import DeviceCredentialRepository, UsedAssertionRepository
from backend.portal.devices.schemas import DeviceToken, Enrollment, EnrollmentRequest
from backend.portal.devices.scope import terminal_scope
from backend.portal.devices.throttle import ThrottleHit, claimed_client_id
from backend.portal.models import Terminal
from backend.portal.outbox.service import directory_outbox
from backend.portal.terminals.activation import hash_activation_code

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC public key."""
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _oauth_error(status: int, error: str, code: str, detail: str) -> Problem:
    """A problem+json body that OAuth2 clients also understand (RFC 6749, section 5.2)."""
    problem = Problem(
        detail,
        code=code,
        status=status,
        title="Client authentication failed"
        if error == "invalid_client"
        else "Invalid token request",
        commit=True,
        error=error,
        error_description=detail,
    )
    if status == 401:
        problem.headers = {"WWW-Authenticate": 'Bearer error="invalid_client"'}
    return problem


class DeviceService:
    async def enroll(
        self, session: AsyncSession, portal: PortalContext, body: EnrollmentRequest
    ) -> Enrollment:
        terminal = await DeviceCredentialRepository(session).by_activation_code_hash(
            hash_activation_code(body.activation_code)
        )
        now = utcnow()
        refusal: tuple[str, str] | None = None
        if terminal is None:
            refusal = ("activation_code_invalid", "The activation code is not valid.")
        elif terminal.activation_code_used_at is not None:
            refusal = ("activation_code_used", "The activation code was already used.")
        elif (
            terminal.activation_code_expires_at is None
            or terminal.activation_code_expires_at <= now
        ):
            refusal = (
                "activation_code_expired",
                "The activation code has expired; ask for a new one.",
            )
        elif terminal.status not in ("pending", "active"):
            refusal = ("terminal_not_enrollable", f"The terminal is {terminal.status}.")
        elif body.serial is not None and body.serial != terminal.serial:
            refusal = ("serial_mismatch", "The code was issued for another terminal serial.")
        if refusal is not None:
            await self._refuse_enrollment(session, terminal, refusal[0])
            raise BadRequest(refusal[1], code=refusal[0], commit=True)
        assert terminal is not None
        try:
            key = verification_key_from_jwk(body.public_jwk)
        except (ValueError, TypeError, KeyError, jwt.PyJWTError) as exc:
            await self._refuse_enrollment(session, terminal, "invalid_public_key")
            raise Unprocessable(
                "public_jwk must be a public EC P-256 key (kty=EC, crv=P-256, x, y).",
                code="invalid_public_key",
                commit=True,
            ) from exc
        if key.algorithm != "ES256":
            await self._refuse_enrollment(session, terminal, "invalid_public_key")
            raise Unprocessable(
                "Devices enroll EC P-256 keys only.", code="invalid_public_key", commit=True
            )
        public_jwk = {k: body.public_jwk[k] for k in ("kty", "crv", "x", "y")}
        thumbprint = jwk_thumbprint(public_jwk)
        terminal.public_jwk = {**public_jwk, "kid": thumbprint, "alg": "ES256", "use": "sig"}
        terminal.key_thumbprint = thumbprint
        terminal.status = "active"
        terminal.enrolled_at = now
        await directory_outbox.terminal_changed(session, terminal)
        terminal.activation_code_used_at = now
        await session.flush()
        await audit_log.record(
            session,
            AuditEventType.TERMINAL_ENROLLED,
            actor_type="device",
            actor_id=terminal.id,
            scope=terminal_scope(terminal),
            target_type="terminal",
            target_id=terminal.id,
            detail={"key_thumbprint": thumbprint},
        )
        settings = portal.settings
        return Enrollment(
            client_id=terminal.id,
            terminal_id=terminal.id,
            psp_id=terminal.psp_id,
            merchant_id=terminal.merchant_id,
            store_id=terminal.store_id,
            key_thumbprint=thumbprint,
            issuer=settings.resolved_issuer,
            token_endpoint=settings.token_endpoint,
        )

    async def _refuse_enrollment(
        self, session: AsyncSession, terminal: Terminal | None, reason: str
    ) -> None:
        await audit_log.record(
            session,
            AuditEventType.TERMINAL_ENROLLMENT_REFUSED,
            outcome="failure",
            actor_type="anonymous",
            scope=terminal_scope(terminal) if terminal else None,
            target_type="terminal" if terminal else None,
            target_id=terminal.id if terminal else None,
            reason=reason,
        )

    async def issue_token(
        self,
        session: AsyncSession,
        portal: PortalContext,
        *,
        grant_type: str | None,
        client_assertion_type: str | None,
        client_assertion: str | None,
        client_id: str | None,
    ) -> DeviceToken:
        if grant_type != "client_credentials":
            raise _oauth_error(
                400,
                "unsupported_grant_type",
                "unsupported_grant_type",
                "Only grant_type=client_credentials is supported.",
            )
        if client_assertion_type != CLIENT_ASSERTION_TYPE or not client_assertion:
            raise _oauth_error(
                400,
                "invalid_request",
                "client_assertion_required",
                f"Authenticate with client_assertion_type={CLIENT_ASSERTION_TYPE} and a "
                "client_assertion (private_key_jwt).",
            )
        claimed_id = claimed_client_id(client_assertion, client_id)
        address = current_client_ip() or "unknown"
        failures = portal.token_failures
        hit = await failures.exhausted(claimed_id, address)
        if hit is not None:
            await self._refuse_throttled(
                session, hit, claimed_id, first=await failures.first_refusal(hit)
            )
        # The terminal the assertion claims to come from, once looked up: a refusal about it is
        # recorded in its tenant, where its owner's auditors can see it.
        claimed: Terminal | None = None
        try:
            header, subject, claimed = await self._claimed_client(
                session, client_assertion, client_id
            )
            terminal = await self._verify_assertion(
                session, portal, claimed, header, subject, client_assertion
            )
        except InvalidToken as refusal:
            await failures.record_failure(claimed_id, address)
            await audit_log.record(
                session,
                AuditEventType.DEVICE_TOKEN_REFUSED,
                outcome="failure",
                actor_type="device" if claimed else "anonymous",
                actor_id=claimed.id if claimed else client_id,
                scope=terminal_scope(claimed) if claimed else None,
                target_type="terminal" if claimed else None,
                target_id=claimed.id if claimed else None,
                reason=refusal.reason,
            )
            raise _oauth_error(
                401, "invalid_client", f"assertion_{refusal.reason}", refusal.detail
            ) from refusal
        access = await portal.issue_token(
            subject=str(terminal.id),
            token_use=TOKEN_USE_DEVICE,
            ttl_s=portal.settings.device_access_token_ttl_s,
            claims={
                "psp_id": str(terminal.psp_id),
                "merchant_id": str(terminal.merchant_id),
                "store_id": str(terminal.store_id),
                "terminal_id": str(terminal.id),
                "cnf": {"jkt": terminal.key_thumbprint},
            },
        )
        return DeviceToken(access_token=access.token, expires_in=access.expires_in_s)

    async def _refuse_throttled(
        self, session: AsyncSession, hit: ThrottleHit, claimed_id: str | None, *, first: bool
    ) -> NoReturn:
        if first:
            # A client's trip is recorded in its terminal's tenant, for its owner's auditors; an
            # address's is nobody's tenant's business (it may front anyone).
            terminal = None
            if hit.limit == "client" and claimed_id is not None:
                terminal = await DeviceCredentialRepository(session).by_client_id(
                    uuid.UUID(claimed_id)
                )
            await audit_log.record(
                session,
                AuditEventType.DEVICE_TOKEN_RATE_LIMITED,
                outcome="failure",
                actor_type="device" if terminal else "anonymous",
                actor_id=claimed_id,
                scope=terminal_scope(terminal) if terminal else None,
                target_type="terminal" if terminal else None,
                target_id=terminal.id if terminal else None,
                reason="too_many_failures",
                detail={"limit": hit.limit, "retry_after_s": hit.retry_after_s},
            )
        raise TooManyRequests(
            "Too many failed client assertions; try again later.",
            code="too_many_attempts",
            retry_after_s=hit.retry_after_s,
            commit=first,
        )

    async def _claimed_client(
        self, session: AsyncSession, assertion: str, client_id: str | None
    ) -> tuple[dict[str, Any], str, Terminal]:
        """The terminal an assertion names, before anything about the assertion is trusted."""
        header = unverified_header(assertion)
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed", "the client assertion is not a JWT") from exc
        issuer, subject = unverified.get("iss"), unverified.get("sub")
        if not isinstance(subject, str) or issuer != subject:
            raise InvalidToken("iss_sub_mismatch", "iss and sub must both be the client_id")
        if client_id is not None and client_id != subject:
            raise InvalidToken("client_id_mismatch", "client_id does not match the assertion")
        try:
            terminal_id = uuid.UUID(subject)
        except ValueError as exc:
            raise InvalidToken("unknown_client", "no such client") from exc
        terminal = await DeviceCredentialRepository(session).by_client_id(terminal_id)
        if terminal is None:
            raise InvalidToken("unknown_client", "no such client")
        return header, subject, terminal

    async def _verify_assertion(
        self,
        session: AsyncSession,
        portal: PortalContext,
        terminal: Terminal,
        header: dict[str, Any],
        subject: str,
        assertion: str,
    ) -> Terminal:
        settings = portal.settings
        if terminal.status == "decommissioned":
            raise InvalidToken("unknown_client", "no such client")
        if terminal.status == "suspended":
            raise InvalidToken("client_suspended", "the terminal is suspended")
        if terminal.status != "active" or terminal.public_jwk is None:
            raise InvalidToken("client_not_enrolled", "the terminal has not enrolled a key")
        key = verification_key_from_jwk(terminal.public_jwk)
        claims = decode_with_key(
            assertion,
            key,
            header["alg"],
            # RFC 7523 names the token endpoint; RFC 7523bis the issuer: accept exactly these.
            audience=[settings.token_endpoint, settings.resolved_issuer],
            issuer=subject,
            leeway_s=settings.clock_skew_leeway_s,
            required=("exp", "iat", "jti", "iss", "sub", "aud"),
        )
        now = int(time.time())
        lifetime = int(claims["exp"]) - int(claims["iat"])
        if lifetime > settings.client_assertion_max_lifetime_s or lifetime <= 0:
            raise InvalidToken(
                "lifetime_too_long",
                f"assertions may live at most {settings.client_assertion_max_lifetime_s} s",
            )
        if int(claims["iat"]) > now + settings.clock_skew_leeway_s:
            raise InvalidToken("issued_in_future", "the assertion's iat is in the future")
        jti = claims["jti"]
        if not isinstance(jti, str) or not 8 <= len(jti) <= 128:
            raise InvalidToken("bad_jti", "jti must be a string of 8 to 128 characters")
        replay_ttl = int(claims["exp"]) - now + settings.clock_skew_leeway_s
        if not await portal.assertion_ids.first_use(f"{terminal.id}:{jti}", ttl_s=replay_ttl):
            raise InvalidToken("replayed", "this assertion (jti) was already used")
        # Also in the database, in this request's transaction: Redis may lose what it knew
        # (a crash without persistence), the table does not.
        usable_until = dt.datetime.fromtimestamp(now + replay_ttl, dt.UTC)
        if not await UsedAssertionRepository(session).claim(
            terminal.id, jti, expires_at=usable_until
        ):
            raise InvalidToken("replayed", "this assertion (jti) was already used")
        return terminal


device_service = DeviceService()
