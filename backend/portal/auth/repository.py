from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select, update

from backend.core.repository import Repository
from backend.portal.models import RefreshToken, User


class CredentialRepository(Repository[User]):
    """Looks users up by e-mail before anyone is authenticated, so it cannot be tenant-scoped."""

    model = User

    async def by_email(self, email: str) -> User | None:
        statement = select(User).where(func.lower(User.email) == email.lower())
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def by_id(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)


class RefreshTokenRepository(Repository[RefreshToken]):
    model = RefreshToken

    async def by_secret_hash_for_update(self, secret_hash: str) -> RefreshToken | None:
        statement = (
            select(RefreshToken).where(RefreshToken.secret_hash == secret_hash).with_for_update()
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def revoke_family(self, family_id: uuid.UUID, *, reason: str, now: dt.datetime) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
