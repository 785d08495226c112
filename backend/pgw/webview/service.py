"""What the WebView SDK needs beyond the payments API: the QR code as SVG, and a payment stream.

The stream (server-sent events) polls the payment rather than listening on Redis: pgw publishes
nothing when a payment changes, and a status moves in several places (the request that created
it, the provider's webhook, the reconciler's own transactions), so a publish would have to be
added to each and would still be lost with a crashed process; a poll of one row by primary key
(one partition, the id carries its month) every half second cannot miss a change and costs a
few milliseconds. Each poll uses its own short session: nothing is held open between polls.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import segno
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.authz import Principal
from backend.core.errors import Conflict, Problem, Unauthorized
from backend.core.models import utcnow
from backend.pgw.models import Payment
from backend.pgw.payment_tokens.service import payment_token_service
from backend.pgw.payments.schemas import PaymentRead
from backend.pgw.payments.service import payment_service
from backend.pgw.payments.states import PaymentStatus

logger = logging.getLogger(__name__)
S = PaymentStatus

# Statuses in which the page still waits for something to happen; any other one is the end of
# the page's story (captured, authorized for a later capture, declined, failed, expired, …).
WAITING_STATUSES = frozenset({S.PENDING, S.PROCESSING, S.REQUIRES_ACTION})


class QrNotAvailable(Conflict):
    code, title = "qr_not_available", "No QR code to show"


def qr_svg(payment: Payment, *, scale: int) -> str:
    """The QR code the customer's wallet scans, for a QR payment that is still waiting."""
    if payment.status != S.REQUIRES_ACTION.value or not payment.qr_payload:
        detail = (
            "A card payment has no QR code."
            if payment.method != "qr_wallet"
            else f"The QR payment is {payment.status}: there is no code to scan."
        )
        raise QrNotAvailable(detail, current_status=payment.status, method=payment.method)
    # Medium error correction: survives a scratched screen or a glare without a bigger code.
    code = segno.make(payment.qr_payload, error="m")
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        scale=scale,
        border=4,  # the quiet zone scanners need
        dark="#000",
        light="#fff",  # an opaque background: scannable on a dark page too
        xmldecl=False,
        omitsize=True,  # a viewBox, so CSS can size it …
        svgclass=None,
        lineclass=None,
        title="Payment QR code",
    )
    size = code.symbol_size(scale=scale, border=4)[0]
    # … and an intrinsic size for an <img> that CSS does not size.
    return (
        out.getvalue().decode("ascii").replace("<svg ", f'<svg width="{size}" height="{size}" ', 1)
    )


@dataclass(frozen=True)
class StreamLimits:
    poll_interval_s: float
    heartbeat_s: float
    max_duration_s: float


def sse_event(event: str, data: str, *, event_id: str | None = None) -> str:
    """One server-sent event; ``data`` must be a single line (compact JSON is)."""
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines += [f"event: {event}", f"data: {data}"]
    return "\n".join(lines) + "\n\n"


HEARTBEAT = ": heartbeat\n\n"


def _problem_event(problem: Problem, instance: str) -> str:
    return sse_event("error", json.dumps(problem.body(instance), separators=(",", ":")))


def _credential_expired(principal: Principal) -> Problem:
    if principal.payment_token_id is not None:
        return Unauthorized("The payment token has expired.", code="payment_token_expired")
    return Unauthorized("The access token has expired.", code="token_expired")


class PaymentStream:
    """``event: status`` now and at every change of one payment, until it stops waiting.

    Ends when the payment reaches a status outside :data:`WAITING_STATUSES`; when the caller's
    token is no longer good, with an ``error`` event carrying the problem a request would get
    (payment tokens are rechecked at every poll, so a revocation shows within a poll; any
    token's expiry ends the stream on time); or after ``max_duration_s``, silently (the client
    reconnects or polls).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        principal: Principal,
        first: Payment,
        *,
        read: Callable[[Payment], PaymentRead],
        limits: StreamLimits,
        instance: str,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._principal = principal
        self._payment_id: uuid.UUID = first.id
        self._first = first
        self._read = read
        self._limits = limits
        self._instance = instance

    def _status_event(self, payment: Payment) -> str:
        return sse_event(
            "status", self._read(payment).model_dump_json(), event_id=str(payment.version)
        )

    async def _poll(self) -> Payment:
        async with self._sessionmaker() as session:
            if self._principal.payment_token_id is not None:
                await payment_token_service.recheck(session, self._principal)
            return await payment_service.get(session, self._principal, self._payment_id)

    def _credential_deadline(self) -> float | None:
        """Monotonic time at which the caller's token expires, if it does."""
        expires_at = self._principal.expires_at
        if expires_at is None:
            return None
        remaining = (expires_at - utcnow()).total_seconds()
        return time.monotonic() + max(0.0, remaining)

    async def events(self) -> AsyncIterator[str]:
        limits = self._limits
        started = time.monotonic()
        end_at = started + limits.max_duration_s
        credential_end = self._credential_deadline()
        payment = self._first
        yield self._status_event(payment)
        last_version, last_sent = payment.version, started
        while PaymentStatus(payment.status) in WAITING_STATUSES:
            now = time.monotonic()
            if credential_end is not None and now >= credential_end:
                yield _problem_event(_credential_expired(self._principal), self._instance)
                return
            if now >= end_at:
                yield ": the stream's time is up; reconnect or poll\n\n"
                return
            wake = min(now + limits.poll_interval_s, end_at)
            if credential_end is not None:
                wake = min(wake, credential_end)
            await asyncio.sleep(max(0.0, wake - now))
            try:
                payment = await self._poll()
            except Problem as problem:
                yield _problem_event(problem, self._instance)
                return
            except Exception:
                # The answer has started: a 500 can no longer be sent, so say it in the stream.
                logger.exception("payment stream %s failed", self._payment_id)
                failure = Problem(
                    "An unexpected error occurred; it has been logged.",
                    code="internal_error",
                    status=500,
                    title="Internal server error",
                )
                yield _problem_event(failure, self._instance)
                return
            now = time.monotonic()
            if payment.version != last_version:
                yield self._status_event(payment)
                last_version, last_sent = payment.version, now
            elif now - last_sent >= limits.heartbeat_s:
                yield HEARTBEAT
                last_sent = now
