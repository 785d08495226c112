from __future__ import annotations

import uuid

from sqlalchemy import select

from backend.core.repository import Repository
from backend.portal.models import Terminal


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
