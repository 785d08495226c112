"""HTTP adapter for the simulated acquirer (``backend/provider``, contract in docs/provider.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx

from backend.pgw.connectors.base import (
    Authorization,
    CardData,
    ProviderRefund,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    QrPayment,
)


def _authorization(body: dict[str, Any]) -> Authorization:
    return Authorization(
        provider_reference=str(body["id"]),
        approved=body["status"] == "approved",
        decline_code=body.get("decline_code"),
        auth_code=body.get("auth_code"),
        brand=body.get("brand"),
        last4=body.get("last4"),
        exp_month=body.get("exp_month"),
        exp_year=body.get("exp_year"),
        fingerprint=body.get("fingerprint"),
        captured=bool(body.get("captured")),
        amount_captured=int(body.get("amount_captured") or 0),
    )


def _qr(body: dict[str, Any]) -> QrPayment:
    expires = body.get("expires_at")
    return QrPayment(
        provider_reference=str(body["id"]),
        status=str(body["status"]),
        qr_payload=str(body.get("qr_payload", "")),
        expires_at=dt.datetime.fromisoformat(expires) if expires else None,
    )


class SimulatedProviderConnector:
    def __init__(
        self, http: httpx.AsyncClient, *, base_url: str, api_key: str, timeout_s: float
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.headers = {"authorization": f"Bearer {api_key}"}
        self.timeout_s = timeout_s

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        not_found_ok: bool = False,
    ) -> dict[str, Any] | None:
        try:
            response = await self.http.request(
                method,
                f"{self.base_url}{path}",
                json=json,
                headers=self.headers,
                timeout=self.timeout_s,
            )
        except httpx.TimeoutException as exc:
            # The request may have reached the provider: the outcome is unknown.
            raise ProviderTimeout(f"{method} {path} timed out") from exc
        except httpx.ConnectError as exc:
            raise ProviderUnavailable(f"{method} {path}: cannot connect") from exc
        except httpx.HTTPError as exc:
            raise ProviderTimeout(f"{method} {path}: {type(exc).__name__}") from exc
        if response.status_code == 404 and not_found_ok:
            return None
        if response.status_code in (502, 503):
            raise ProviderUnavailable(f"{method} {path}: {response.status_code}")
        if response.status_code >= 500:
            raise ProviderTimeout(f"{method} {path}: {response.status_code}")
        if response.status_code >= 400:
            body = response.json() if response.content else {}
            raise ProviderRejected(
                str(body.get("code", "provider_rejected")), str(body.get("detail", ""))
            )
        result: dict[str, Any] = response.json()
        return result

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
        card_body: dict[str, Any] = {
            "pan": card.pan,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
        }
        if card.cvv is not None:
            card_body["cvv"] = card.cvv
        if card.pin is not None:
            card_body["pin"] = card.pin
        body = await self._call(
            "POST",
            "/v1/authorizations",
            json={
                "reference": str(reference),
                "amount": amount,
                "currency": currency,
                "capture": capture,
                "entry_mode": entry_mode,
                "card": card_body,
                "merchant_id": str(merchant_id),
                "store_id": str(store_id),
                "terminal_id": str(terminal_id) if terminal_id else None,
            },
        )
        assert body is not None
        return _authorization(body)

    async def find_authorization(self, reference: uuid.UUID) -> Authorization | None:
        body = await self._call(
            "GET", f"/v1/authorizations/by-reference/{reference}", not_found_ok=True
        )
        return _authorization(body) if body is not None else None

    async def capture(self, provider_reference: str, amount: int) -> Authorization:
        body = await self._call(
            "POST", f"/v1/authorizations/{provider_reference}/capture", json={"amount": amount}
        )
        assert body is not None
        return _authorization(body)

    async def void(self, provider_reference: str) -> None:
        await self._call("POST", f"/v1/authorizations/{provider_reference}/void", json={})

    async def refund(
        self, provider_reference: str, *, reference: uuid.UUID, amount: int, qr: bool
    ) -> ProviderRefund:
        kind = "qr-payments" if qr else "authorizations"
        body = await self._call(
            "POST",
            f"/v1/{kind}/{provider_reference}/refunds",
            json={"reference": str(reference), "amount": amount},
        )
        assert body is not None
        return ProviderRefund(provider_reference=str(body["id"]), amount=int(body["amount"]))

    async def create_qr_payment(
        self,
        *,
        reference: uuid.UUID,
        amount: int,
        currency: str,
        merchant_id: uuid.UUID,
        store_id: uuid.UUID,
    ) -> QrPayment:
        body = await self._call(
            "POST",
            "/v1/qr-payments",
            json={
                "reference": str(reference),
                "amount": amount,
                "currency": currency,
                "merchant_id": str(merchant_id),
                "store_id": str(store_id),
            },
        )
        assert body is not None
        return _qr(body)

    async def find_qr_payment(self, reference: uuid.UUID) -> QrPayment | None:
        body = await self._call(
            "GET", f"/v1/qr-payments/by-reference/{reference}", not_found_ok=True
        )
        return _qr(body) if body is not None else None
