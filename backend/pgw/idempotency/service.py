"""``Idempotency-Key`` handling (IETF draft-ietf-httpapi-idempotency-key-header, Stripe's rules).

The claim is an INSERT into a table with a unique (merchant, operation, key) constraint,
committed before the operation runs: of N concurrent identical requests exactly one inserts and
executes, the others see its row and answer 409 (still running) or replay its stored response.
The resource id (payment or refund id) is fixed in the claim, so a retry after a crash or a
provider timeout resumes the same resource instead of creating a second one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.errors import BadRequest, Conflict, Unprocessable
from backend.core.ids import uuid7
from backend.core.models import utcnow
from backend.pgw.idempotency.repository import IdempotencyRepository

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY_MAX_LENGTH = 255


@dataclass(frozen=True)
class IdempotentRequest:
    merchant_id: uuid.UUID
    operation: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Claim:
    request: IdempotentRequest
    resource_id: uuid.UUID
    # Set when an earlier identical request completed: answer with it, do not execute.
    replay_status: int | None = None
    replay_body: dict[str, Any] | None = None
    # The resource id was just minted (a first request, or a key past its retention): nothing
    # can exist under it yet, so the operation need not look for an earlier attempt.
    fresh: bool = False

    @property
    def is_replay(self) -> bool:
        return self.replay_status is not None


def require_key(raw: str | None) -> str:
    if raw is None or not raw.strip():
        raise BadRequest(
            f"This operation moves money: send an {IDEMPOTENCY_HEADER} header (for example a "
            "UUID) and reuse it when you retry.",
            code="idempotency_key_required",
        )
    key = raw.strip()
    if len(key) > _KEY_MAX_LENGTH or not key.isprintable():
        raise BadRequest(
            f"{IDEMPOTENCY_HEADER} must be 1-{_KEY_MAX_LENGTH} printable characters.",
            code="idempotency_key_invalid",
        )
    return key


def request_fingerprint(secret: bytes, caller: str, method: str, path: str, body: Any) -> str:
    """Keyed hash of who asked what: the body may hold a card number, so a plain hash won't do.

    The caller is part of it, so a key reused by another terminal or token of the same merchant
    is refused (422) instead of handing that caller the first one's response.
    """
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    message = f"{caller}\n{method}\n{path}\n{canonical}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class IdempotencyService:
    def __init__(self, *, retention_s: int, stale_after_s: int) -> None:
        self.retention_s = retention_s
        self.stale_after_s = stale_after_s

    async def claim(
        self, sessionmaker: async_sessionmaker[AsyncSession], request: IdempotentRequest
    ) -> Claim:
        now = utcnow()
        async with sessionmaker() as session, session.begin():
            repository = IdempotencyRepository(session)
            resource_id = uuid7()
            if await repository.try_insert(
                merchant_id=request.merchant_id,
                operation=request.operation,
                key=request.key,
                fingerprint=request.fingerprint,
                resource_id=resource_id,
                expires_at=now + dt.timedelta(seconds=self.retention_s),
            ):
                return Claim(request, resource_id, fresh=True)
            existing = await repository.lock(request.merchant_id, request.operation, request.key)
            assert existing is not None  # rows are never deleted before they expire
            if existing.expires_at <= now:
                existing.request_fingerprint = request.fingerprint
                existing.resource_id = resource_id
                existing.expires_at = now + dt.timedelta(seconds=self.retention_s)
                existing.state, existing.locked_at = "in_progress", now
                existing.response_status = existing.response_body = None
                return Claim(request, resource_id, fresh=True)
            if not hmac.compare_digest(existing.request_fingerprint, request.fingerprint):
                raise Unprocessable(
                    f"{IDEMPOTENCY_HEADER} {request.key!r} was used for a different request.",
                    code="idempotency_key_reused",
                )
            if existing.state == "completed":
                return Claim(
                    request,
                    existing.resource_id,
                    replay_status=existing.response_status,
                    replay_body=existing.response_body,
                )
            stale = existing.locked_at <= now - dt.timedelta(seconds=self.stale_after_s)
            if existing.state == "resumable" or stale:
                existing.state, existing.locked_at = "in_progress", now
                return Claim(request, existing.resource_id)
            raise Conflict(
                "An identical request with this Idempotency-Key is still being processed; "
                "retry shortly.",
                code="idempotency_request_in_progress",
                headers={"Retry-After": "1"},
            )

    async def complete(
        self, session: AsyncSession, claim: Claim, status: int, body: dict[str, Any]
    ) -> None:
        """Store the response in the operation's own transaction: both land or neither."""
        await IdempotencyRepository(session).finish(
            claim.request.merchant_id,
            claim.request.operation,
            claim.request.key,
            state="completed",
            response_status=status,
            response_body=body,
        )

    async def release(self, sessionmaker: async_sessionmaker[AsyncSession], claim: Claim) -> None:
        """The operation did not complete: a retry with the same key may resume it."""
        async with sessionmaker() as session, session.begin():
            await IdempotencyRepository(session).finish(
                claim.request.merchant_id,
                claim.request.operation,
                claim.request.key,
                state="resumable",
            )
