"""Monthly range partitions of ``payments`` and ``payment_events``, created ahead of time.

The service creates the partitions for the previous month through ``months_ahead`` months at
start-up and once a day after; a DEFAULT partition (made by the migration) only catches rows if
that ever failed, and must stay empty, since PostgreSQL cannot add a range partition whose rows
already sit in the default one.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

PARTITIONED_TABLES = ("payments", "payment_events")


def _month_start(year: int, month: int) -> dt.date:
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return dt.date(year, month, 1)


def months_to_cover(today: dt.date, *, months_back: int, months_ahead: int) -> list[dt.date]:
    return [
        _month_start(today.year, today.month + offset)
        for offset in range(-months_back, months_ahead + 1)
    ]


async def ensure_partitions(
    engine: AsyncEngine,
    *,
    today: dt.date | None = None,
    months_back: int = 1,
    months_ahead: int = 3,
) -> list[str]:
    """Create missing monthly partitions; returns the names of those it created."""
    today = today or dt.datetime.now(dt.UTC).date()
    created: list[str] = []
    async with engine.begin() as connection:
        await connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('pgw.partitions'))"))
        for table in PARTITIONED_TABLES:
            for start in months_to_cover(today, months_back=months_back, months_ahead=months_ahead):
                end = _month_start(start.year, start.month + 1)
                name = f"{table}_y{start.year}m{start.month:02d}"
                exists = await connection.scalar(
                    text("SELECT to_regclass(:name) IS NOT NULL"), {"name": f"pgw.{name}"}
                )
                if exists:
                    continue
                await connection.execute(
                    text(
                        f'CREATE TABLE pgw."{name}" PARTITION OF pgw."{table}" '
                        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                    )
                )
                created.append(name)
    return created
