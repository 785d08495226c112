from __future__ import annotations

from sqlalchemy import select

from backend.core.repository import Repository
from backend.portal.models import Psp


class PspRepository(Repository[Psp]):
    """PSPs are created by the platform operator (CLI), never through a tenant's API."""

    model = Psp

    async def by_name(self, name: str) -> Psp | None:
        statement = select(Psp).where(Psp.name == name).order_by(Psp.created_at).limit(1)
        return (await self.session.execute(statement)).scalar_one_or_none()
