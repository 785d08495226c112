"""smarttab's calls to the payment gateway, HMAC-signed as ``smarttab`` (docs/s2s-auth.md).

Every call names the tab's merchant and store in the signed tenant headers, so pgw scopes it to
that store. Answers come back as plain values or one of two exceptions:

* :class:`GatewayRefused`: pgw answered with a problem (4xx); nothing was done by that request.
* :class:`GatewayUnavailable`: no usable answer (connection error, timeout, 5xx). The request
  may or may not have taken effect, so the caller treats the outcome as unknown and asks again
  with the same Idempotency-Key (pgw then replays or resumes it, never charges twice).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from backend.core.hmac_signing import signed_client, tenant_headers
from backend.core.settings import Settings

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class GatewayPayment:
    id: uuid.UUID
    status: str
    amount: int
    tip_amount: int
    amount_captured: int
    amount_refunded: int
    failure_code: str | None
    failure_message: str | None
    qr_payload: str | None
    reference: str | None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> GatewayPayment:
        return cls(
            id=uuid.UUID(str(body["id"])),
            status=str(body["status"]),
            amount=int(body["amount"]),
            tip_amount=int(body.get("tip_amount") or 0),
            amount_captured=int(body.get("amount_captured") or 0),
            amount_refunded=int(body.get("amount_refunded") or 0),
            failure_code=body.get("failure_code"),
            failure_message=body.get("failure_message"),
            qr_payload=body.get("qr_payload"),
            reference=body.get("reference"),
        )


@dataclass(frozen=True)
class GatewayRefund:
    id: uuid.UUID
    amount: int
    status: str
    payment: GatewayPayment


class GatewayError(Exception):
    pass


class GatewayRefused(GatewayError):
    """pgw answered 4xx with a problem: the request was not carried out."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"pgw refused ({status} {code}): {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class GatewayUnavailable(GatewayError):
    """No usable answer: the outcome is unknown."""


def _refused(response: httpx.Response) -> GatewayRefused:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return GatewayRefused(
        response.status_code,
        str(body.get("code") or "gateway_refused"),
        str(body.get("detail") or response.reason_phrase),
    )


class PgwClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> PgwClient:
        # Longer than pgw waits for the provider, so a slow provider shows up as pgw's
        # 202 "processing" rather than as a timeout here.
        timeout = httpx.Timeout(settings.pgw_provider_timeout_s + 10.0, connect=5.0)
        return cls(signed_client(settings, "smarttab", settings.url_of("pgw"), timeout=timeout))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        merchant_id: uuid.UUID,
        store_id: uuid.UUID,
        key: str | None = None,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = tenant_headers(merchant_id, store_id)
        if key is not None:
            headers[IDEMPOTENCY_HEADER] = key
        try:
            response = await self._client.request(
                method, path, headers=headers, json=json, params=params
            )
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"pgw did not answer: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise GatewayUnavailable(f"pgw answered {response.status_code}")
        if response.status_code >= 400:
            raise _refused(response)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise GatewayUnavailable("pgw answered with a body that is not JSON") from exc
        if not isinstance(body, dict):
            raise GatewayUnavailable("pgw answered with an unexpected body")
        return body

    async def create_payment(
        self, *, merchant_id: uuid.UUID, store_id: uuid.UUID, key: str, body: dict[str, Any]
    ) -> GatewayPayment:
        """``POST /v1/payments``: 201 (final) or 202 (processing) both give the payment."""
        response = await self._send(
            "POST", "/v1/payments", merchant_id=merchant_id, store_id=store_id, key=key, json=body
        )
        try:
            return GatewayPayment.from_json(self._json(response))
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayUnavailable("pgw answered with an unexpected payment") from exc

    async def get_payment(
        self, *, merchant_id: uuid.UUID, store_id: uuid.UUID, payment_id: uuid.UUID
    ) -> GatewayPayment:
        response = await self._send(
            "GET", f"/v1/payments/{payment_id}", merchant_id=merchant_id, store_id=store_id
        )
        try:
            return GatewayPayment.from_json(self._json(response))
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayUnavailable("pgw answered with an unexpected payment") from exc

    async def find_payment(
        self, *, merchant_id: uuid.UUID, store_id: uuid.UUID, reference: str
    ) -> GatewayPayment | None:
        """The payment pgw holds under ``reference`` (one attempt's), if any."""
        response = await self._send(
            "GET",
            "/v1/payments",
            merchant_id=merchant_id,
            store_id=store_id,
            params={"reference": reference, "limit": "2"},
        )
        try:
            items = self._json(response)["items"]
            payments = [GatewayPayment.from_json(item) for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayUnavailable("pgw answered with an unexpected page") from exc
        return payments[0] if payments else None

    async def refund(
        self,
        *,
        merchant_id: uuid.UUID,
        store_id: uuid.UUID,
        payment_id: uuid.UUID,
        key: str,
        amount: int,
        reason: str | None,
    ) -> GatewayRefund:
        body: dict[str, Any] = {"amount": amount}
        if reason:
            body["reason"] = reason
        response = await self._send(
            "POST",
            f"/v1/payments/{payment_id}/refunds",
            merchant_id=merchant_id,
            store_id=store_id,
            key=key,
            json=body,
        )
        try:
            result = self._json(response)
            refund = result["refund"]
            return GatewayRefund(
                id=uuid.UUID(str(refund["id"])),
                amount=int(refund["amount"]),
                status=str(refund["status"]),
                payment=GatewayPayment.from_json(result["payment"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayUnavailable("pgw answered with an unexpected refund") from exc
