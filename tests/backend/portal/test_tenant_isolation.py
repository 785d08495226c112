"""One tenant never reads or changes another's resources, whichever route it tries.

The routes are enumerated from the portal's OpenAPI document, so a route added later is called
here too, or the test names it as missing a request body.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import Uuid, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.core.authz import Role, ScopeLevel, TenantScope, apply_tenant_scope
from backend.core.settings import Settings
from backend.portal.app import create_app
from backend.portal.models import PortalBase
from tests.support.portal import (
    PASSWORD,
    DeviceKey,
    PortalUser,
    Tenant,
    create_user,
    enroll_terminal,
    register_terminal,
    unique,
)

# The path parameters that name a tenant-owned resource, and that resource's not-found code.
ID_PARAMETERS = {
    "merchant_id": "merchant_not_found",
    "store_id": "store_not_found",
    "user_id": "user_not_found",
    "terminal_id": "terminal_not_found",
}

_BANK_ACCOUNT = {
    "bank_name": "Hijack Bank",
    "branch": "Nowhere",
    "account_number": "99999999",
    "holder_name": "Mallory",
}

# A minimal valid body for every route with an id in its path (None: the route takes none).
# Each writes as much as the route allows, so a leak would show in the re-read.
PATH_ID_ROUTE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("GET", "/v1/merchants/{merchant_id}"): None,
    ("PATCH", "/v1/merchants/{merchant_id}"): {
        "name": "hijacked",
        "status": "suspended",
        "bank_account": _BANK_ACCOUNT,
    },
    ("GET", "/v1/merchants/{merchant_id}/bank-account"): None,
    ("GET", "/v1/stores/{store_id}"): None,
    ("PATCH", "/v1/stores/{store_id}"): {"name": "hijacked", "timezone": "UTC", "status": "closed"},
    ("GET", "/v1/users/{user_id}"): None,
    ("PATCH", "/v1/users/{user_id}"): {
        "display_name": "hijacked",
        "role": "store_manager",
        "status": "disabled",
    },
    ("GET", "/v1/terminals/{terminal_id}"): None,
    ("POST", "/v1/terminals/{terminal_id}/activation-code"): None,
    ("POST", "/v1/terminals/{terminal_id}/suspend"): {"reason": "hijack"},
    ("POST", "/v1/terminals/{terminal_id}/reactivate"): {"reason": "hijack"},
    ("POST", "/v1/terminals/{terminal_id}/decommission"): {"reason": "hijack"},
}


def _body_id_cases(
    theirs: dict[str, str],
) -> dict[tuple[str, str], list[tuple[dict[str, Any], str]]]:
    """Routes whose request body names a tenant resource by id: (body, expected code) cases."""
    return {
        ("POST", "/v1/stores"): [
            ({"merchant_id": theirs["merchant_id"], "name": "hijack"}, "merchant_not_found")
        ],
        ("POST", "/v1/users"): [
            (_user_body("merchant_admin", merchant_id=theirs["merchant_id"]), "merchant_not_found"),
            (_user_body("auditor", merchant_id=theirs["merchant_id"]), "merchant_not_found"),
            (_user_body("cashier", store_id=theirs["store_id"]), "store_not_found"),
            (_user_body("store_manager", store_id=theirs["store_id"]), "store_not_found"),
        ],
        ("POST", "/v1/terminals"): [
            (
                {"store_id": theirs["store_id"], "serial": unique("SN"), "name": "hijack"},
                "store_not_found",
            )
        ],
    }


BODY_ID_ROUTES = {("POST", "/v1/stores"), ("POST", "/v1/users"), ("POST", "/v1/terminals")}
# Bodies with an *_id that is no tenant lookup: the token endpoint's client_id is the terminal
# authenticating itself with its own key, not a resource a caller reaches into.
BODY_ID_ROUTES_WITHOUT_LOOKUP = {("POST", "/oauth2/token")}


def _user_body(role: str, **ids: str) -> dict[str, Any]:
    return {
        "email": f"{unique('intruder')}@example.com",
        "display_name": "Intruder",
        "password": PASSWORD,
        "role": role,
        **ids,
    }


@pytest.fixture(scope="module")
def openapi(test_settings: Settings) -> dict[str, Any]:
    return dict(create_app(test_settings).openapi())


def _path_id_routes(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    routes = []
    for path, item in openapi["paths"].items():
        if any(name.endswith("_id") for name in re.findall(r"{(\w+)}", path)):
            routes.extend((method.upper(), path) for method in item)
    return sorted(routes)


def _schema(openapi: dict[str, Any], ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_schema.get("$ref")
    if ref is None:
        return ref_or_schema
    return dict(openapi["components"]["schemas"][ref.rsplit("/", 1)[-1]])


def _routes_with_ids_in_body(openapi: dict[str, Any]) -> set[tuple[str, str]]:
    routes = set()
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                schema = _schema(openapi, media.get("schema", {}))
                if any(name.endswith("_id") for name in schema.get("properties", {})):
                    routes.add((method.upper(), path))
    return routes


def _fill(template: str, ids: dict[str, str]) -> str:
    return re.sub(r"{(\w+)}", lambda match: ids[match.group(1)], template)


def _assert_not_found(response: httpx.Response, code: str, what: str) -> None:
    assert response.status_code == 404, f"{what}: {response.status_code} {response.text}"
    assert response.headers["content-type"] == "application/problem+json", what
    assert response.json()["code"] == code, f"{what}: {response.text}"


def _snapshot(client: httpx.Client, victim: Tenant, terminal_id: str) -> dict[str, Any]:
    """Everything of the victim the routes could touch, as its own admin sees it."""
    headers = victim.admin.headers
    paths = [
        f"/v1/merchants/{victim.merchant_id}",
        f"/v1/merchants/{victim.merchant_id}/bank-account",
        f"/v1/stores/{victim.store_a_id}",
        f"/v1/stores?merchant_id={victim.merchant_id}&limit=200",
        "/v1/users?limit=200",
        f"/v1/users/{victim.user('cashier').id}",
        f"/v1/terminals/{terminal_id}",
        "/v1/terminals?limit=200",
    ]
    snapshot = {}
    for path in paths:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, f"{path}: {response.text}"
        snapshot[path] = response.json()
    return snapshot


@pytest.fixture
def victim_terminal(portal_client: httpx.Client, other_tenant: Tenant) -> tuple[str, str, str]:
    """A pending terminal of the other tenant at its store A: (id, serial, activation code)."""
    return register_terminal(portal_client, other_tenant.admin, other_tenant.store_a_id)


def test_every_id_route_has_a_request_body_entry(openapi: dict[str, Any]) -> None:
    routes = _path_id_routes(openapi)
    assert routes, "no route with an id parameter found: is the OpenAPI document empty?"
    missing = [route for route in routes if route not in PATH_ID_ROUTE_BODIES]
    assert not missing, f"new routes with ids: add them to PATH_ID_ROUTE_BODIES: {missing}"
    stale = set(PATH_ID_ROUTE_BODIES) - set(routes)
    assert not stale, f"PATH_ID_ROUTE_BODIES lists routes that no longer exist: {stale}"
    unknown = {
        name
        for _, path in routes
        for name in re.findall(r"{(\w+)}", path)
        if name.endswith("_id") and name not in ID_PARAMETERS
    }
    assert not unknown, f"new id parameters: add them to ID_PARAMETERS: {unknown}"


def test_every_route_naming_a_resource_in_its_body_has_cases(openapi: dict[str, Any]) -> None:
    routes = _routes_with_ids_in_body(openapi)
    assert routes - BODY_ID_ROUTES_WITHOUT_LOOKUP == BODY_ID_ROUTES, (
        f"routes whose body carries an *_id changed; update _body_id_cases: {routes}"
    )


@pytest.mark.parametrize("attacker_role", [Role.PSP_ADMIN, Role.MERCHANT_ADMIN])
def test_another_tenants_ids_are_not_found_on_every_route_and_nothing_changes(
    openapi: dict[str, Any],
    portal_client: httpx.Client,
    tenant: Tenant,
    other_tenant: Tenant,
    victim_terminal: tuple[str, str, str],
    attacker_role: Role,
) -> None:
    terminal_id, serial, activation_code = victim_terminal
    account = portal_client.patch(
        f"/v1/merchants/{other_tenant.merchant_id}",
        headers=other_tenant.admin.headers,
        json={"bank_account": {**_BANK_ACCOUNT, "account_number": "1234567", "holder_name": "V"}},
    )
    assert account.status_code == 200, account.text
    theirs = {
        "merchant_id": other_tenant.merchant_id,
        "store_id": other_tenant.store_a_id,
        "user_id": other_tenant.user("cashier").id,
        "terminal_id": terminal_id,
    }
    attacker = tenant.user(attacker_role)
    before = _snapshot(portal_client, other_tenant, terminal_id)

    failures = []
    for method, template in _path_id_routes(openapi):
        body = PATH_ID_ROUTE_BODIES[(method, template)]
        path = _fill(template, theirs)
        response = portal_client.request(method, path, headers=attacker.headers, json=body)
        # The resource named last in the path is the one looked up.
        code = ID_PARAMETERS[re.findall(r"{(\w+)}", template)[-1]]
        try:
            _assert_not_found(response, code, f"{method} {path}")
        except AssertionError as exc:
            failures.append(str(exc))
    for (method, path), cases in _body_id_cases(theirs).items():
        for body, code in cases:
            response = portal_client.request(method, path, headers=attacker.headers, json=body)
            try:
                _assert_not_found(response, code, f"{method} {path} {body}")
            except AssertionError as exc:
                failures.append(str(exc))
    assert not failures, "\n".join(failures)

    assert _snapshot(portal_client, other_tenant, terminal_id) == before
    # The victim's activation code was not replaced: the terminal still enrolls with it.
    enrolled = portal_client.post(
        "/v1/devices/enroll",
        json={
            "activation_code": activation_code,
            "public_jwk": DeviceKey().public_jwk(),
            "serial": serial,
        },
    )
    assert enrolled.status_code == 200, enrolled.text
    # And the attacker left no trace in the victim's audit log: it never acted there.
    events = portal_client.get(
        "/v1/audit-events?limit=200", headers=other_tenant.admin.headers
    ).json()["items"]
    assert all(event["actor_id"] != attacker.id for event in events)


LIST_ROUTES = ["/v1/merchants", "/v1/stores", "/v1/users", "/v1/terminals", "/v1/audit-events"]


@pytest.mark.parametrize("reader_role", [Role.PSP_ADMIN, Role.MERCHANT_ADMIN, Role.AUDITOR])
def test_lists_never_return_another_tenants_rows_even_when_filtered_by_its_ids(
    portal_client: httpx.Client, tenant: Tenant, other_tenant: Tenant, reader_role: Role
) -> None:
    register_terminal(portal_client, other_tenant.admin, other_tenant.store_a_id)
    register_terminal(portal_client, tenant.admin, tenant.store_a_id)
    reader = tenant.user(reader_role)
    foreign_ids = {
        other_tenant.psp_id,
        other_tenant.merchant_id,
        other_tenant.store_a_id,
        other_tenant.store_b_id,
        *(user.id for user in other_tenant.users.values()),
    }
    filters = [
        "",
        f"?merchant_id={other_tenant.merchant_id}",
        f"?store_id={other_tenant.store_a_id}",
        f"?merchant_id={other_tenant.merchant_id}&store_id={other_tenant.store_a_id}",
    ]
    for route in LIST_ROUTES:
        own_rows = 0
        for query in filters:
            response = portal_client.get(f"{route}{query}", headers=reader.headers)
            assert response.status_code == 200, f"{route}{query}: {response.text}"
            for item in response.json()["items"]:
                assert item.get("psp_id") == tenant.psp_id, f"{route}{query}: {item}"
                leaked = foreign_ids & {str(value) for value in item.values()}
                assert not leaked, f"{route}{query} leaked {leaked}: {item}"
                own_rows += query == ""
        assert own_rows > 0, f"{route} returned nothing of the reader's own tenant"
    # The filters do filter: another tenant's merchant or store yields an empty page.
    for path in (
        f"/v1/stores?merchant_id={other_tenant.merchant_id}",
        f"/v1/terminals?store_id={other_tenant.store_a_id}",
    ):
        assert portal_client.get(path, headers=reader.headers).json()["items"] == []


# --- isolation inside one PSP ------------------------------------------------------------------


def _second_merchant(client: httpx.Client, tenant: Tenant) -> dict[str, str]:
    """M2 under the same PSP, with a store, a cashier and a terminal, made by the psp_admin."""
    admin = tenant.admin.headers
    merchant = client.post("/v1/merchants", headers=admin, json={"name": unique("m2")})
    assert merchant.status_code == 201, merchant.text
    merchant_id = merchant.json()["id"]
    store = client.post(
        "/v1/stores", headers=admin, json={"merchant_id": merchant_id, "name": "M2 store"}
    )
    assert store.status_code == 201, store.text
    store_id = store.json()["id"]
    cashier = create_user(client, tenant.admin, Role.CASHIER, store_id=store_id)
    terminal_id, _, _ = register_terminal(client, tenant.admin, store_id)
    return {
        "merchant_id": merchant_id,
        "store_id": store_id,
        "user_id": cashier.id,
        "terminal_id": terminal_id,
    }


@pytest.mark.parametrize("reader_role", [Role.MERCHANT_ADMIN, Role.AUDITOR])
def test_a_merchant_level_user_cannot_see_a_sibling_merchant(
    portal_client: httpx.Client, tenant: Tenant, reader_role: Role
) -> None:
    m2 = _second_merchant(portal_client, tenant)
    reader = tenant.user(reader_role)
    for path, code in [
        (f"/v1/merchants/{m2['merchant_id']}", "merchant_not_found"),
        (f"/v1/merchants/{m2['merchant_id']}/bank-account", "merchant_not_found"),
        (f"/v1/stores/{m2['store_id']}", "store_not_found"),
        (f"/v1/users/{m2['user_id']}", "user_not_found"),
        (f"/v1/terminals/{m2['terminal_id']}", "terminal_not_found"),
    ]:
        _assert_not_found(portal_client.get(path, headers=reader.headers), code, path)

    merchants = portal_client.get("/v1/merchants", headers=reader.headers).json()["items"]
    assert [m["id"] for m in merchants] == [tenant.merchant_id]
    stores = portal_client.get(
        f"/v1/stores?merchant_id={m2['merchant_id']}", headers=reader.headers
    ).json()["items"]
    assert stores == []
    users = portal_client.get("/v1/users?limit=200", headers=reader.headers).json()["items"]
    assert m2["user_id"] not in {u["id"] for u in users}
    assert all(u["merchant_id"] == tenant.merchant_id for u in users)
    events = portal_client.get("/v1/audit-events?limit=200", headers=reader.headers).json()
    assert all(e["merchant_id"] == tenant.merchant_id for e in events["items"])
    assert m2["merchant_id"] not in {e["target_id"] for e in events["items"]}
    # The psp_admin does see M2, so the 404s above are scoping, not a missing merchant.
    seen = portal_client.get(f"/v1/merchants/{m2['merchant_id']}", headers=tenant.admin.headers)
    assert seen.status_code == 200


def test_a_merchant_admin_cannot_write_into_a_sibling_merchant(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    m2 = _second_merchant(portal_client, tenant)
    admin = tenant.user(Role.MERCHANT_ADMIN).headers
    attempts = [
        ("PATCH", f"/v1/merchants/{m2['merchant_id']}", {"name": "x"}, "merchant_not_found"),
        (
            "POST",
            "/v1/stores",
            {"merchant_id": m2["merchant_id"], "name": "x"},
            "merchant_not_found",
        ),
        ("PATCH", f"/v1/stores/{m2['store_id']}", {"name": "x"}, "store_not_found"),
        ("PATCH", f"/v1/users/{m2['user_id']}", {"status": "disabled"}, "user_not_found"),
        (
            "POST",
            "/v1/users",
            _user_body("cashier", store_id=m2["store_id"]),
            "store_not_found",
        ),
        (
            "POST",
            f"/v1/terminals/{m2['terminal_id']}/suspend",
            {"reason": "x"},
            "terminal_not_found",
        ),
    ]
    for method, path, body, code in attempts:
        response = portal_client.request(method, path, headers=admin, json=body)
        _assert_not_found(response, code, f"{method} {path}")
    cashier = portal_client.get(f"/v1/users/{m2['user_id']}", headers=tenant.admin.headers)
    assert cashier.json()["status"] == "active"


@pytest.fixture
def store_b_world(portal_client: httpx.Client, tenant: Tenant) -> dict[str, str]:
    """A cashier and a terminal at store B, besides the tenant's store-A users."""
    cashier_b = create_user(portal_client, tenant.admin, Role.CASHIER, store_id=tenant.store_b_id)
    terminal_b, _, _ = register_terminal(portal_client, tenant.admin, tenant.store_b_id)
    return {"user_id": cashier_b.id, "terminal_id": terminal_b}


def test_a_store_manager_cannot_see_or_touch_another_stores_users_and_terminals(
    portal_client: httpx.Client, tenant: Tenant, store_b_world: dict[str, str]
) -> None:
    manager = tenant.user(Role.STORE_MANAGER).headers
    for method, path, body, code in [
        ("GET", f"/v1/stores/{tenant.store_b_id}", None, "store_not_found"),
        ("GET", f"/v1/users/{store_b_world['user_id']}", None, "user_not_found"),
        (
            "PATCH",
            f"/v1/users/{store_b_world['user_id']}",
            {"status": "disabled"},
            "user_not_found",
        ),
        ("GET", f"/v1/terminals/{store_b_world['terminal_id']}", None, "terminal_not_found"),
        (
            "POST",
            f"/v1/terminals/{store_b_world['terminal_id']}/suspend",
            {"reason": "x"},
            "terminal_not_found",
        ),
        (
            "POST",
            "/v1/terminals",
            {"store_id": tenant.store_b_id, "serial": unique("SN"), "name": "x"},
            "store_not_found",
        ),
        ("POST", "/v1/users", _user_body("cashier", store_id=tenant.store_b_id), "store_not_found"),
    ]:
        response = portal_client.request(method, path, headers=manager, json=body)
        _assert_not_found(response, code, f"{method} {path}")

    users = portal_client.get("/v1/users?limit=200", headers=manager).json()["items"]
    assert users, "the store manager sees at least themself"
    assert {u["store_id"] for u in users} == {tenant.store_a_id}
    terminals = portal_client.get("/v1/terminals?limit=200", headers=manager).json()["items"]
    assert store_b_world["terminal_id"] not in {t["id"] for t in terminals}
    stores = portal_client.get("/v1/stores", headers=manager).json()["items"]
    assert [s["id"] for s in stores] == [tenant.store_a_id]


def test_a_cashier_cannot_see_another_stores_terminals_or_the_store(
    portal_client: httpx.Client, tenant: Tenant, store_b_world: dict[str, str]
) -> None:
    own_terminal, _, _ = register_terminal(portal_client, tenant.admin, tenant.store_a_id)
    cashier = tenant.user(Role.CASHIER).headers
    _assert_not_found(
        portal_client.get(f"/v1/terminals/{store_b_world['terminal_id']}", headers=cashier),
        "terminal_not_found",
        "terminal at store B",
    )
    _assert_not_found(
        portal_client.get(f"/v1/stores/{tenant.store_b_id}", headers=cashier),
        "store_not_found",
        "store B",
    )
    assert portal_client.get(f"/v1/terminals/{own_terminal}", headers=cashier).status_code == 200
    terminals = portal_client.get(
        f"/v1/terminals?store_id={tenant.store_b_id}", headers=cashier
    ).json()["items"]
    assert terminals == []


def test_a_terminal_token_sees_only_its_own_store(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    terminal = enroll_terminal(portal_client, tenant.admin, tenant.store_a_id)
    device = PortalUser(
        Role.TERMINAL, terminal.terminal_id, "", terminal.fresh_token(portal_client), ""
    )
    _assert_not_found(
        portal_client.get(f"/v1/stores/{tenant.store_b_id}", headers=device.headers),
        "store_not_found",
        "store B as store A's terminal",
    )
    stores = portal_client.get("/v1/stores", headers=device.headers).json()["items"]
    assert [s["id"] for s in stores] == [tenant.store_a_id]


# --- the scoping rule itself fails closed (no database) ----------------------------------------
# (Unit tests of apply_tenant_scope's model check; tests/backend/core/test_authz.py covers the
# filters it builds.)

_DEPTH = {ScopeLevel.PSP: 0, ScopeLevel.MERCHANT: 1, ScopeLevel.STORE: 2}


class _Base(DeclarativeBase):
    pass


class _StoreOnly(_Base):
    """Carries the store but not the PSP: a PSP-wide scope would filter nothing at all."""

    __tablename__ = "store_only"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = {ScopeLevel.STORE: "store_id"}
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    store_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class _SkipsMerchant(_Base):
    """Carries PSP and store but not the merchant between them."""

    __tablename__ = "skips_merchant"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = {
        ScopeLevel.PSP: "psp_id",
        ScopeLevel.STORE: "store_id",
    }
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    psp_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    store_id: Mapped[uuid.UUID] = mapped_column(Uuid)


def test_a_model_without_a_psp_column_is_refused_rather_than_read_unfiltered() -> None:
    with pytest.raises(TypeError, match="psp"):
        apply_tenant_scope(select(_StoreOnly), _StoreOnly, TenantScope(psp_id=uuid.uuid4()))


def test_a_model_skipping_a_level_is_refused_rather_than_filtered_too_widely() -> None:
    # A merchant-level caller would otherwise see every merchant's rows of its PSP.
    scope = TenantScope(psp_id=uuid.uuid4(), merchant_id=uuid.uuid4())
    with pytest.raises(TypeError, match="merchant"):
        apply_tenant_scope(select(_SkipsMerchant), _SkipsMerchant, scope)


def test_every_tenant_owned_portal_table_runs_from_the_psp_down_without_a_gap() -> None:
    models = [
        mapper.class_
        for mapper in PortalBase.registry.mappers
        if hasattr(mapper.class_, "__tenant_columns__")
    ]
    assert {model.__name__ for model in models} >= {
        "Psp",
        "Merchant",
        "Store",
        "User",
        "Terminal",
        "AuditEvent",
    }
    for model in models:
        declared = sorted(_DEPTH[level] for level in model.__tenant_columns__)
        assert declared == list(range(len(declared))), (model.__name__, model.__tenant_columns__)
