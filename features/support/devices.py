"""A terminal's identity at the HTTP level: its own key pair, enrolled at the portal, asking
for device tokens with signed assertions (private_key_jwt) and calling pgw with them.

Scenarios about device authentication use it to do what a terminal's software never does on
purpose — send the same assertion twice, pay with an expired token — and payments the Credit
Card App does not take (a QR wallet payment: the emulated terminal takes cards only). The
drivers of ``tests/support/portal.py`` and ``tests/support/tokens.py`` do the work.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from features.support.deployment import Deployment
from features.support.world import Store
from tests.support.portal import EnrolledTerminal, bearer, enroll_terminal, token_form
from tests.support.tokens import forge, published_signing_keys, unverified_parts


@dataclass
class Device:
    """An enrolled terminal driven by hand: ``name`` as the scenario calls it."""

    name: str
    deployment: Deployment
    enrolled: EnrolledTerminal
    store: Store
    last_assertion: str | None = None
    last_response: httpx.Response | None = field(default=None, repr=False)

    @classmethod
    def enroll(cls, deployment: Deployment, store: Store, name: str) -> Device:
        """Registered, enrolled with a new key, and known to pgw as active."""
        enrolled = enroll_terminal(deployment.portal, deployment.admin, store.id)
        device = cls(name, deployment, enrolled, store)

        def probe() -> httpx.Response:
            # A payment token moves no money; pgw checks the directory for it.
            return deployment.pgw.post(
                "/v1/payment-tokens",
                json={},
                headers=bearer(enrolled.fresh_token(deployment.portal)),
            )

        deployment.wait_for_terminal(store.id, enrolled.terminal_id, probe=probe)
        return device

    @property
    def terminal_id(self) -> str:
        return self.enrolled.terminal_id

    # -- tokens ---------------------------------------------------------------------------------

    def new_assertion(self) -> str:
        return self.enrolled.key.assertion(self.terminal_id, self.enrolled.token_endpoint)

    def ask_for_token(self, assertion: str | None = None) -> httpx.Response:
        """``POST /oauth2/token`` with ``assertion`` (default: a fresh one)."""
        self.last_assertion = assertion or self.new_assertion()
        self.last_response = self.deployment.portal.post(
            "/oauth2/token", data=token_form(self.last_assertion)
        )
        return self.last_response

    def token(self) -> str:
        response = self.ask_for_token()
        assert response.status_code == 200, f"the portal refused a token: {response.text[:300]}"
        return str(response.json()["access_token"])

    def expired_token(self, *, expired_s: int = 120) -> str:
        """A token like the portal's own, signed with its key, that expired ``expired_s``
        seconds ago (longer ago than any clock-skew leeway). Needs the operator capability."""
        settings = self.deployment.operator_settings
        header, claims = unverified_parts(self.token())
        key = published_signing_keys(settings)[header["kid"]]
        now = int(time.time())
        claims.update(
            iat=now - expired_s - 90,
            nbf=now - expired_s - 90,
            exp=now - expired_s,
            jti=uuid.uuid4().hex,
        )
        return forge(claims, key)

    # -- the gateway ----------------------------------------------------------------------------

    def pay(self, body: dict[str, Any], *, token: str | None = None) -> httpx.Response:
        """``POST /v1/payments`` with the device's token (fresh unless one is given); retried
        while pgw does not know the terminal yet."""

        def send() -> httpx.Response:
            return self.deployment.pgw.post(
                "/v1/payments",
                json=body,
                headers={
                    **bearer(token or self.token()),
                    "Idempotency-Key": uuid.uuid4().hex,
                },
            )

        return self.deployment.until_gateway_knows(send, what=f'the terminal "{self.name}"')
