"""Events older than the retention are purged from the log (and were already not replayed)."""

from __future__ import annotations

import asyncpg
import httpx

from backend.core.database import create_engine, create_sessionmaker
from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from backend.smarttab.realtime.lifespan import purge_once
from tests.backend.smarttab.realtime.conftest import StoreDevices
from tests.helpers import asyncpg_dsn, run
from tests.support.realtime import record_events, store_scope


async def _seqs(settings: Settings, store_id: str) -> list[int]:
    connection = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        rows = await connection.fetch(
            "SELECT seq FROM smarttab.store_events WHERE store_id = $1::uuid ORDER BY seq",
            store_id,
        )
        return [row["seq"] for row in rows]
    finally:
        await connection.close()


async def _backdate(settings: Settings, store_id: str, through_seq: int, seconds: int) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        await connection.execute(
            "UPDATE smarttab.store_events SET created_at = now() - make_interval(secs => $3)"
            " WHERE store_id = $1::uuid AND seq <= $2",
            store_id,
            through_seq,
            seconds,
        )
    finally:
        await connection.close()


async def _purge(settings: Settings) -> int:
    engine = create_engine(settings, application_name="tests-purge")
    try:
        return await purge_once(create_sessionmaker(engine), settings)
    finally:
        await engine.dispose()


def test_the_purge_deletes_only_events_older_than_the_retention(
    platform: PlatformThread,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    tenant = devices.tenant
    store = tenant.store_a_id
    record_events(test_settings, store_scope(tenant.psp_id, tenant.merchant_id, store), 4)
    retention = test_settings.store_event_retention_s
    run(_backdate(test_settings, store, 2, retention + 60))
    assert run(_purge(test_settings)) >= 2
    assert run(_seqs(test_settings, store)) == [3, 4]
    # Numbering goes on where it was: the sequence is not the table.
    more = record_events(test_settings, store_scope(tenant.psp_id, tenant.merchant_id, store), 1)
    assert more == [5]
