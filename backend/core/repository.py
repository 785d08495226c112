"""Repository bases: the only place SQL is written, and the place tenancy is applied."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.authz import TenantScope, apply_tenant_scope

ModelT = TypeVar("ModelT")


class Repository(Generic[ModelT]):
    model: type[ModelT]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, instance: ModelT) -> ModelT:
        self.session.add(instance)
        await self.session.flush()
        return instance


class TenantRepository(Repository[ModelT]):
    """Every read is filtered by the caller's scope; there is no unscoped query method."""

    def __init__(self, session: AsyncSession, scope: TenantScope) -> None:
        super().__init__(session)
        self.scope = scope

    def scoped(self, statement: Select[Any] | None = None) -> Select[Any]:
        return apply_tenant_scope(
            statement if statement is not None else select(self.model), self.model, self.scope
        )

    async def get(self, id_: uuid.UUID, *, for_update: bool = False) -> ModelT | None:
        statement = self.scoped().where(self.model.id == id_)  # type: ignore[attr-defined]
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list(self, statement: Select[Any] | None = None) -> Sequence[ModelT]:
        return (await self.session.execute(self.scoped(statement))).scalars().all()

    async def page(
        self, statement: Select[Any] | None = None, *, limit: int, after: uuid.UUID | None
    ) -> tuple[Sequence[ModelT], uuid.UUID | None]:
        """Keyset pagination by id: stable under inserts, no OFFSET scans."""
        id_column = self.model.id  # type: ignore[attr-defined]
        statement = self.scoped(statement).order_by(id_column).limit(limit + 1)
        if after is not None:
            statement = statement.where(id_column > after)
        rows = (await self.session.execute(statement)).scalars().all()
        next_cursor = rows[limit - 1].id if len(rows) > limit else None
        return rows[:limit], next_cursor
