"""Periodic background work inside a service process, stopped with the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def periodic(
    name: str, interval_s: float, work: Callable[[], Awaitable[object]]
) -> AsyncIterator[None]:
    """Run ``work`` every ``interval_s`` while the context is open; a failing run is logged and
    the next one still happens, so one bad row or a database restart does not end the loop."""

    async def loop() -> None:
        while True:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("background task %s failed; retrying in %.1f s", name, interval_s)
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(loop(), name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
