"""``DeviceUser``: one SmartPOS terminal of the fleet at a busy counter.

It behaves like the emulated terminal (``terminal_emulator/``) and a real device:

- **Identity.** It takes a terminal from the fleet file (round robin; each worker starts at its
  own offset) and signs ``private_key_jwt`` client assertions with that terminal's key. A
  background greenlet gets a device token at ``POST /oauth2/token`` and a new one
  ``--token-refresh-margin`` seconds before ``expires_in`` runs out (every ~75 s with the
  default 90 s tokens), whatever the counter is doing, as the device does.
- **Real-time channel.** It keeps a WebSocket to smarttab's ``/v1/stream`` open, answers the
  server's pings, sends ``reauth`` with each new token and reconnects with ``last_seq``
  (``loadtest/users/stream.py``). Every device of a store receives every event of the store.
- **Sales**, one per task, ``--think-time`` apart (5-20 s by default), steps ``--step-pause``
  apart (a cashier keying items, the customer tapping a card):
  - ``--tab-share`` of them (60 %) through smarttab: open a tab, add 1-4 items, split it (in
    full, or ``--split-share`` of them in two equal parts), pay each part by card;
  - the others straight at pgw: ``POST /v1/payments`` with an ``Idempotency-Key``;
  - ``--decline-ratio`` of first taps use a declined test card, and the customer pays with
    another card (a new attempt);
  - ``--refund-ratio`` of sales (5 %) are refunded afterwards (in full or in part);
  - ``--close-ratio`` of sales are followed by the terminal's end-of-day close (a Z-report).

Requests are named by route template (``/v1/tabs/{id}/items``), so locust groups them per
endpoint.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import gevent
from locust import task
from locust.contrib.fasthttp import FastHttpUser

from loadtest.users.common import LoadContext, bearer, call, context_of
from loadtest.users.stream import DeviceStream

APPROVED_CARDS = (
    "4242424242424242",  # visa
    "5555555555554444",  # mastercard
    "3566002020360505",  # jcb
    "378282246310005",  # amex
)
DECLINED_CARD = "4000000000000002"  # generic_decline
ENTRY_MODES = (("contactless", 0.75), ("chip", 0.20), ("swipe", 0.05))
MENU = (
    ("Shoyu ramen", 900, "standard"),
    ("Tonkotsu ramen", 1100, "standard"),
    ("Gyoza", 450, "standard"),
    ("Draft beer", 600, "standard"),
    ("Green tea", 300, "reduced"),
    ("Onigiri to go", 250, "reduced"),
    ("Karaage", 700, "standard"),
)
TOKEN_RETRY_S = 2.0


def _pick(choices: tuple[tuple[str, float], ...]) -> str:
    roll, total = random.random(), 0.0  # noqa: S311 - load shaping, not security
    for value, share in choices:
        total += share
        if roll < total:
            return value
    return choices[-1][0]


def card_body(pan: str, **extra: Any) -> dict[str, Any]:
    return {
        "method": "card_present",
        "entry_mode": _pick(ENTRY_MODES),
        "card": {"pan": pan, "exp_month": 12, "exp_year": 2030},
        **extra,
    }


class DeviceUser(FastHttpUser):
    """A SmartPOS terminal: device token, WebSocket, tabs and card payments."""

    weight = 100
    network_timeout = 30.0
    connection_timeout = 10.0
    # All URLs are absolute (portal, smarttab and pgw are different hosts); see test_start.
    host = "http://127.0.0.1"

    ctx: LoadContext

    def wait_time(self) -> float:
        return self.ctx.config.think_time.sample()

    # --- lifecycle -----------------------------------------------------------------------

    def on_start(self) -> None:
        self.ctx = context_of(self.environment)
        config = self.ctx.config
        self.terminal = self.ctx.next_terminal()
        self.identity = self.ctx.identity(self.terminal)
        self.cashiers = [f"staff-{n}" for n in range(1, 4)]
        self.token = ""
        self.token_expires_at = 0.0
        self.stream: DeviceStream | None = None
        for _ in range(3):
            if self.refresh_token():
                break
            gevent.sleep(TOKEN_RETRY_S)
        self.refresher = gevent.spawn(self._refresh_loop)
        if config.stream and self.token:
            self.stream = DeviceStream(self.environment, config.smarttab_url, lambda: self.token)
            self.stream.start()

    def on_stop(self) -> None:
        refresher: gevent.Greenlet | None = getattr(self, "refresher", None)
        if refresher is not None:
            refresher.kill(block=False)
        stream: DeviceStream | None = getattr(self, "stream", None)
        if stream is not None:
            stream.stop()

    # --- device token ----------------------------------------------------------------------

    def refresh_token(self) -> bool:
        body = call(
            self.client,
            "POST",
            f"{self.ctx.config.portal_url}/oauth2/token",
            name="/oauth2/token",
            form=self.identity.token_form(),
        )
        if not isinstance(body, dict):
            return False
        self.token = str(body["access_token"])
        self.token_expires_at = time.monotonic() + float(body.get("expires_in", 90))
        return True

    def _refresh_loop(self) -> None:
        margin = self.ctx.config.token_refresh_margin_s
        while True:
            gevent.sleep(max(1.0, self.token_expires_at - margin - time.monotonic()))
            if self.refresh_token():
                if self.stream is not None:
                    self.stream.reauth(self.token)
            else:
                gevent.sleep(TOKEN_RETRY_S)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    def pause(self) -> None:
        gevent.sleep(self.ctx.config.step_pause.sample())

    def chance(self, ratio: float) -> bool:
        return random.random() < ratio  # noqa: S311 - load shaping, not security

    # --- sales -------------------------------------------------------------------------------

    @task
    def sale(self) -> None:
        if not self.token and not self.refresh_token():
            return
        config = self.ctx.config
        if self.chance(config.tab_share):
            self.tab_sale()
        else:
            self.card_sale()
        if self.chance(config.close_ratio):
            self.pause()
            self.close_day()

    def tab_sale(self) -> None:
        smarttab = self.ctx.config.smarttab_url
        cashier = random.choice(self.cashiers)  # noqa: S311
        tab = call(
            self.client,
            "POST",
            f"{smarttab}/v1/tabs",
            name="/v1/tabs",
            expected=(201,),
            json_body={"table": f"T{random.randint(1, 30)}", "cashier_id": cashier},  # noqa: S311
            headers=self.headers,
        )
        if not tab:
            return
        for _ in range(random.randint(1, 4)):  # noqa: S311
            self.pause()
            name, price, tax = random.choice(MENU)  # noqa: S311
            tab = self._change(
                tab,
                "items",
                "/v1/tabs/{id}/items",
                {
                    "name": name,
                    "unit_price": price,
                    "quantity": random.choice((1, 1, 1, 2)),  # noqa: S311
                    "tax_category": tax,
                    "cashier_id": cashier,
                },
                expected=(201,),
            )
            if tab is None:
                return
        split: dict[str, Any] = {"mode": "full"}
        if self.chance(self.ctx.config.split_share):
            split = {"mode": "equal", "count": 2}
        tab = self._change(tab, "splits", "/v1/tabs/{id}/splits", split, expected=(201,))
        if tab is None:
            return
        parts = (tab.get("split") or {}).get("parts") or [{"number": 1}]
        for part in parts:
            self.pause()
            tab = self._pay_part(tab, int(part["number"]), cashier)
            if tab is None:
                return
        if self.chance(self.ctx.config.refund_ratio) and tab.get("status") == "paid":
            self.pause()
            body: dict[str, Any] = {"cashier_id": cashier, "reason": "customer changed mind"}
            if len(parts) > 1:
                body["part_number"] = 1
            self._change(tab, "refunds", "/v1/tabs/{id}/refunds", body, expected=(201, 202))

    def _change(
        self,
        tab: dict[str, Any],
        path: str,
        name: str,
        body: dict[str, Any],
        *,
        expected: tuple[int, ...],
    ) -> dict[str, Any] | None:
        """A change to the tab with ``If-Match`` = its version; returns the new tab."""
        answer = call(
            self.client,
            "POST",
            f"{self.ctx.config.smarttab_url}/v1/tabs/{tab['id']}/{path}",
            name=name,
            expected=expected,
            json_body=body,
            headers={**self.headers, "If-Match": f'"{tab["version"]}"'},
        )
        if not isinstance(answer, dict):
            return None
        new_tab = answer.get("tab", answer)
        return new_tab if isinstance(new_tab, dict) else None

    def _pay_part(self, tab: dict[str, Any], number: int, cashier: str) -> dict[str, Any] | None:
        first = DECLINED_CARD if self.chance(self.ctx.config.decline_ratio) else None
        for pan in (first or random.choice(APPROVED_CARDS), random.choice(APPROVED_CARDS)):  # noqa: S311
            result = call(
                self.client,
                "POST",
                f"{self.ctx.config.smarttab_url}/v1/tabs/{tab['id']}/parts/{number}/pay",
                name="/v1/tabs/{id}/parts/{n}/pay",
                expected=(200, 202),
                json_body=card_body(pan, cashier_id=cashier),
                headers={**self.headers, "If-Match": f'"{tab["version"]}"'},
            )
            if not isinstance(result, dict):
                return None
            tab = result["tab"]
            payment = result.get("payment")
            if result.get("outcome") == "paid" and isinstance(payment, dict):
                self._remember(payment, pan)
            if result.get("outcome") != "failed":
                return tab
            self.pause()  # declined: the customer takes out another card
        return tab

    def card_sale(self) -> None:
        """A payment straight at pgw (the Credit Card App alone, no tab)."""
        pgw = self.ctx.config.pgw_url
        amount = random.randint(3, 80) * 100  # noqa: S311 - ¥300 to ¥8,000
        self.pause()
        first = DECLINED_CARD if self.chance(self.ctx.config.decline_ratio) else None
        payment: dict[str, Any] | None = None
        pan = ""
        for pan in (first or random.choice(APPROVED_CARDS), random.choice(APPROVED_CARDS)):  # noqa: S311
            payment = call(
                self.client,
                "POST",
                f"{pgw}/v1/payments",
                name="/v1/payments",
                expected=(201, 202),
                json_body={"amount": amount, "currency": "JPY", **card_body(pan)},
                headers={**self.headers, "Idempotency-Key": str(uuid.uuid4())},
            )
            if not isinstance(payment, dict) or payment.get("status") != "declined":
                break
            self.pause()
        if not isinstance(payment, dict) or payment.get("status") != "captured":
            return
        self._remember(payment, pan)
        if self.chance(0.1):  # the receipt printed again
            call(
                self.client,
                "GET",
                f"{pgw}/v1/payments/{payment['id']}",
                name="/v1/payments/{id}",
                headers=self.headers,
            )
        if self.chance(self.ctx.config.refund_ratio):
            self.pause()
            partial = self.chance(0.5) and amount >= 200
            call(
                self.client,
                "POST",
                f"{pgw}/v1/payments/{payment['id']}/refunds",
                name="/v1/payments/{id}/refunds",
                expected=(201,),
                json_body={"amount": amount // 2} if partial else {},
                headers={**self.headers, "Idempotency-Key": str(uuid.uuid4())},
            )

    def close_day(self) -> None:
        call(
            self.client,
            "POST",
            f"{self.ctx.config.pgw_url}/v1/settlements/close",
            name="/v1/settlements/close",
            expected=(201,),
            json_body={},
            headers={**self.headers, "Idempotency-Key": str(uuid.uuid4())},
        )

    def _remember(self, payment: dict[str, Any], pan: str) -> None:
        """Payments the webhook user can send provider events about."""
        self.ctx.recent_payments.append(
            {
                "id": str(payment["id"]),
                "amount": int(payment.get("amount") or 0),
                "tip_amount": int(payment.get("tip_amount") or 0),
                "currency": str(payment.get("currency") or "JPY"),
                "last4": pan[-4:],
                "merchant_id": self.terminal.merchant_id,
                "store_id": self.terminal.store_id,
                "terminal_id": self.terminal.terminal_id,
            }
        )
