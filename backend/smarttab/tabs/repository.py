from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, delete, func, select, true, update

from backend.core.repository import TenantRepository
from backend.smarttab.models import Tab, TabItem, TabPart, TabPaymentAttempt, TabRefund


class TabRepository(TenantRepository[Tab]):
    model = Tab

    def _in_scope(self) -> ColumnElement[bool]:
        """The caller's scope as a WHERE clause, for the UPDATE that claims a version."""
        clause: ColumnElement[bool] = true()
        for level, value in self.scope.ids().items():
            column = Tab.__tenant_columns__.get(level)
            if column is not None:
                clause = clause & (getattr(Tab, column) == value)
        return clause

    async def claim_version(self, tab_id: uuid.UUID, expected: int) -> int | None:
        """``UPDATE ... SET version = version + 1 WHERE version = :expected``: the new version,
        or None when another writer got there first. The row stays locked until commit, so a
        concurrent claim of the same version waits, then finds the version moved on."""
        statement = (
            update(Tab)
            .where(Tab.id == tab_id, Tab.version == expected, self._in_scope())
            .values(version=Tab.version + 1, updated_at=func.now())
            .returning(Tab.version)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def current_version(self, tab_id: uuid.UUID) -> int | None:
        statement = self.scoped(select(Tab.version)).where(Tab.id == tab_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def search(
        self,
        *,
        status: str | None,
        store_id: uuid.UUID | None,
        created_from: dt.datetime | None,
        after: uuid.UUID | None,
        limit: int,
    ) -> tuple[Sequence[Tab], uuid.UUID | None]:
        statement = select(Tab)
        if status is not None:
            statement = statement.where(Tab.status == status)
        if store_id is not None:
            statement = statement.where(Tab.store_id == store_id)
        if created_from is not None:
            statement = statement.where(Tab.created_at >= created_from)
        return await self.page(statement, limit=limit, after=after)


class TabItemRepository(TenantRepository[TabItem]):
    model = TabItem

    async def for_tab(self, tab_id: uuid.UUID) -> Sequence[TabItem]:
        return await self.list(
            select(TabItem).where(TabItem.tab_id == tab_id).order_by(TabItem.position)
        )

    async def remove(self, item: TabItem) -> None:
        await self.session.execute(
            delete(TabItem).where(TabItem.id == item.id, TabItem.tab_id == item.tab_id)
        )
        self.session.expunge(item)


class TabPartRepository(TenantRepository[TabPart]):
    model = TabPart

    async def for_generation(self, tab_id: uuid.UUID, generation: int) -> Sequence[TabPart]:
        return await self.list(
            select(TabPart)
            .where(TabPart.tab_id == tab_id, TabPart.generation == generation)
            .order_by(TabPart.number)
        )


class TabPaymentAttemptRepository(TenantRepository[TabPaymentAttempt]):
    model = TabPaymentAttempt

    async def latest_for(self, parts: Sequence[TabPart]) -> dict[uuid.UUID, TabPaymentAttempt]:
        """Each part's latest attempt (the one numbered ``part.attempts``)."""
        wanted = {(part.id, part.attempts) for part in parts if part.attempts > 0}
        if not wanted:
            return {}
        rows = await self.list(
            select(TabPaymentAttempt).where(
                TabPaymentAttempt.part_id.in_([part_id for part_id, _ in wanted])
            )
        )
        return {row.part_id: row for row in rows if (row.part_id, row.number) in wanted}


class TabRefundRepository(TenantRepository[TabRefund]):
    model = TabRefund

    async def for_tab(self, tab_id: uuid.UUID) -> Sequence[TabRefund]:
        return await self.list(
            select(TabRefund)
            .where(TabRefund.tab_id == tab_id)
            .order_by(TabRefund.created_at, TabRefund.id)
        )
