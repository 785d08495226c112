"""UUIDv7 (RFC 9562): time-ordered ids whose timestamp locates a row's monthly partition."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid


def uuid7(at: dt.datetime | None = None) -> uuid.UUID:
    millis = int((at.timestamp() if at else time.time()) * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 68) & 0xFFF) << 64
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def uuid7_time(value: uuid.UUID) -> dt.datetime:
    """When a UUIDv7 was made (millisecond precision, UTC)."""
    if value.version != 7:
        raise ValueError("not a UUIDv7")
    return dt.datetime.fromtimestamp((value.int >> 80) / 1000, tz=dt.UTC)
