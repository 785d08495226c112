"""What the platform's records say, as store staff and the PSP read them: pgw's payments and
refunds. Steps check a terminal's answer against these, so a scenario proves the money moved
(or did not) at the gateway, not just what the terminal showed.

Reads go out as the PSP admin unless a person is given (the PSP admin may read every payment of
its merchants, docs/permissions.md), so they work on every target, a real device included.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from features.support.deployment import Deployment
from features.support.vocabulary import Card
from features.support.world import Person, Store
from tests.support.pgw import card_payment

SETTLED_WAIT_S = 10.0


class Backoffice:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def _headers(self, person: Person | None) -> dict[str, str]:
        return person.headers if person is not None else self.deployment.admin.headers

    # -- payments ---------------------------------------------------------------------------

    def payment(self, payment_id: str, *, as_person: Person | None = None) -> dict[str, Any]:
        response = self.deployment.pgw.get(
            f"/v1/payments/{payment_id}", headers=self._headers(as_person)
        )
        assert response.status_code == 200, (
            f"pgw does not show payment {payment_id}: {response.status_code} {response.text[:300]}"
        )
        return dict(response.json())

    def payment_when(
        self, payment_id: str, statuses: set[str], *, timeout_s: float = SETTLED_WAIT_S
    ) -> dict[str, Any]:
        """The payment once its status is one of ``statuses`` (webhooks and the reconciler
        settle some payments a moment after the terminal answered)."""
        deadline = time.monotonic() + timeout_s
        while True:
            payment = self.payment(payment_id)
            if payment["status"] in statuses or time.monotonic() > deadline:
                return payment
            time.sleep(0.1)

    def payments(
        self,
        *,
        store_id: str | None = None,
        terminal_id: str | None = None,
        as_person: Person | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The newest payments (of a store, or a terminal), as ``as_person`` sees them."""
        params = {"limit": str(limit)}
        if store_id is not None:
            params["store_id"] = store_id
        if terminal_id is not None:
            params["terminal_id"] = terminal_id
        response = self.deployment.pgw.get(
            "/v1/payments", params=params, headers=self._headers(as_person)
        )
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    def refunds(self, payment_id: str) -> list[dict[str, Any]]:
        response = self.deployment.pgw.get(
            f"/v1/payments/{payment_id}/refunds", headers=self._headers(None)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return list(body["items"] if isinstance(body, dict) else body)

    # -- payments made without a terminal ---------------------------------------------------

    def authorize_only(
        self, person: Person, store: Store, card: Card, amount: int
    ) -> dict[str, Any]:
        """An authorization that is not captured (``capture_method: manual``), taken through
        pgw's API by ``person`` (the Credit Card App always captures at once)."""
        body = card_payment(card.pan, amount=amount, capture_method="manual")

        def create() -> Any:
            # A new key per try: a refusal for an unknown store charged nothing.
            return self.deployment.pgw.post(
                "/v1/payments",
                json=body,
                headers={**person.headers, "Idempotency-Key": uuid.uuid4().hex},
            )

        response = self.deployment.until_gateway_knows(create, what=f'store "{store.name}"')
        assert response.status_code in (200, 201), response.text
        payment = dict(response.json())
        assert payment["status"] == "authorized", payment
        return payment
