from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class DeliveryAttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt_no: int
    redelivery: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    at: dt.datetime


class WebhookEventRead(BaseModel):
    id: str
    type: str
    reference: str | None
    refund_reference: str | None
    created: int
    created_at: dt.datetime
    status: Literal["pending", "delivered", "failed"]
    endpoint_url: str
    # Every attempt so far (scheduled ones and redeliveries), oldest first.
    delivery_count: int
    attempts: list[DeliveryAttemptRead]
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    data: dict[str, Any]


class RedeliveryRead(BaseModel):
    event: WebhookEventRead
    attempt: DeliveryAttemptRead
