"""What every portal request can reach besides its database session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.field_encryption import FieldCipher
from backend.core.passwords import Passwords
from backend.core.replay import FixedWindowLimiter, ReplayCache
from backend.core.settings import Settings
from backend.core.tokens import IssuedToken, TokenIssuer
from backend.portal.devices.throttle import TokenThrottle
from backend.portal.keys.service import KeyRing


@dataclass
class PortalContext:
    settings: Settings
    key_ring: KeyRing
    cipher: FieldCipher
    passwords: Passwords
    redis: Redis
    sessionmaker: async_sessionmaker[AsyncSession]

    @property
    def login_failures_by_account(self) -> FixedWindowLimiter:
        return FixedWindowLimiter(
            self.redis,
            "login:account",
            limit=self.settings.login_max_failures,
            window_s=self.settings.login_failure_window_s,
        )

    @property
    def login_failures_by_ip(self) -> FixedWindowLimiter:
        return FixedWindowLimiter(
            self.redis,
            "login:ip",
            limit=self.settings.login_max_failures_per_ip,
            window_s=self.settings.login_failure_window_s,
        )

    @property
    def token_failures(self) -> TokenThrottle:
        return TokenThrottle(self.redis, self.settings)

    @property
    def assertion_ids(self) -> ReplayCache:
        return ReplayCache(self.redis, "client_assertion_jti")

    async def issue_token(
        self, *, subject: str, token_use: str, ttl_s: int, claims: dict[str, Any]
    ) -> IssuedToken:
        issuer = TokenIssuer(
            await self.key_ring.signing_key(),
            issuer=self.settings.resolved_issuer,
            audience=self.settings.token_audience,
        )
        return issuer.issue(subject=subject, token_use=token_use, ttl_s=ttl_s, claims=claims)


def get_portal(request: Request) -> PortalContext:
    portal: PortalContext = request.app.state.portal
    return portal


PortalDep = Annotated[PortalContext, Depends(get_portal)]
