from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select, update

from backend.core.repository import Repository
from backend.pgw.models import PaymentToken


class PaymentTokenRepository(Repository[PaymentToken]):
    """Finds a token from what a not-yet-authenticated caller presents, so it is not scoped:
    the token itself is the credential, and its row names the tenant."""

    model = PaymentToken

    async def by_hash(self, token_hash: str) -> PaymentToken | None:
        statement = select(PaymentToken).where(PaymentToken.token_hash == token_hash)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def by_id(self, token_id: uuid.UUID, *, for_update: bool = False) -> PaymentToken | None:
        statement = select(PaymentToken).where(PaymentToken.id == token_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def bound_payment(self, token_id: uuid.UUID) -> uuid.UUID | None:
        statement = select(PaymentToken.payment_id).where(PaymentToken.id == token_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def revoke(self, token_id: uuid.UUID, now: dt.datetime) -> None:
        await self.session.execute(
            update(PaymentToken)
            .where(PaymentToken.id == token_id, PaymentToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
