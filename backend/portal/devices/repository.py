from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from backend.core.models import utcnow
from backend.core.repository import Repository
from backend.portal.models import Terminal, UsedClientAssertion


class DeviceCredentialRepository(Repository[Terminal]):
    """Finds a terminal from what a not-yet-authenticated device presents (code or client_id)."""

    model = Terminal

    async def by_activation_code_hash(self, code_hash: str) -> Terminal | None:
        statement = (
            select(Terminal).where(Terminal.activation_code_hash == code_hash).with_for_update()
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def by_client_id(self, client_id: uuid.UUID) -> Terminal | None:
        return await self.session.get(Terminal, client_id)


class UsedAssertionRepository(Repository[UsedClientAssertion]):
    model = UsedClientAssertion

    async def claim(self, terminal_id: uuid.UUID, jti: str, *, expires_at: dt.datetime) -> bool:
        """Record ``jti`` as used by ``terminal_id``; False when it already was (a replay)."""
        await self.session.execute(
            delete(UsedClientAssertion).where(
                UsedClientAssertion.terminal_id == terminal_id,
                UsedClientAssertion.expires_at < utcnow(),
            )
        )
        inserted = await self.session.execute(
            insert(UsedClientAssertion)
            .values(terminal_id=terminal_id, jti=jti, expires_at=expires_at)
            .on_conflict_do_nothing()
            .returning(UsedClientAssertion.jti)
        )
        return inserted.scalar_one_or_none() is not None
