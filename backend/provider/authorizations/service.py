"""Card authorizations: the decision, idempotency by reference, capture and void."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.database import after_commit
from backend.core.errors import Conflict, NotFound
from backend.core.models import utcnow
from backend.provider import catalogue
from backend.provider.authorizations.repository import AuthorizationRepository
from backend.provider.authorizations.schemas import (
    AuthorizationCreate,
    AuthorizationRead,
    CaptureRequest,
)
from backend.provider.context import ProviderContext
from backend.provider.ids import new_auth_code, new_id
from backend.provider.models import Authorization
from backend.provider.webhooks.service import webhook_service


def state_of(authorization: Authorization) -> str:
    if authorization.status == "declined":
        return "declined"
    if authorization.voided:
        return "voided"
    return "captured" if authorization.captured else "authorized"


def invalid_state(authorization: Authorization, action: str) -> Conflict:
    state = state_of(authorization)
    return Conflict(
        f"A {state} authorization cannot be {action}.",
        code="invalid_state",
        current_state=state,
    )


def authorization_data(authorization: Authorization) -> dict[str, Any]:
    return AuthorizationRead.model_validate(authorization).model_dump(mode="json")


@dataclass(frozen=True)
class _Presented:
    """What the provider keeps of a card: no PAN, CVV or PIN past this point."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str


def _present(body: AuthorizationCreate, provider: ProviderContext) -> _Presented:
    card = body.card
    return _Presented(
        brand=catalogue.brand_of(card.pan),
        last4=card.pan[-4:],
        exp_month=card.exp_month,
        exp_year=catalogue.normalise_exp_year(card.exp_year),
        fingerprint=catalogue.fingerprint(card.pan, provider.settings.provider_fingerprint_key),
    )


class AuthorizationService:
    async def get(
        self, session: AsyncSession, authorization_id: str, *, for_update: bool = False
    ) -> Authorization:
        authorization = await AuthorizationRepository(session).get(
            authorization_id, for_update=for_update
        )
        if authorization is None:
            raise NotFound(
                f"Authorization {authorization_id} does not exist.", code="authorization_not_found"
            )
        return authorization

    async def by_reference(self, session: AsyncSession, reference: str) -> Authorization:
        authorization = await AuthorizationRepository(session).by_reference(reference)
        if authorization is None:
            raise NotFound(
                f"No authorization with reference {reference} was received.",
                code="authorization_not_found",
            )
        return authorization

    def _replay(
        self, existing: Authorization, body: AuthorizationCreate, presented: _Presented
    ) -> Authorization:
        """The stored answer for a repeated reference; a different payment under it is refused."""
        if (existing.amount, existing.currency, existing.fingerprint) != (
            body.amount,
            body.currency,
            presented.fingerprint,
        ):
            raise Conflict(
                f"Reference {body.reference} was already used for a different payment.",
                code="reference_conflict",
            )
        return existing

    async def authorize(
        self, session: AsyncSession, provider: ProviderContext, body: AuthorizationCreate
    ) -> Authorization:
        repository = AuthorizationRepository(session)
        presented = _present(body, provider)
        existing = await repository.by_reference(body.reference)
        if existing is not None:
            return self._replay(existing, body, presented)

        now = utcnow()
        decision = catalogue.decide(
            pan=body.card.pan,
            exp_month=body.card.exp_month,
            exp_year=body.card.exp_year,
            pin=body.card.pin,
            amount=body.amount,
            today=now.date(),
        )
        approved = decision.approved
        captured = approved and body.capture
        values: dict[str, Any] = {
            "id": new_id("auth"),
            "reference": body.reference,
            "status": "approved" if approved else "declined",
            "decline_code": decision.decline_code,
            "auth_code": new_auth_code() if approved else None,
            "amount": body.amount,
            "currency": body.currency,
            "capture": body.capture,
            "entry_mode": body.entry_mode,
            "brand": presented.brand,
            "last4": presented.last4,
            "exp_month": presented.exp_month,
            "exp_year": presented.exp_year,
            "fingerprint": presented.fingerprint,
            "amount_authorized": body.amount if approved else 0,
            "amount_captured": body.amount if captured else 0,
            "amount_refunded": 0,
            "captured": captured,
            "voided": False,
            "merchant_id": body.merchant_id,
            "store_id": body.store_id,
            "terminal_id": body.terminal_id,
            "webhook_url": provider.webhook_url,
            "created_at": now,
            "captured_at": now if captured else None,
        }
        authorization = await repository.insert_unless_referenced(values)
        if authorization is None:
            # A concurrent request with the same reference won; its row is committed by now.
            raced = await repository.by_reference(body.reference)
            assert raced is not None
            return self._replay(raced, body, presented)

        await webhook_service.emit(
            session,
            type_=f"authorization.{authorization.status}",
            data=authorization_data(authorization),
            endpoint_url=authorization.webhook_url,
            reference=authorization.reference,
        )
        if decision.stall:
            # The charge is committed first; only then does the answer stall, so the caller
            # times out on a payment that did happen and must look it up by reference.
            delay_s = provider.config.timeout_delay_s
            after_commit(session, lambda: asyncio.sleep(delay_s))
        return authorization

    async def capture(
        self, session: AsyncSession, authorization_id: str, body: CaptureRequest
    ) -> Authorization:
        authorization = await self.get(session, authorization_id, for_update=True)
        if authorization.captured:
            raise Conflict(
                "The authorization was already captured; a capture happens once.",
                code="already_captured",
                current_state="captured",
            )
        if authorization.status != "approved" or authorization.voided:
            raise invalid_state(authorization, "captured")
        amount = authorization.amount_authorized if body.amount is None else body.amount
        if amount > authorization.amount_authorized:
            raise Conflict(
                f"Cannot capture {amount}: only {authorization.amount_authorized} is authorized.",
                code="capture_exceeds_authorized",
                amount_authorized=authorization.amount_authorized,
            )
        authorization.captured = True
        authorization.amount_captured = amount
        authorization.captured_at = utcnow()
        await session.flush()
        return authorization

    async def void(self, session: AsyncSession, authorization_id: str) -> Authorization:
        authorization = await self.get(session, authorization_id, for_update=True)
        if authorization.voided:
            return authorization  # voiding twice is harmless
        if authorization.status != "approved" or authorization.captured:
            raise invalid_state(authorization, "voided")
        authorization.voided = True
        authorization.voided_at = utcnow()
        await session.flush()
        return authorization


authorization_service = AuthorizationService()
