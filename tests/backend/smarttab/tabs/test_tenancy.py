"""Another store's or tenant's tab is not found (404 tab_not_found), whatever the route."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from backend.core.authz import Role
from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.support.pgw import PayingTerminal, paying_terminal
from tests.support.portal import create_user
from tests.support.smarttab import Tabs, card, item

ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("PATCH", "", {"label": "hijacked", "tip_amount": 1}),
    ("POST", "/cancel", None),
    ("POST", "/items", item("Hijack", 1)),
    ("PATCH", "/items/{item}", {"quantity": 9}),
    ("DELETE", "/items/{item}", None),
    ("POST", "/splits", {"mode": "full"}),
    ("POST", "/parts/1/pay", card()),
    ("POST", "/refresh", None),
    ("POST", "/refunds", {}),
]


def test_every_tab_route_is_covered() -> None:
    from backend.smarttab.tabs.routes import router

    declared = {
        (method, route.path.removeprefix("/v1/tabs/{tab_id}"))  # type: ignore[attr-defined]
        for route in router.routes
        for method in route.methods  # type: ignore[attr-defined]
        if "{tab_id}" in route.path  # type: ignore[attr-defined]
    }
    covered = {
        (method, path.replace("{item}", "{item_id}").replace("/1/", "/{number}/"))
        for method, path, _ in ROUTES
    }
    assert declared == covered


@pytest.fixture
def victim_tab(tabs: Tabs) -> dict[str, Any]:
    return tabs.split_ok(tabs.tab_with(item("Coffee", 500)), mode="full")


def _call(intruder: Tabs, tab: dict[str, Any], method: str, path: str, body: Any) -> httpx.Response:
    path = f"/v1/tabs/{tab['id']}" + path.replace("{item}", tab["items"][0]["id"])
    if method == "GET":
        return intruder.http.get(path, headers=intruder.headers)
    return intruder.change(method, path, tab, json=body)


def _assert_untouched(tabs: Tabs, tab: dict[str, Any]) -> None:
    now = tabs.get(tab["id"])
    assert now["version"] == tab["version"]
    assert now["items"] == tab["items"]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_another_stores_staff_cannot_see_or_touch_it(
    terminal: PayingTerminal,
    portal_client: httpx.Client,
    smarttab_client: httpx.Client,
    tabs: Tabs,
    victim_tab: dict[str, Any],
    method: str,
    path: str,
    body: Any,
) -> None:
    tenant = terminal.tenant
    store_b_manager = create_user(
        portal_client,
        tenant.admin,
        Role.STORE_MANAGER,
        merchant_id=tenant.merchant_id,
        store_id=tenant.store_b_id,
    )
    response = _call(Tabs(smarttab_client, store_b_manager.headers), victim_tab, method, path, body)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "tab_not_found"
    _assert_untouched(tabs, victim_tab)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_another_tenants_terminal_cannot_see_or_touch_it(
    test_settings: Settings,
    portal_client: httpx.Client,
    smarttab_client: httpx.Client,
    tabs: Tabs,
    victim_tab: dict[str, Any],
    other_terminal: PayingTerminal,
    method: str,
    path: str,
    body: Any,
) -> None:
    response = _call(Tabs(smarttab_client, other_terminal.headers), victim_tab, method, path, body)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "tab_not_found"
    _assert_untouched(tabs, victim_tab)


@pytest.fixture(scope="module")
def other_terminal_module(test_settings: Settings, platform: PlatformThread) -> PayingTerminal:
    """A terminal of another tenant, shared by this module's tests (it only ever intrudes)."""
    with httpx.Client(base_url=test_settings.url_of("portal"), timeout=10) as portal:
        return paying_terminal(test_settings, portal)


@pytest.fixture
def other_terminal(
    other_terminal_module: PayingTerminal, portal_client: httpx.Client
) -> PayingTerminal:
    other_terminal_module.access_token = other_terminal_module.terminal.fresh_token(portal_client)
    return other_terminal_module


def test_lists_show_only_the_callers_scope(
    terminal: PayingTerminal,
    tabs: Tabs,
    smarttab_client: httpx.Client,
    other_terminal: PayingTerminal,
) -> None:
    mine = tabs.open_ok()["id"]
    assert Tabs(smarttab_client, other_terminal.headers).list().json()["items"] == []
    merchant_auditor = Tabs(smarttab_client, terminal.tenant.user(Role.AUDITOR).headers)
    assert [tab["id"] for tab in merchant_auditor.list().json()["items"]] == [mine]
    # A merchant-level reader may read the store's tab too.
    assert merchant_auditor.read(mine).status_code == 200


def test_the_merchant_admin_may_edit_a_stores_tab(
    terminal: PayingTerminal, tabs: Tabs, smarttab_client: httpx.Client
) -> None:
    tab = tabs.tab_with(item())
    admin = Tabs(smarttab_client, terminal.tenant.user(Role.MERCHANT_ADMIN).headers)
    response = admin.add_item(tab, name="Comped dessert", unit_price=0)
    assert response.status_code == 201
    assert response.json()["store_id"] == terminal.tenant.store_a_id
