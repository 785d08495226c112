"""Tables of the smarttab schema (owned by smarttab alone)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from backend.core.models import service_metadata


class SmartTabBase(DeclarativeBase):
    metadata = service_metadata("smarttab")
