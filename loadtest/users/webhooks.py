"""``WebhookBurstUser``: the acquirer (``backend/provider``) delivering signed webhooks to pgw.

The simulated provider sends pgw an ``authorization.approved`` event for every card
authorization it approves (``docs/provider.md``, *Webhooks*), signed
``Provider-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">`` with each configured
secret, delivered at least once. pgw verifies the signature, stores the event id exactly once
and applies it to the payment (``ignored_in_captured`` for a payment already captured by the
synchronous answer, ``duplicate`` for a redelivery).

This user sends such events, signed with ``--webhook-secret`` (pgw's
``MPAC_PROVIDER_WEBHOOK_SECRETS``), for payments the device users of the same process made
(or, with no device users, the latest payments of a fleet terminal's store), and redelivers
``--webhook-duplicate-ratio`` of them. Two modes:

- steady (``--webhook-burst 0``): one event every ``--webhook-interval`` seconds;
- burst (``--webhook-burst N``): N events at once, ``--webhook-burst-concurrency`` in flight,
  every ``--webhook-burst-interval`` seconds: the provider flushing its retry queue after an
  outage, or a settlement run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
import time
from collections import deque
from typing import Any

import gevent.pool
from locust import task
from locust.contrib.fasthttp import FastHttpUser

from loadtest.users.common import LoadContext, bearer, call, context_of

WEBHOOK_PATH = "/v1/provider/webhooks"
SIGNATURE_HEADER = "Provider-Signature"
ACCEPTED_OUTCOMES_PREFIXES = ("applied_", "ignored_", "duplicate", "unknown_payment")


def signature_header(secrets_: tuple[str, ...], timestamp: int, body: bytes) -> str:
    """``t=…,v1=…`` exactly as ``backend/provider/webhooks/signing.py`` computes it."""
    parts = [f"t={timestamp}"]
    signed = str(timestamp).encode() + b"." + body
    parts += [
        f"v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}" for secret in secrets_
    ]
    return ",".join(parts)


def authorization_event(payment: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """The provider's ``authorization.approved`` event for an approved, captured payment."""
    created = int(time.time() if now is None else now)
    amount = int(payment.get("amount", 0)) + int(payment.get("tip_amount", 0))
    return {
        "id": f"evt_lt{secrets.token_hex(12)}",
        "type": "authorization.approved",
        "created": created,
        "data": {
            "id": f"auth_lt{secrets.token_hex(12)}",
            "reference": payment["id"],
            "status": "approved",
            "decline_code": None,
            "auth_code": secrets.token_hex(3).upper(),
            "brand": payment.get("brand", "visa"),
            "last4": payment.get("last4", "4242"),
            "exp_month": 12,
            "exp_year": 2030,
            "amount": amount,
            "currency": payment.get("currency", "JPY"),
            "amount_authorized": amount,
            "amount_captured": amount,
            "amount_refunded": 0,
            "captured": True,
            "voided": False,
            "capture": True,
            "entry_mode": "contactless",
            "merchant_id": payment.get("merchant_id"),
            "store_id": payment.get("store_id"),
            "terminal_id": payment.get("terminal_id"),
        },
    }


class WebhookBurstUser(FastHttpUser):
    """The provider's webhook sender (steady or in bursts)."""

    # A fixed count, set from --portal-users / --webhook-users by the locustfile.
    fixed_count = 0
    network_timeout = 30.0
    connection_timeout = 10.0
    host = "http://127.0.0.1"
    # A burst needs several connections at once.
    concurrency = 32

    ctx: LoadContext

    def wait_time(self) -> float:
        config = self.ctx.config
        if config.webhook_burst > 0:
            return config.webhook_burst_interval.sample()
        return config.webhook_interval.sample()

    def on_start(self) -> None:
        self.ctx = context_of(self.environment)
        self.terminal = self.ctx.next_terminal()
        self.sent: deque[bytes] = deque(maxlen=200)
        self.fallback: list[dict[str, Any]] = []

    def _payments(self, count: int) -> list[dict[str, Any]]:
        pool = list(self.ctx.recent_payments) or self.fallback or self._fetch_payments()
        if not pool:
            return []
        return [random.choice(pool) for _ in range(count)]  # noqa: S311

    def _fetch_payments(self) -> list[dict[str, Any]]:
        """No device users here: the store's latest captured payments, read as its terminal."""
        config = self.ctx.config
        token = call(
            self.client,
            "POST",
            f"{config.portal_url}/oauth2/token",
            name="/oauth2/token",
            form=self.ctx.identity(self.terminal).token_form(),
        )
        if not isinstance(token, dict):
            return []
        page = call(
            self.client,
            "GET",
            f"{config.pgw_url}/v1/payments",
            name="/v1/payments",
            headers=bearer(str(token["access_token"])),
            params={"status": "captured", "limit": "100"},
        )
        items = page.get("items", []) if isinstance(page, dict) else []
        self.fallback = [
            {
                "id": item["id"],
                "amount": item["amount"],
                "tip_amount": item.get("tip_amount", 0),
                "currency": item["currency"],
                "brand": (item.get("card") or {}).get("brand", "visa"),
                "last4": (item.get("card") or {}).get("last4", "4242"),
                "merchant_id": item.get("merchant_id"),
                "store_id": item.get("store_id"),
                "terminal_id": item.get("terminal_id"),
            }
            for item in items
        ]
        return self.fallback

    def deliver(self, body: bytes) -> None:
        config = self.ctx.config
        header = signature_header(config.webhook_secrets, int(time.time()), body)
        with self.client.request(
            "POST",
            f"{config.pgw_url}{WEBHOOK_PATH}",
            name=WEBHOOK_PATH,
            # ASCII JSON (json.dumps escapes the rest): the bytes sent are the bytes signed.
            data=body.decode("ascii"),
            headers={"content-type": "application/json", SIGNATURE_HEADER: header},
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                if response.status_code:
                    response.failure(f"{response.status_code} {response.text[:100]}")
                return
            try:
                outcome = str(json.loads(response.text or "{}").get("outcome", ""))
            except ValueError:
                outcome = ""
            if outcome.startswith(ACCEPTED_OUTCOMES_PREFIXES):
                response.success()
            else:
                response.failure(f"unexpected outcome {outcome!r}")

    def _next_body(self, payment: dict[str, Any]) -> bytes:
        if self.sent and random.random() < self.ctx.config.webhook_duplicate_ratio:  # noqa: S311
            return random.choice(self.sent)  # noqa: S311 - at least once: a redelivery
        body = json.dumps(authorization_event(payment), separators=(",", ":")).encode()
        self.sent.append(body)
        return body

    @task
    def send(self) -> None:
        config = self.ctx.config
        count = config.webhook_burst if config.webhook_burst > 0 else 1
        payments = self._payments(count)
        if not payments:
            return
        bodies = [self._next_body(payment) for payment in payments]
        if len(bodies) == 1:
            self.deliver(bodies[0])
            return
        group = gevent.pool.Pool(config.webhook_burst_concurrency)
        for body in bodies:
            group.spawn(self.deliver, body)
        group.join()
