from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: dt.datetime
    event_type: str
    outcome: str
    actor_type: str
    actor_id: str | None
    psp_id: uuid.UUID | None
    merchant_id: uuid.UUID | None
    store_id: uuid.UUID | None
    target_type: str | None
    target_id: str | None
    reason: str | None
    request_id: str | None
    client_ip: str | None
    detail: dict[str, Any]


class AuditEventPage(BaseModel):
    items: list[AuditEventRead]
    next_before_id: int | None
