"""Tables of the pgw schema (owned by pgw alone)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from backend.core.models import service_metadata


class PgwBase(DeclarativeBase):
    metadata = service_metadata("pgw")
