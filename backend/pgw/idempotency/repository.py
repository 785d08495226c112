from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from backend.core.repository import Repository
from backend.pgw.models import IdempotencyKey


class IdempotencyRepository(Repository[IdempotencyKey]):
    model = IdempotencyKey

    async def try_insert(
        self,
        *,
        merchant_id: uuid.UUID,
        operation: str,
        key: str,
        fingerprint: str,
        resource_id: uuid.UUID,
        expires_at: dt.datetime,
    ) -> bool:
        """Insert the claim; False when the (merchant, operation, key) row already exists."""
        statement = (
            insert(IdempotencyKey)
            .values(
                merchant_id=merchant_id,
                operation=operation,
                key=key,
                request_fingerprint=fingerprint,
                resource_id=resource_id,
                state="in_progress",
                expires_at=expires_at,
            )
            .on_conflict_do_nothing(index_elements=["merchant_id", "operation", "key"])
            .returning(IdempotencyKey.id)
        )
        return (await self.session.execute(statement)).first() is not None

    async def lock(self, merchant_id: uuid.UUID, operation: str, key: str) -> IdempotencyKey | None:
        statement = (
            select(IdempotencyKey)
            .where(
                IdempotencyKey.merchant_id == merchant_id,
                IdempotencyKey.operation == operation,
                IdempotencyKey.key == key,
            )
            .with_for_update()
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def finish(
        self,
        merchant_id: uuid.UUID,
        operation: str,
        key: str,
        *,
        state: str,
        response_status: int | None = None,
        response_body: dict[str, Any] | None = None,
    ) -> None:
        await self.session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.merchant_id == merchant_id,
                IdempotencyKey.operation == operation,
                IdempotencyKey.key == key,
            )
            .values(state=state, response_status=response_status, response_body=response_body)
        )
