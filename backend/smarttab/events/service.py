"""Store events: numbered in the writer's transaction, published to Redis after it commits."""

from __future__ import annotations

import json
import uuid
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.authz import TenantScope
from backend.core.database import after_commit
from backend.observability.tracing import TRACEPARENT, current_traceparent
from backend.smarttab.events.repository import StoreEventRepository
from backend.smarttab.models import StoreEvent


def store_channel(store_id: uuid.UUID) -> str:
    return f"smarttab:store:{store_id}"


def event_message(event: StoreEvent) -> dict[str, Any]:
    """The JSON a device receives for one event (live or replayed)."""
    return {
        "type": "event",
        "seq": event.seq,
        "store_id": str(event.store_id),
        "event": event.event_type,
        "data": event.data,
        "at": event.created_at.isoformat() if event.created_at else None,
    }


async def record_event(
    session: AsyncSession,
    redis: Redis,
    scope: TenantScope,
    event_type: str,
    data: dict[str, Any],
) -> StoreEvent:
    """Number and store an event for ``scope``'s store; publish it once the session commits.

    Call it in the transaction that makes the change (the request's ``SessionDep``, which runs
    after-commit effects). If the process dies between commit and publish, nothing is lost: a
    device notices the gap in ``seq`` or reconnects, and replays from the table.
    """
    if scope.store_id is None or scope.merchant_id is None:
        raise ValueError("store events belong to one store")
    repository = StoreEventRepository(session)
    event = StoreEvent(
        store_id=scope.store_id,
        seq=await repository.next_seq(scope.store_id),
        psp_id=scope.psp_id,
        merchant_id=scope.merchant_id,
        event_type=event_type,
        data=data,
    )
    await repository.add(event)
    await session.refresh(event, attribute_names=["created_at"])

    async def publish() -> None:
        message = event_message(event)
        # Live pushes carry the trace of the change that made them (docs/observability.md);
        # replayed events, read back from the table, do not.
        traceparent = current_traceparent()
        if traceparent is not None:
            message[TRACEPARENT] = traceparent
        await redis.publish(store_channel(event.store_id), json.dumps(message))

    after_commit(session, publish)
    return event
