"""``PortalUser``: back-office staff (merchant admin, auditor, store manager) in the portal.

Logs in once with a user of the fleet (password login: Argon2id on the portal, deliberately
slow), rotates the refresh token before the 15-minute access token runs out, and browses what
the back office reads, ``--portal-think-time`` apart:

- payments search at pgw (``GET /v1/payments`` with store, status, method and time filters,
  sometimes the next page), then one payment, its events and refunds;
- reports: the end-of-day settlements (Z-reports) list, one batch and its CSV;
- the store's terminals, the open tabs (smarttab) and, for roles that may, the audit log.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import time
from typing import Any

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from loadtest.users.common import LoadContext, bearer, call, context_of

REFRESH_BEFORE_EXPIRY_S = 60.0
AUDIT_ROLES = ("merchant_admin", "auditor")
PAYMENT_STATUSES = ("captured", "refunded", "partially_refunded", "declined")


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (unverified: only to know when to refresh)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, ValueError, TypeError):
        return None


class PortalUser(FastHttpUser):
    """A merchant-side back-office user reading payments and reports."""

    # A fixed count, set from --portal-users / --webhook-users by the locustfile.
    fixed_count = 0
    network_timeout = 30.0
    connection_timeout = 10.0
    host = "http://127.0.0.1"

    ctx: LoadContext

    def wait_time(self) -> float:
        return self.ctx.config.portal_think_time.sample()

    def on_start(self) -> None:
        self.ctx = context_of(self.environment)
        self.login = self.ctx.next_login()
        self.stores = self.ctx.stores_of(self.login)
        self.access_token = ""
        self.refresh_token = ""
        self.expires_at = 0.0
        self.payment_ids: list[str] = []
        self.log_in()

    def log_in(self) -> None:
        body = call(
            self.client,
            "POST",
            f"{self.ctx.config.portal_url}/v1/auth/login",
            name="/v1/auth/login",
            json_body={"email": self.login.email, "password": self.login.password},
        )
        if isinstance(body, dict):
            self._keep(body)
            call(
                self.client,
                "GET",
                f"{self.ctx.config.portal_url}/v1/auth/me",
                name="/v1/auth/me",
                headers=self.headers,
            )

    def _keep(self, tokens: dict[str, Any]) -> None:
        self.access_token = str(tokens["access_token"])
        self.refresh_token = str(tokens["refresh_token"])
        self.expires_at = time.time() + float(tokens.get("expires_in", 900))

    def ensure_token(self) -> bool:
        if not self.access_token:
            self.log_in()
        elif time.time() > self.expires_at - REFRESH_BEFORE_EXPIRY_S:
            body = call(
                self.client,
                "POST",
                f"{self.ctx.config.portal_url}/v1/auth/refresh",
                name="/v1/auth/refresh",
                json_body={"refresh_token": self.refresh_token},
            )
            if isinstance(body, dict):
                self._keep(body)
            else:
                self.access_token = ""
                self.log_in()
        return bool(self.access_token)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)

    # --- pages ---------------------------------------------------------------------------

    @task(5)
    def search_payments(self) -> None:
        if not self.ensure_token():
            return
        params: dict[str, str] = {"limit": "50"}
        if self.stores and random.random() < 0.7:  # noqa: S311
            params["store_id"] = random.choice(self.stores)  # noqa: S311
        if random.random() < 0.4:  # noqa: S311
            params["status"] = random.choice(PAYMENT_STATUSES)  # noqa: S311
        if random.random() < 0.2:  # noqa: S311
            params["method"] = "card_present"
        if random.random() < 0.5:  # noqa: S311
            since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
            params["created_from"] = since.isoformat(timespec="seconds")
        pgw = self.ctx.config.pgw_url
        page = call(
            self.client,
            "GET",
            f"{pgw}/v1/payments",
            name="/v1/payments",
            headers=self.headers,
            params=params,
        )
        if not isinstance(page, dict):
            return
        items = page.get("items") or []
        if page.get("next_cursor") and random.random() < 0.3:  # noqa: S311
            call(
                self.client,
                "GET",
                f"{pgw}/v1/payments",
                name="/v1/payments",
                headers=self.headers,
                params={**params, "before": str(page["next_cursor"])},
            )
        if not items:
            return
        payment_id = str(random.choice(items)["id"])  # noqa: S311
        call(
            self.client,
            "GET",
            f"{pgw}/v1/payments/{payment_id}",
            name="/v1/payments/{id}",
            headers=self.headers,
        )
        if random.random() < 0.4:  # noqa: S311
            call(
                self.client,
                "GET",
                f"{pgw}/v1/payments/{payment_id}/events",
                name="/v1/payments/{id}/events",
                headers=self.headers,
            )
        if random.random() < 0.2:  # noqa: S311
            call(
                self.client,
                "GET",
                f"{pgw}/v1/payments/{payment_id}/refunds",
                name="/v1/payments/{id}/refunds",
                headers=self.headers,
            )

    @task(2)
    def reports(self) -> None:
        if not self.ensure_token():
            return
        pgw = self.ctx.config.pgw_url
        params = {"limit": "20"}
        if self.login.store_id:
            params["store_id"] = self.login.store_id
        page = call(
            self.client,
            "GET",
            f"{pgw}/v1/settlements",
            name="/v1/settlements",
            headers=self.headers,
            params=params,
        )
        items = page.get("items") if isinstance(page, dict) else None
        if not items:
            return
        batch_id = str(random.choice(items)["id"])  # noqa: S311
        call(
            self.client,
            "GET",
            f"{pgw}/v1/settlements/{batch_id}",
            name="/v1/settlements/{id}",
            headers=self.headers,
        )
        if random.random() < 0.5:  # noqa: S311
            call(
                self.client,
                "GET",
                f"{pgw}/v1/settlements/{batch_id}.csv",
                name="/v1/settlements/{id}.csv",
                headers=self.headers,
            )

    @task(1)
    def terminals(self) -> None:
        if not self.ensure_token():
            return
        params = {"limit": "50", "status": "active"}
        if self.stores:
            params["store_id"] = random.choice(self.stores)  # noqa: S311
        call(
            self.client,
            "GET",
            f"{self.ctx.config.portal_url}/v1/terminals",
            name="/v1/terminals",
            headers=self.headers,
            params=params,
        )

    @task(1)
    def open_tabs(self) -> None:
        if not self.ensure_token():
            return
        params = {"status": "open", "limit": "50"}
        if self.stores:
            params["store_id"] = random.choice(self.stores)  # noqa: S311
        call(
            self.client,
            "GET",
            f"{self.ctx.config.smarttab_url}/v1/tabs",
            name="/v1/tabs",
            headers=self.headers,
            params=params,
        )

    @task(1)
    def audit_log(self) -> None:
        if self.login.role not in AUDIT_ROLES or not self.ensure_token():
            return
        call(
            self.client,
            "GET",
            f"{self.ctx.config.portal_url}/v1/audit-events",
            name="/v1/audit-events",
            headers=self.headers,
            params={"limit": "50"},
        )
