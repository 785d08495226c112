"""Human authentication: password login, rotating refresh tokens with reuse detection."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import secrets
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.auth import TOKEN_USE_USER
from backend.core.authz import TenantScope
from backend.core.errors import TooManyRequests, Unauthorized
from backend.core.models import utcnow
from backend.core.request_context import current_client_ip
from backend.portal.audit.service import AuditEventType, audit_log
from backend.portal.auth.repository import CredentialRepository, RefreshTokenRepository
from backend.portal.auth.schemas import TokenPair
from backend.portal.context import PortalContext
from backend.portal.models import RefreshToken, User


def _hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def user_scope(user: User) -> TenantScope:
    return TenantScope(psp_id=user.psp_id, merchant_id=user.merchant_id, store_id=user.store_id)


def user_claims(user: User) -> dict[str, Any]:
    return {
        "role": user.role,
        "psp_id": str(user.psp_id),
        "merchant_id": str(user.merchant_id) if user.merchant_id else None,
        "store_id": str(user.store_id) if user.store_id else None,
    }


def _invalid_credentials() -> Unauthorized:
    # One answer for unknown e-mail, wrong password and disabled account: the reason is audited,
    # not told to whoever is guessing.
    return Unauthorized(
        "The e-mail or password is wrong.",
        code="invalid_credentials",
        headers={"WWW-Authenticate": "Bearer"},
        commit=True,
    )


class AuthService:
    async def login(
        self, session: AsyncSession, portal: PortalContext, *, email: str, password: str
    ) -> TokenPair:
        email = email.strip().lower()
        ip = current_client_ip() or "unknown"
        by_account, by_ip = portal.login_failures_by_account, portal.login_failures_by_ip
        limit = "account"
        try:
            # Each attempt is counted as a failure before the password is checked, and given
            # back if it succeeds: checking first and counting afterwards would let parallel
            # guesses all pass the check while the first ones are still being verified.
            await by_account.acquire(email)
            limit = "address"
            try:
                await by_ip.acquire(ip)
            except TooManyRequests:
                await by_account.release(email)
                raise
        except TooManyRequests as refusal:
            await audit_log.record(
                session,
                AuditEventType.LOGIN_RATE_LIMITED,
                outcome="failure",
                reason="too_many_failures",
                detail={"email": email, "limit": limit},
            )
            refusal.commit = True
            raise

        try:
            user = await CredentialRepository(session).by_email(email)
            password_ok = await portal.passwords.verify(
                user.password_hash if user else None, password
            )
        except Exception:
            # Never judged (the database is down, say): no failure to count, or an outage
            # would lock every account that tried to log in during it.
            for limiter, key in ((by_account, email), (by_ip, ip)):
                with contextlib.suppress(Exception):
                    await limiter.release(key)
            raise
        failure = None
        if user is None:
            failure = "unknown_email"
        elif not password_ok:
            failure = "wrong_password"
        elif user.status != "active":
            failure = "user_disabled"
        if failure is not None:
            # The attempt was already counted against the account and the address.
            await audit_log.record(
                session,
                AuditEventType.LOGIN_FAILED,
                outcome="failure",
                actor_type="user" if user else "anonymous",
                actor_id=user.id if user else None,
                scope=user_scope(user) if user else None,
                reason=failure,
                detail={"email": email},
            )
            raise _invalid_credentials()

        assert user is not None
        await by_account.reset(email)
        await by_ip.release(ip)
        if portal.passwords.needs_rehash(user.password_hash):
            user.password_hash = await portal.passwords.hash(password)
        pair = await self._issue_pair(session, portal, user, family_id=uuid.uuid4())
        await audit_log.record(
            session,
            AuditEventType.LOGIN_SUCCEEDED,
            actor_type="user",
            actor_id=user.id,
            scope=user_scope(user),
        )
        return pair

    async def refresh(
        self, session: AsyncSession, portal: PortalContext, *, refresh_token: str
    ) -> TokenPair:
        now = utcnow()
        tokens = RefreshTokenRepository(session)
        stored = await tokens.by_secret_hash_for_update(_hash_secret(refresh_token))
        refusal = None
        if stored is None:
            refusal = "unknown_refresh_token"
        elif stored.revoked_at is not None:
            refusal = f"family_revoked:{stored.revoked_reason}"
        elif stored.used_at is not None:
            # A rotated token came back: either the client or a thief holds a copy. Revoke the
            # whole family so neither can continue (OAuth 2.0 Security BCP, section 4.14).
            await tokens.revoke_family(stored.family_id, reason="reuse_detected", now=now)
            await audit_log.record(
                session,
                AuditEventType.REFRESH_REUSE_DETECTED,
                outcome="failure",
                actor_type="user",
                actor_id=stored.user_id,
                scope=TenantScope(psp_id=stored.psp_id, merchant_id=stored.merchant_id),
                reason="reuse_detected",
                target_type="refresh_token_family",
                target_id=stored.family_id,
            )
            raise Unauthorized(
                "This refresh token was already used; the session is revoked, log in again.",
                code="refresh_token_reused",
                commit=True,
            )
        elif stored.expires_at <= now:
            refusal = "expired"
        user = await CredentialRepository(session).by_id(stored.user_id) if stored else None
        if refusal is None and (user is None or user.status != "active"):
            refusal = "user_disabled"
        if refusal is not None:
            await audit_log.record(
                session,
                AuditEventType.REFRESH_REFUSED,
                outcome="failure",
                actor_type="user" if stored else "anonymous",
                actor_id=stored.user_id if stored else None,
                scope=user_scope(user) if user else None,
                reason=refusal,
            )
            raise Unauthorized(
                "The refresh token is not valid; log in again.",
                code="invalid_refresh_token",
                commit=True,
            )
        assert stored is not None
        assert user is not None
        stored.used_at = now
        pair = await self._issue_pair(session, portal, user, family_id=stored.family_id)
        await audit_log.record(
            session,
            AuditEventType.REFRESH_SUCCEEDED,
            actor_type="user",
            actor_id=user.id,
            scope=user_scope(user),
        )
        return pair

    async def logout(
        self, session: AsyncSession, portal: PortalContext, *, refresh_token: str
    ) -> None:
        tokens = RefreshTokenRepository(session)
        stored = await tokens.by_secret_hash_for_update(_hash_secret(refresh_token))
        if stored is None:
            return
        await tokens.revoke_family(stored.family_id, reason="logout", now=utcnow())
        await audit_log.record(
            session,
            AuditEventType.LOGOUT,
            actor_type="user",
            actor_id=stored.user_id,
            scope=TenantScope(psp_id=stored.psp_id, merchant_id=stored.merchant_id),
        )

    async def _issue_pair(
        self, session: AsyncSession, portal: PortalContext, user: User, *, family_id: uuid.UUID
    ) -> TokenPair:
        settings = portal.settings
        access = await portal.issue_token(
            subject=str(user.id),
            token_use=TOKEN_USE_USER,
            ttl_s=settings.human_access_token_ttl_s,
            claims=user_claims(user),
        )
        refresh_token = f"rt_{secrets.token_urlsafe(32)}"
        now = utcnow()
        await RefreshTokenRepository(session).add(
            RefreshToken(
                family_id=family_id,
                user_id=user.id,
                psp_id=user.psp_id,
                merchant_id=user.merchant_id,
                secret_hash=_hash_secret(refresh_token),
                issued_at=now,
                expires_at=now + dt.timedelta(seconds=settings.refresh_token_ttl_s),
            )
        )
        return TokenPair(
            access_token=access.token,
            expires_in=access.expires_in_s,
            refresh_token=refresh_token,
            refresh_expires_in=settings.refresh_token_ttl_s,
        )


auth_service = AuthService()
