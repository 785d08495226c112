"""Payment tokens: issue, resolve (authentication) and the limits a token's holder works under.

A payment token (``pt_`` + 43 url-safe characters, 256 random bits) lets merchant web content in
the terminal's WebView take one payment without holding the terminal's credentials. Only its
SHA-256 is stored. Its holder acts as :attr:`Role.PAYMENT_TOKEN` at the issuing store, and the
payments code calls :func:`enforce_on_create`, :func:`enforce_on_payment` and
:func:`refuse_payment_token` so that it can create one payment (of the token's amount and
currency, when it names them), then read and cancel that payment only. See
docs/payment-tokens.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.auth import PAYMENT_TOKEN_PREFIX
from backend.core.authz import Principal, Role, TenantScope
from backend.core.errors import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from backend.core.ids import uuid7
from backend.core.models import utcnow
from backend.pgw.directory.service import directory_service
from backend.pgw.models import Payment, PaymentToken
from backend.pgw.payment_tokens.repository import PaymentTokenRepository
from backend.pgw.payment_tokens.schemas import PaymentTokenCreate
from backend.pgw.payments.repository import PaymentRepository
from backend.pgw.payments.schemas import PaymentCreate

PAYMENT_TOKEN_KIND = "payment_token"
_SECRET_BYTES = 32  # token_urlsafe(32): 43 characters
_TOKEN_PATTERN = re.compile(re.escape(PAYMENT_TOKEN_PREFIX) + r"[A-Za-z0-9_-]{43,128}")
# Who may issue: a terminal (device token) or a platform service (HMAC), never a person and
# never a payment token (which could otherwise extend its own life forever).
_ISSUER_KINDS = ("device", "service")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def new_token() -> str:
    return PAYMENT_TOKEN_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def _refused(code: str, detail: str) -> Unauthorized:
    return Unauthorized(detail, code=code)


def _permission_denied(detail: str) -> Forbidden:
    return Forbidden(detail, code="permission_denied")


def _payment_not_found(payment_id: uuid.UUID) -> NotFound:
    return NotFound(f"Payment {payment_id} does not exist.", code="payment_not_found")


@dataclass(frozen=True)
class IssuedToken:
    token: str
    row: PaymentToken


class PaymentTokenService:
    async def issue(
        self,
        session: AsyncSession,
        principal: Principal,
        body: PaymentTokenCreate,
        *,
        ttl_s: int,
    ) -> IssuedToken:
        if principal.kind not in _ISSUER_KINDS:
            raise _permission_denied(
                "Payment tokens are issued to a terminal's device token or a platform service."
            )
        store_id = principal.scope.store_id or body.store_id
        if principal.scope.store_id is not None and body.store_id not in (
            None,
            principal.scope.store_id,
        ):
            raise Unprocessable("store_id differs from the caller's store.", code="store_mismatch")
        amount, currency = body.amount, body.currency
        if body.payment_id is not None:
            payment = await PaymentRepository(session, principal.scope).get(body.payment_id)
            if payment is None or store_id not in (None, payment.store_id):
                raise _payment_not_found(body.payment_id)
            store_id = payment.store_id
            _check_matches(amount, currency, payment.amount, payment.currency, tip_amount=0)
            amount, currency = payment.amount, payment.currency
        elif amount is not None and currency is None:
            raise Unprocessable(
                "A token that names an amount names its currency too.", code="currency_required"
            )
        if store_id is None:
            raise Unprocessable(
                "Say which store the token is for (store_id or X-MPAC-Store-Id).",
                code="store_required",
            )
        point = await directory_service.paying_point(
            session, principal.scope, store_id, principal.terminal_id
        )
        token = new_token()
        now = utcnow()
        row = PaymentToken(
            id=uuid7(now),
            token_hash=hash_token(token),
            psp_id=point.psp_id,
            merchant_id=point.merchant_id,
            store_id=point.store_id,
            terminal_id=point.terminal_id,
            payment_id=body.payment_id,
            amount=amount,
            currency=currency,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=ttl_s),
        )
        await PaymentTokenRepository(session).add(row)
        return IssuedToken(token, row)

    async def resolve(
        self, sessionmaker: async_sessionmaker[AsyncSession], token: str
    ) -> Principal:
        """The principal a presented ``pt_`` token stands for, or 401 (or 403) saying why not."""
        if not _TOKEN_PATTERN.fullmatch(token):
            raise _refused("payment_token_invalid", "The payment token is not valid.")
        async with sessionmaker() as session:
            row = await PaymentTokenRepository(session).by_hash(hash_token(token))
            row, scope = await self._usable(session, row)
        return Principal(
            kind=PAYMENT_TOKEN_KIND,
            subject_id=row.id,
            role=Role.PAYMENT_TOKEN,
            scope=scope,
            token_id=str(row.id),
            payment_token_id=row.id,
            payment_token_terminal_id=row.terminal_id,
            expires_at=row.expires_at,
        )

    async def recheck(self, session: AsyncSession, principal: Principal) -> None:
        """Refuse, as :meth:`resolve` would now, a token accepted earlier (for long requests)."""
        token_id = require_payment_token(principal)
        await self._usable(session, await PaymentTokenRepository(session).by_id(token_id))

    async def _usable(
        self, session: AsyncSession, row: PaymentToken | None
    ) -> tuple[PaymentToken, TenantScope]:
        if row is None:
            raise _refused("payment_token_invalid", "The payment token is not valid.")
        if row.revoked_at is not None:
            raise _refused("payment_token_revoked", "The payment token was revoked.")
        if row.expires_at <= utcnow():
            raise _refused("payment_token_expired", "The payment token has expired.")
        scope = TenantScope(psp_id=row.psp_id, merchant_id=row.merchant_id, store_id=row.store_id)
        # A store or terminal suspended since issuance stops its tokens at once (403).
        await directory_service.paying_point(session, scope, row.store_id, row.terminal_id)
        return row, scope

    async def current(self, session: AsyncSession, principal: Principal) -> PaymentToken:
        token_id = require_payment_token(principal)
        row = await PaymentTokenRepository(session).by_id(token_id)
        if row is None:  # deleted under a live request
            raise _refused("payment_token_invalid", "The payment token is not valid.")
        return row

    async def revoke(self, session: AsyncSession, principal: Principal) -> None:
        await PaymentTokenRepository(session).revoke(require_payment_token(principal), utcnow())


payment_token_service = PaymentTokenService()


def require_payment_token(principal: Principal) -> uuid.UUID:
    if principal.payment_token_id is None:
        raise Forbidden(
            "This route is for a payment token's holder (Authorization: Bearer pt_…).",
            code="payment_token_required",
        )
    return principal.payment_token_id


def _check_matches(
    want_amount: int | None,
    want_currency: str | None,
    amount: int,
    currency: str,
    *,
    tip_amount: int,
) -> None:
    if want_currency is not None and currency != want_currency:
        raise Unprocessable(
            f"The payment token is for {want_currency}, not {currency}.",
            code="payment_token_currency_mismatch",
            token_currency=want_currency,
        )
    if want_amount is not None and amount != want_amount:
        raise Unprocessable(
            f"The payment token is for an amount of {want_amount}, not {amount}.",
            code="payment_token_amount_mismatch",
            token_amount=want_amount,
        )
    if want_amount is not None and tip_amount:
        raise Unprocessable(
            f"The payment token fixes the amount at {want_amount}; a tip would charge more.",
            code="payment_token_amount_mismatch",
            token_amount=want_amount,
        )


# --- limits applied by the payments code ------------------------------------------------------


async def enforce_on_create(
    session: AsyncSession, principal: Principal, body: PaymentCreate, payment_id: uuid.UUID
) -> None:
    """Before a new payment is written: one payment per token, of the token's amount.

    Binds the token to ``payment_id`` in ``session``'s transaction, the one that writes the
    payment, so the binding and the payment commit together. The row lock makes a concurrent
    second create with the same token wait, then see the binding and be refused.
    """
    if principal.payment_token_id is None:
        return
    row = await PaymentTokenRepository(session).by_id(principal.payment_token_id, for_update=True)
    if row is None:
        raise _refused("payment_token_invalid", "The payment token is not valid.")
    if row.payment_id is not None:
        raise Conflict(
            f"This payment token is bound to payment {row.payment_id} and cannot create "
            "another payment; ask for a new token.",
            code="payment_token_used",
            payment_id=str(row.payment_id),
        )
    _check_matches(row.amount, row.currency, body.amount, body.currency, tip_amount=body.tip_amount)
    row.payment_id = payment_id
    await session.flush()


async def enforce_on_payment(session: AsyncSession, principal: Principal, payment: Payment) -> None:
    """A payment token sees only its own payment; any other is as missing as one that is not."""
    if principal.payment_token_id is None:
        return
    bound = await PaymentTokenRepository(session).bound_payment(principal.payment_token_id)
    if bound != payment.id:
        raise _payment_not_found(payment.id)


def refuse_payment_token(principal: Principal, action: str) -> None:
    """For what the payment-token role's permissions allow in general but a token may not do."""
    if principal.payment_token_id is not None:
        raise _permission_denied(f"A payment token cannot {action}.")
