from __future__ import annotations

import datetime as dt
import functools
import uuid
import zoneinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


@functools.cache
def _iana_time_zones() -> frozenset[str]:
    # ZoneInfo() opens any TZif file of the zoneinfo tree, including the host's own "localtime"
    # and the leap-second and POSIX copies ("right/...", "posix/...", "posixrules"): names that
    # are no IANA zone and would give another local time than the one they suggest.
    return frozenset(zoneinfo.available_timezones() - {"localtime"})


def _known_timezone(value: str) -> str:
    if value not in _iana_time_zones():
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


class StoreCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merchant_id: uuid.UUID
    name: str = Field(min_length=1, max_length=200)
    timezone: str = Field(default="Asia/Tokyo", max_length=64)

    _tz = field_validator("timezone")(_known_timezone)


class StoreUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    status: Literal["active", "closed"] | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _known_timezone(value)


class StoreRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    psp_id: uuid.UUID
    merchant_id: uuid.UUID
    name: str
    timezone: str
    status: str
    created_at: dt.datetime
