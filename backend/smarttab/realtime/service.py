"""Rules of the real-time channel: who may stream, what a reconnecting device is replayed, notices.

Nothing here touches a socket: the session (``session.py``) calls these and sends what they say.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.auth import TOKEN_USE_DEVICE, TOKEN_USE_USER, principal_from_claims
from backend.core.authz import Permission, Principal
from backend.core.models import utcnow
from backend.core.tokens import InvalidToken, TokenVerifier
from backend.smarttab.events.service import event_message, record_event
from backend.smarttab.models import StoreEvent
from backend.smarttab.realtime import protocol
from backend.smarttab.realtime.protocol import Close, CloseCode
from backend.smarttab.realtime.repository import EventRetentionRepository, StreamRepository

NOTICE_EVENT = "store.notice"


class StreamRefused(Exception):
    """The socket must be closed with ``close`` (bad token, wrong scope...)."""

    def __init__(self, close: Close) -> None:
        super().__init__(f"{close.code}: {close.reason}")
        self.close = close


@dataclass(frozen=True, slots=True)
class StreamIdentity:
    """Who a socket belongs to, and until when its token lets it stay open."""

    principal: Principal
    token_exp: int
    # The token's exp plus the verifiers' clock-skew leeway: as long as the token would still be
    # accepted on a new connection, and not a second longer.
    closes_at: float

    @property
    def store_id(self) -> uuid.UUID:
        store_id = self.principal.scope.store_id
        if store_id is None:  # authenticate_stream refuses these
            raise ValueError("a stream identity is store-scoped")
        return store_id

    def describe(self) -> dict[str, Any]:
        principal = self.principal
        return {
            "kind": principal.kind,
            "id": str(principal.subject_id),
            "role": principal.role.value,
            "terminal_id": str(principal.terminal_id) if principal.terminal_id else None,
        }


async def authenticate_stream(
    verifier: TokenVerifier, token: str, *, leeway_s: int
) -> StreamIdentity:
    """Verify a bearer token for the stream: a device token or a store-level user's token."""
    try:
        claims = await verifier.verify(token, token_uses=(TOKEN_USE_DEVICE, TOKEN_USE_USER))
        principal = principal_from_claims(claims)
    except InvalidToken as exc:
        raise StreamRefused(
            Close(CloseCode.UNAUTHORIZED, f"invalid token ({exc.reason}): {exc.detail}")
        ) from exc
    if principal.scope.store_id is None:
        raise StreamRefused(
            Close(
                CloseCode.FORBIDDEN,
                "the stream is per store: use a device token or a store-level user's token",
            )
        )
    if not principal.can(Permission.TAB_READ):
        raise StreamRefused(
            Close(CloseCode.FORBIDDEN, f"role {principal.role.value} may not read the stream")
        )
    exp = int(claims["exp"])
    return StreamIdentity(principal=principal, token_exp=exp, closes_at=float(exp + leeway_s))


def check_reauth(current: StreamIdentity, renewed: StreamIdentity) -> None:
    """A reauth extends the session of the same terminal (or user) in the same store only."""
    old, new = current.principal, renewed.principal
    if (old.kind, old.subject_id, old.scope) != (new.kind, new.subject_id, new.scope):
        raise StreamRefused(
            Close(
                CloseCode.FORBIDDEN,
                "reauth must carry a token of the same terminal (or user) and store",
            )
        )


@dataclass(slots=True)
class CatchUp:
    """What to send to bring a socket from its cursor up to date."""

    cursor: int
    events: list[str] = field(default_factory=list)
    resync: dict[str, Any] | None = None


async def read_head(sessionmaker: async_sessionmaker[AsyncSession], principal: Principal) -> int:
    async with sessionmaker() as session:
        return await StreamRepository(session, principal.scope).head()


async def catch_up(
    sessionmaker: async_sessionmaker[AsyncSession],
    principal: Principal,
    *,
    cursor: int,
    through: int | None,
    limit: int,
    retention_s: int,
) -> CatchUp:
    """The stored events after ``cursor`` (up to ``through``, default the store's head).

    Either all of them, contiguous, at most ``limit`` and none older than the retention, or a
    ``resync_required`` and the head to continue from: a device must never apply event n+1
    without event n.
    """
    not_before = utcnow() - dt.timedelta(seconds=retention_s)
    async with sessionmaker() as session:
        repository = StreamRepository(session, principal.scope)
        head = await repository.head()
        target = head if through is None else through
        if cursor <= head:
            if target <= cursor:
                return CatchUp(cursor=cursor)
            if target - cursor <= limit:
                rows = await repository.between(
                    after=cursor, through=target, not_before=not_before, limit=limit
                )
                # Numbers are gapless, so a full count means every event is there, in order.
                if len(rows) == target - cursor:
                    return CatchUp(cursor=target, events=[_wire(row) for row in rows])
        # Too old, too many, purged, or a cursor from the future (the client's last_seq is
        # beyond the store's head, e.g. after a database restore).
        oldest = await repository.oldest_retained(not_before=not_before)
    message = protocol.resync_required(last_seq=cursor, oldest_seq=oldest, head_seq=head)
    return CatchUp(cursor=head, resync=message)


def _wire(event: StoreEvent) -> str:
    # The same JSON the writer published to Redis, so replayed and live events look alike.
    return json.dumps(event_message(event))


async def post_notice(
    session: AsyncSession, redis: Redis, principal: Principal, text: str
) -> StoreEvent:
    """A short message from a terminal or store user to every device of its store."""
    data = {
        "text": text,
        "from": {
            "kind": principal.kind,
            "id": str(principal.subject_id),
            "role": principal.role.value,
        },
    }
    return await record_event(session, redis, principal.scope, NOTICE_EVENT, data)


async def purge_expired_events(session: AsyncSession, *, retention_s: int, batch: int) -> int:
    """Delete one batch of events older than the retention; the caller commits and loops."""
    cutoff = utcnow() - dt.timedelta(seconds=retention_s)
    return await EventRetentionRepository(session).purge_before(cutoff, limit=batch)
