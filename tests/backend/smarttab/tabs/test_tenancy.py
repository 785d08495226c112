"""Another store's or tenant's tab is not found (404 tab_not_found), whatever the route.

The routes are checked against smarttab's OpenAPI document, so a route added later with a path
parameter fails the coverage test until ROUTES has it, and is then called by every intruder.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from backend.core.authz import Role
from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from backend.smarttab.app import create_app
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


# Every path parameter of smarttab's routes, and what stands for it in ROUTES.
PATH_PARAMETERS = {"tab_id": "", "item_id": "{item}", "number": "1"}


@pytest.fixture(scope="module")
def openapi(test_settings: Settings) -> dict[str, Any]:
    return dict(create_app(test_settings).openapi())


def test_every_route_with_a_path_parameter_is_covered(openapi: dict[str, Any]) -> None:
    """Enumerated from the OpenAPI document: a new route with an id fails here until it has its
    entry in ROUTES (and so is called by every intruder below)."""
    declared = {
        (method.upper(), path)
        for path, operations in openapi["paths"].items()
        for method in operations
        if re.search(r"{\w+}", path)
    }
    unknown = {name for _, path in declared for name in re.findall(r"{(\w+)}", path)} - set(
        PATH_PARAMETERS
    )
    assert not unknown, f"new path parameters: add them to PATH_PARAMETERS and ROUTES: {unknown}"
    covered = set()
    for method, path, _ in ROUTES:
        template = "/v1/tabs/{tab_id}" + path
        for name, stand_in in PATH_PARAMETERS.items():
            if stand_in:
                template = template.replace(f"/{stand_in}", f"/{{{name}}}")
        covered.add((method, template))
    assert declared == covered, (
        f"not in ROUTES: {sorted(declared - covered)}; no longer routes: {sorted(covered - declared)}"
    )


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


def _answer(response: httpx.Response) -> tuple[int, str | None]:
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return response.status_code, None
    return response.status_code, response.json().get("code")


@pytest.mark.parametrize("intruder", ["cashier", "store_manager", "merchant_admin", "terminal"])
def test_another_tenants_staff_and_terminal_find_no_tab_on_any_route(
    smarttab_client: httpx.Client,
    tabs: Tabs,
    victim_tab: dict[str, Any],
    other_terminal: PayingTerminal,
    intruder: str,
) -> None:
    """Every route, every kind of credential of another tenant: 404 ``tab_not_found`` (or the
    403 the role gets there anyway), the very answer a tab id that exists nowhere gets (so it
    tells nothing), and the tab untouched."""
    headers = (
        other_terminal.headers
        if intruder == "terminal"
        else other_terminal.tenant.user(intruder).headers
    )
    caller = Tabs(smarttab_client, headers)
    nowhere = {**victim_tab, "id": str(uuid.uuid4()), "items": [{"id": str(uuid.uuid4())}]}

    failures = []
    for method, path, body in ROUTES:
        foreign = _answer(_call(caller, victim_tab, method, path, body))
        missing = _answer(_call(caller, nowhere, method, path, body))
        # A role that may not use the route at all (a cashier refunding) gets its 403 first.
        allowed = foreign == (404, "tab_not_found") or foreign[0] in (401, 403)
        if not allowed or missing != foreign:
            failures.append(f"{method} {path}: {foreign}, for a tab that does not exist {missing}")
    assert not failures, "\n".join(failures)
    _assert_untouched(tabs, victim_tab)
    # Nor does a list filtered by the victim's store show it.
    listed = caller.list(store_id=victim_tab["store_id"])
    if listed.status_code == 200:
        assert victim_tab["id"] not in {tab["id"] for tab in listed.json()["items"]}
    else:
        assert listed.status_code in (403, 422), listed.text


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
