"""Starts the process's stream hub and the event retention purge with the smarttab app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.background import periodic
from backend.core.settings import Settings
from backend.observability.metrics import service_metrics
from backend.smarttab.realtime.hub import StreamHub
from backend.smarttab.realtime.service import purge_expired_events

logger = logging.getLogger(__name__)

PURGE_BATCH = 5000


async def purge_once(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Delete every event older than the retention, one committed batch at a time."""
    total = 0
    while True:
        async with sessionmaker() as session, session.begin():
            deleted = await purge_expired_events(
                session, retention_s=settings.store_event_retention_s, batch=PURGE_BATCH
            )
        total += deleted
        if deleted < PURGE_BATCH:
            break
    if total:
        logger.info(
            "purged %d store events older than %d s", total, settings.store_event_retention_s
        )
    return total


@asynccontextmanager
async def realtime(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    hub = StreamHub(settings.redis_url)
    await hub.start()
    app.state.stream_hub = hub
    metrics, source = service_metrics("smarttab"), hub.metrics
    metrics.add_source("websockets", source)

    async def purge() -> None:
        await purge_once(app.state.sessionmaker, settings)

    try:
        async with periodic("smarttab-event-purge", settings.store_event_purge_interval_s, purge):
            yield
    finally:
        metrics.remove_source("websockets", source)
        await hub.stop()
