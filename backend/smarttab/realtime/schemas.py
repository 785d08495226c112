from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=500)


class NoticeOut(BaseModel):
    store_id: str
    seq: int
    event: str
    data: dict[str, Any]


class StreamStats(BaseModel):
    """This process's view: each smarttab process counts only its own sockets."""

    pid: int
    connections: int
    stores: int
    connections_per_store: dict[str, int]
    connections_total: int
    messages_received: int
    events_sent_live: int
    events_replayed: int
    resyncs: int
    redis_reconnects: int
    closes: dict[str, int]
