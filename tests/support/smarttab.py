"""Synchronous drivers of smarttab's tab API (``/v1/tabs``) for tests and BDD steps.

``Tabs`` is one caller (a terminal's device token or a store user's token). Every change sends
``If-Match`` with the version of the tab dict it is given (or an explicit ``version``), so a test
reads like a terminal that last saw that tab. The ``*_ok`` helpers assert success and return the
new tab; the others return the raw response for tests about refusals.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from backend.core.hmac_signing import tenant_headers
from backend.core.settings import Settings
from tests.helpers import asyncpg_dsn
from tests.support.pgw import APPROVED_VISA, service_client

DECLINED_VISA = "4000000000000002"
TIMEOUT_VISA = "4000000000001034"  # the provider answers late: pgw says 202 processing

# Leave If-Match out (for tests of the 428).
NO_IF_MATCH = object()


def card(pan: str = APPROVED_VISA, **extra: Any) -> dict[str, Any]:
    """A ``/pay`` body for a contactless card."""
    return {
        "method": "card_present",
        "entry_mode": "contactless",
        "card": {"pan": pan, "exp_month": 12, "exp_year": 2030},
        **extra,
    }


def item(
    name: str = "Coffee",
    unit_price: int = 500,
    *,
    quantity: int = 1,
    tax_category: str = "standard",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "unit_price": unit_price,
        "quantity": quantity,
        "tax_category": tax_category,
        **extra,
    }


def etag_version(response: httpx.Response) -> int:
    return int(response.headers["etag"].strip('"'))


def _expect(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.text
    return dict(response.json())


@dataclass
class Tabs:
    http: httpx.Client
    headers: dict[str, str]

    # --- raw calls -----------------------------------------------------------------------------

    def change(
        self,
        method: str,
        path: str,
        tab: dict[str, Any] | None = None,
        *,
        json: Any = None,
        version: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A mutation with ``If-Match`` = ``version``, else the version of ``tab``."""
        headers = dict(self.headers)
        if version is None and tab is not None:
            version = tab["version"]
        if version is not NO_IF_MATCH and version is not None:
            headers["If-Match"] = version if isinstance(version, str) else f'"{version}"'
        return self.http.request(method, path, headers=headers, json=json, params=params)

    def open(self, **body: Any) -> httpx.Response:
        return self.http.post("/v1/tabs", json=body, headers=self.headers)

    def read(self, tab_id: str) -> httpx.Response:
        return self.http.get(f"/v1/tabs/{tab_id}", headers=self.headers)

    def list(self, **params: Any) -> httpx.Response:
        return self.http.get("/v1/tabs", params=params, headers=self.headers)

    def update(self, tab: dict[str, Any], **body: Any) -> httpx.Response:
        return self.change("PATCH", f"/v1/tabs/{tab['id']}", tab, json=body)

    def add_item(self, tab: dict[str, Any], **body: Any) -> httpx.Response:
        return self.change("POST", f"/v1/tabs/{tab['id']}/items", tab, json=item(**body))

    def update_item(self, tab: dict[str, Any], item_id: str, **body: Any) -> httpx.Response:
        return self.change("PATCH", f"/v1/tabs/{tab['id']}/items/{item_id}", tab, json=body)

    def remove_item(self, tab: dict[str, Any], item_id: str) -> httpx.Response:
        return self.change("DELETE", f"/v1/tabs/{tab['id']}/items/{item_id}", tab)

    def split(self, tab: dict[str, Any], **body: Any) -> httpx.Response:
        return self.change("POST", f"/v1/tabs/{tab['id']}/splits", tab, json=body)

    def pay(self, tab: dict[str, Any], number: int, body: dict[str, Any]) -> httpx.Response:
        return self.change("POST", f"/v1/tabs/{tab['id']}/parts/{number}/pay", tab, json=body)

    def refresh(self, tab: dict[str, Any]) -> httpx.Response:
        return self.change("POST", f"/v1/tabs/{tab['id']}/refresh", tab)

    def refund(self, tab: dict[str, Any], **body: Any) -> httpx.Response:
        return self.change("POST", f"/v1/tabs/{tab['id']}/refunds", tab, json=body)

    def cancel(self, tab: dict[str, Any], **body: Any) -> httpx.Response:
        return self.change("POST", f"/v1/tabs/{tab['id']}/cancel", tab, json=body or None)

    # --- checked helpers -----------------------------------------------------------------------

    def open_ok(self, **body: Any) -> dict[str, Any]:
        return _expect(self.open(**body), 201)

    def get(self, tab_id: str) -> dict[str, Any]:
        return _expect(self.read(tab_id), 200)

    def update_ok(self, tab: dict[str, Any], **body: Any) -> dict[str, Any]:
        return _expect(self.update(tab, **body), 200)

    def add_item_ok(self, tab: dict[str, Any], **body: Any) -> dict[str, Any]:
        return _expect(self.add_item(tab, **body), 201)

    def split_ok(self, tab: dict[str, Any], **body: Any) -> dict[str, Any]:
        return _expect(self.split(tab, **body), 201)

    def pay_ok(self, tab: dict[str, Any], number: int, body: dict[str, Any]) -> dict[str, Any]:
        """Pays and expects the part paid; returns the PayResult."""
        result = _expect(self.pay(tab, number, body), 200)
        assert result["outcome"] == "paid", result
        return result

    def refresh_ok(self, tab: dict[str, Any]) -> dict[str, Any]:
        return _expect(self.refresh(tab), 200)

    def tab_with(self, *items: dict[str, Any], **open_body: Any) -> dict[str, Any]:
        """A new tab holding ``items`` (``item(...)`` dicts)."""
        tab = self.open_ok(**open_body)
        for line in items:
            tab = _expect(self.change("POST", f"/v1/tabs/{tab['id']}/items", tab, json=line), 201)
        return tab


def store_events(settings: Settings, store_id: str) -> list[dict[str, Any]]:
    """``smarttab.store_events`` of one store, in seq order (what devices are sent)."""

    async def query() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(asyncpg_dsn(settings.database_url))
        try:
            rows = await connection.fetch(
                "SELECT seq, event_type, data::text AS data FROM smarttab.store_events "
                "WHERE store_id = $1 ORDER BY seq",
                uuid.UUID(store_id),
            )
        finally:
            await connection.close()
        return [
            {"seq": row["seq"], "event": row["event_type"], "data": json.loads(row["data"])}
            for row in rows
        ]

    return asyncio.run(query())


def tab_events(settings: Settings, tab: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        event
        for event in store_events(settings, tab["store_id"])
        if event["data"].get("tab_id") == tab["id"]
    ]


def pgw_payments_of(settings: Settings, tab: dict[str, Any]) -> list[dict[str, Any]]:
    """Every payment pgw holds for ``tab`` (asked as smarttab would, for the tab's store)."""
    headers = tenant_headers(tab["merchant_id"], tab["store_id"])
    payments: list[dict[str, Any]] = []
    with service_client(settings, "smarttab", settings.url_of("pgw")) as pgw:
        cursor = None
        while True:
            params = {"limit": "200", **({"before": cursor} if cursor else {})}
            page = pgw.get("/v1/payments", params=params, headers=headers)
            assert page.status_code == 200, page.text
            body = page.json()
            payments += [
                payment
                for payment in body["items"]
                if payment["metadata"].get("tab_id") == tab["id"]
            ]
            cursor = body["next_cursor"]
            if not cursor:
                return payments
