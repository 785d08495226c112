from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select, update

from backend.core.repository import Repository
from backend.portal.models import SigningKeyRecord


class SigningKeyRepository(Repository[SigningKeyRecord]):
    model = SigningKeyRecord

    async def published(self) -> Sequence[SigningKeyRecord]:
        statement = (
            select(SigningKeyRecord)
            .where(SigningKeyRecord.status.in_(("active", "retiring")))
            .order_by(SigningKeyRecord.created_at.desc())
        )
        return (await self.session.execute(statement)).scalars().all()

    async def lock_active(self) -> SigningKeyRecord | None:
        statement = (
            select(SigningKeyRecord).where(SigningKeyRecord.status == "active").with_for_update()
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def retire_retiring_before(self, cutoff: dt.datetime, *, now: dt.datetime) -> None:
        await self.session.execute(
            update(SigningKeyRecord)
            .where(SigningKeyRecord.status == "retiring", SigningKeyRecord.retired_at < cutoff)
            .values(status="retired")
        )
