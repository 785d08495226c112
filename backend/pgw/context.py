"""What every pgw request can reach besides its database session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.settings import Settings
from backend.pgw.connectors.base import PaymentConnector
from backend.pgw.idempotency.service import IdempotencyService


@dataclass
class PgwContext:
    settings: Settings
    connector: PaymentConnector
    sessionmaker: async_sessionmaker[AsyncSession]
    idempotency: IdempotencyService
    # Key for hashing request bodies (they may hold a card number) in idempotency records.
    fingerprint_secret: bytes


def get_pgw(request: Request) -> PgwContext:
    context: PgwContext = request.app.state.pgw
    return context


PgwDep = Annotated[PgwContext, Depends(get_pgw)]
