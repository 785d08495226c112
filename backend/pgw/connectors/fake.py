"""An in-memory acquirer for tests that must control exactly what the provider knows."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace

from backend.pgw.connectors.base import (
    Authorization,
    CardData,
    ProviderRefund,
    ProviderRejected,
    ProviderTimeout,
    QrPayment,
)


class FakeConnector:
    """Approves every card (last4 from the PAN) unless told otherwise; no network, no webhooks.

    ``unreachable`` makes every call time out, as a provider that stopped answering would.
    """

    def __init__(self) -> None:
        self.authorizations: dict[uuid.UUID, Authorization] = {}
        self.qr_payments: dict[uuid.UUID, QrPayment] = {}
        self.refunds: dict[uuid.UUID, ProviderRefund] = {}
        self.unreachable = False
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.unreachable:
            raise ProviderTimeout(f"fake provider unreachable ({name})")

    def charged(
        self,
        reference: uuid.UUID,
        *,
        amount: int,
        captured: bool = True,
        brand: str = "visa",
        last4: str = "4242",
    ) -> Authorization:
        """Record that the provider charged ``reference`` (its answer having been lost)."""
        authorization = Authorization(
            provider_reference=f"fake_{reference.hex[:12]}",
            approved=True,
            decline_code=None,
            auth_code="A1B2C3",
            brand=brand,
            last4=last4,
            exp_month=12,
            exp_year=2030,
            fingerprint="fake-fingerprint",
            captured=captured,
            amount_captured=amount if captured else 0,
        )
        self.authorizations[reference] = authorization
        return authorization

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
    ) -> Authorization:
        self._call("authorize")
        if reference not in self.authorizations:
            self.charged(reference, amount=amount, captured=capture, last4=card.pan[-4:])
        return self.authorizations[reference]

    async def find_authorization(self, reference: uuid.UUID) -> Authorization | None:
        self._call("find_authorization")
        return self.authorizations.get(reference)

    async def capture(self, provider_reference: str, amount: int) -> Authorization:
        self._call("capture")
        for reference, authorization in self.authorizations.items():
            if authorization.provider_reference == provider_reference:
                self.authorizations[reference] = replace(
                    authorization, captured=True, amount_captured=amount
                )
                return self.authorizations[reference]
        raise ProviderRejected("authorization_not_found", provider_reference)

    async def void(self, provider_reference: str) -> None:
        self._call("void")

    async def refund(
        self, provider_reference: str, *, reference: uuid.UUID, amount: int, qr: bool
    ) -> ProviderRefund:
        self._call("refund")
        return self.refunds.setdefault(
            reference, ProviderRefund(f"fake_re_{reference.hex[:12]}", amount)
        )

    async def create_qr_payment(
        self,
        *,
        reference: uuid.UUID,
        amount: int,
        currency: str,
        merchant_id: uuid.UUID,
        store_id: uuid.UUID,
    ) -> QrPayment:
        self._call("create_qr_payment")
        return self.qr_payments.setdefault(
            reference,
            QrPayment(
                provider_reference=f"fake_qr_{reference.hex[:12]}",
                status="pending",
                qr_payload=f"mpacqr://pay/fake_{reference.hex[:12]}",
                expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
            ),
        )

    async def find_qr_payment(self, reference: uuid.UUID) -> QrPayment | None:
        self._call("find_qr_payment")
        return self.qr_payments.get(reference)
