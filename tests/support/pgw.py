"""Synchronous drivers for the payment gateway and the simulated provider, for tests and steps."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from backend.core.hmac_signing import HmacAuth
from backend.core.settings import Settings
from tests.support.portal import EnrolledTerminal, Tenant, bearer, build_tenant, enroll_terminal

APPROVED_VISA = "4242424242424242"
GENERIC_DECLINE = "4000000000000002"


def card_payment(
    pan: str = APPROVED_VISA,
    *,
    amount: int = 1200,
    currency: str = "JPY",
    entry_mode: str = "contactless",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": currency,
        "method": "card_present",
        "entry_mode": entry_mode,
        "card": {"pan": pan, "exp_month": 12, "exp_year": 2030, **extra.pop("card", {})},
        **extra,
    }


def qr_payment(*, amount: int = 800, currency: str = "JPY", **extra: Any) -> dict[str, Any]:
    return {"amount": amount, "currency": currency, "method": "qr_wallet", **extra}


def service_client(settings: Settings, caller: str, base_url: str) -> httpx.Client:
    """A client whose requests are HMAC-signed as another platform service."""
    return httpx.Client(
        base_url=base_url, auth=HmacAuth.from_settings(settings, caller), timeout=10
    )


def provider_api(settings: Settings) -> httpx.Client:
    return httpx.Client(
        base_url=settings.provider_url,
        headers={"authorization": f"Bearer {settings.provider_api_key}"},
        timeout=10,
    )


def wait_until(
    predicate: Any, *, timeout_s: float = 10.0, interval_s: float = 0.05, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def wait_for_directory(
    settings: Settings, *, store_id: str, terminal_id: str | None = None, status: str = "active"
) -> None:
    """Block until pgw has received the portal's sync of the store (and terminal)."""
    with service_client(settings, "smarttab", settings.url_of("pgw")) as pgw:

        def synced() -> bool:
            store = pgw.get(f"/internal/v1/directory/stores/{store_id}")
            if store.status_code != 200 or store.json()["status"] != "active":
                return False
            if terminal_id is None:
                return True
            terminal = pgw.get(f"/internal/v1/directory/terminals/{terminal_id}")
            return terminal.status_code == 200 and terminal.json()["status"] == status

        wait_until(synced, what=f"pgw to learn store {store_id} / terminal {terminal_id}")


@dataclass
class PayingTerminal:
    """A tenant with an enrolled terminal in store A that pgw knows about, and its token."""

    tenant: Tenant
    terminal: EnrolledTerminal
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)

    def pay(
        self, pgw: httpx.Client, body: dict[str, Any], *, key: str | None = None
    ) -> httpx.Response:
        return pgw.post(
            "/v1/payments",
            json=body,
            headers={**self.headers, "Idempotency-Key": key or uuid.uuid4().hex},
        )

    def post(
        self,
        pgw: httpx.Client,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        key: str | None = None,
    ) -> httpx.Response:
        return pgw.post(
            path, json=body, headers={**self.headers, "Idempotency-Key": key or uuid.uuid4().hex}
        )


def paying_terminal(
    settings: Settings, portal: httpx.Client, tenant: Tenant | None = None
) -> PayingTerminal:
    tenant = tenant or build_tenant(settings, portal)
    terminal = enroll_terminal(portal, tenant.admin, tenant.store_a_id)
    wait_for_directory(settings, store_id=tenant.store_a_id, terminal_id=terminal.terminal_id)
    return PayingTerminal(tenant, terminal, terminal.fresh_token(portal))


def wait_for_status(
    pgw: httpx.Client,
    headers: dict[str, str],
    payment_id: str,
    statuses: Iterable[str],
    *,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    wanted = set(statuses)

    def reached() -> dict[str, Any] | None:
        payment = pgw.get(f"/v1/payments/{payment_id}", headers=headers).json()
        return payment if payment.get("status") in wanted else None

    result: dict[str, Any] = wait_until(
        reached, timeout_s=timeout_s, what=f"payment {payment_id} to reach {sorted(wanted)}"
    )
    return result


def simulate_qr(settings: Settings, payment_id: str, outcome: str) -> dict[str, Any]:
    """What the customer's wallet app does with the QR code (paid, declined, expired)."""
    with provider_api(settings) as provider:
        return simulate_qr_with(provider, payment_id, outcome)


def simulate_qr_with(provider: httpx.Client, payment_id: str, outcome: str) -> dict[str, Any]:
    """:func:`simulate_qr` through a provider client that carries the API key."""
    qr = provider.get(f"/v1/qr-payments/by-reference/{payment_id}")
    assert qr.status_code == 200, qr.text
    response = provider.post(
        f"/v1/qr-payments/{qr.json()['id']}/simulate", json={"outcome": outcome}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def close_settlement(
    pgw: httpx.Client,
    headers: dict[str, str],
    body: dict[str, Any] | None = None,
    *,
    key: str | None = None,
) -> httpx.Response:
    """``POST /v1/settlements/close`` (end-of-day close); a device closes itself by default."""
    return pgw.post(
        "/v1/settlements/close",
        json=body or {},
        headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )


def refund(
    pgw: httpx.Client,
    headers: dict[str, str],
    payment_id: str,
    amount: int | None = None,
    *,
    key: str | None = None,
) -> httpx.Response:
    """``POST /v1/payments/{id}/refunds``; ``amount`` None refunds all that is left."""
    return pgw.post(
        f"/v1/payments/{payment_id}/refunds",
        json={} if amount is None else {"amount": amount},
        headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )
