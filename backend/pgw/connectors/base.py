"""The acquirer boundary: what the gateway needs from a payment provider, and nothing more.

``SimulatedProviderConnector`` talks to the simulated acquirer over HTTP; a real acquirer plugs
in by implementing :class:`PaymentConnector`. Card data passes through and is never kept.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class CardData:
    """Sensitive authentication data; its repr never shows it, so no log line can."""

    pan: str = field(repr=False)
    exp_month: int
    exp_year: int
    cvv: str | None = field(default=None, repr=False)
    pin: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"CardData(last4={self.pan[-4:]}, exp={self.exp_month:02d}/{self.exp_year})"

    __str__ = __repr__


@dataclass(frozen=True)
class Authorization:
    provider_reference: str
    approved: bool
    decline_code: str | None
    auth_code: str | None
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    fingerprint: str | None
    captured: bool
    amount_captured: int


@dataclass(frozen=True)
class ProviderRefund:
    provider_reference: str
    amount: int


@dataclass(frozen=True)
class QrPayment:
    provider_reference: str
    status: str  # pending | paid | declined | expired
    qr_payload: str
    expires_at: dt.datetime | None


class ProviderError(Exception):
    """Base of what a connector raises; the gateway maps each to a payment outcome."""


class ProviderTimeout(ProviderError):
    """No answer in time: the provider may or may not have acted (outcome unknown)."""


class ProviderUnavailable(ProviderError):
    """The provider said it did not process the request; nothing happened there."""


class ProviderRejected(ProviderError):
    """The provider refused the operation (state, amount); ``code`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class PaymentConnector(Protocol):
    async def authorize(
        self,
        *,
        reference: uuid.UUID,
        amount: int,
        currency: str,
        capture: bool,
        entry_mode: str,
        card: CardData,
        merchant_id: uuid.UUID,
        store_id: uuid.UUID,
        terminal_id: uuid.UUID | None,
    ) -> Authorization: ...

    async def find_authorization(self, reference: uuid.UUID) -> Authorization | None: ...

    async def capture(self, provider_reference: str, amount: int) -> Authorization: ...

    async def void(self, provider_reference: str) -> None: ...

    async def refund(
        self, provider_reference: str, *, reference: uuid.UUID, amount: int, qr: bool
    ) -> ProviderRefund: ...

    async def create_qr_payment(
        self,
        *,
        reference: uuid.UUID,
        amount: int,
        currency: str,
        merchant_id: uuid.UUID,
        store_id: uuid.UUID,
    ) -> QrPayment: ...

    async def find_qr_payment(self, reference: uuid.UUID) -> QrPayment | None: ...
