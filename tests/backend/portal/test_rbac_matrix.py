"""Every portal route enforces ROLE_PERMISSIONS, the single source of truth, for every role.

For each (role, route) the expected answer is derived from the matrix, never written by hand:
a role without the route's permission gets 403 ``permission_denied`` (before any lookup, so
even for a resource in scope) and changes nothing; a role with it gets a 2xx on a resource of
its own scope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from backend.core.authz import ASSIGNABLE_ROLES, HUMAN_ROLES, ROLE_PERMISSIONS, Permission, Role
from backend.core.settings import Settings
from backend.portal.app import create_app
from backend.runtime.server import PlatformThread
from tests.support.permissions_doc import DOC_PATH, extract_matrix, render_matrix
from tests.support.portal import (
    PASSWORD,
    EnrolledTerminal,
    Tenant,
    bearer,
    build_tenant,
    create_user,
    enroll_terminal,
    register_terminal,
    unique,
)

P = Permission

# The permission each authenticated route requires. A route missing here fails
# test_every_route_is_classified, so a new route cannot escape this matrix.
ROUTE_PERMISSIONS: dict[tuple[str, str], Permission] = {
    ("GET", "/v1/merchants"): P.MERCHANT_READ,
    ("POST", "/v1/merchants"): P.MERCHANT_CREATE,
    ("GET", "/v1/merchants/{merchant_id}"): P.MERCHANT_READ,
    ("PATCH", "/v1/merchants/{merchant_id}"): P.MERCHANT_UPDATE,
    ("GET", "/v1/merchants/{merchant_id}/bank-account"): P.MERCHANT_BANK_ACCOUNT_READ,
    ("GET", "/v1/stores"): P.STORE_READ,
    ("POST", "/v1/stores"): P.STORE_WRITE,
    ("GET", "/v1/stores/{store_id}"): P.STORE_READ,
    ("PATCH", "/v1/stores/{store_id}"): P.STORE_WRITE,
    ("GET", "/v1/users"): P.USER_READ,
    ("POST", "/v1/users"): P.USER_WRITE,
    ("GET", "/v1/users/{user_id}"): P.USER_READ,
    ("PATCH", "/v1/users/{user_id}"): P.USER_WRITE,
    ("GET", "/v1/terminals"): P.TERMINAL_READ,
    ("POST", "/v1/terminals"): P.TERMINAL_WRITE,
    ("GET", "/v1/terminals/{terminal_id}"): P.TERMINAL_READ,
    ("POST", "/v1/terminals/{terminal_id}/activation-code"): P.TERMINAL_WRITE,
    ("POST", "/v1/terminals/{terminal_id}/suspend"): P.TERMINAL_SUSPEND,
    ("POST", "/v1/terminals/{terminal_id}/reactivate"): P.TERMINAL_SUSPEND,
    ("POST", "/v1/terminals/{terminal_id}/decommission"): P.TERMINAL_WRITE,
    ("GET", "/v1/audit-events"): P.AUDIT_READ,
}

# Routes that check no permission of the matrix (public, or authenticated by other means).
UNGATED_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/auth/logout"),
    ("GET", "/v1/auth/me"),
    ("POST", "/v1/devices/enroll"),
    ("POST", "/oauth2/token"),
}

ROLES = [*HUMAN_ROLES, Role.TERMINAL]


@pytest.fixture(scope="module")
def portal_app(test_settings: Settings) -> Any:
    return create_app(test_settings)


def _app_routes(app: Any) -> dict[tuple[str, str], APIRoute]:
    routes = {}
    for route in app.routes:
        if isinstance(route, APIRoute):
            for method in route.methods:
                routes[(method, route.path)] = route
    return routes


def _declared_permissions(route: APIRoute) -> set[Permission]:
    """The permissions the route's ``require(...)`` dependencies close over."""
    found: set[Permission] = set()
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        pending.extend(dependant.dependencies)
        for cell in getattr(dependant.call, "__closure__", None) or ():
            if isinstance(cell.cell_contents, Permission):
                found.add(cell.cell_contents)
    return found


def test_every_route_is_classified(portal_app: Any) -> None:
    paths = portal_app.openapi()["paths"]
    in_openapi = {(method.upper(), path) for path, item in paths.items() for method in item}
    unclassified = in_openapi - set(ROUTE_PERMISSIONS) - UNGATED_ROUTES
    assert not unclassified, f"new routes: add them to ROUTE_PERMISSIONS or UNGATED: {unclassified}"
    vanished = (set(ROUTE_PERMISSIONS) | UNGATED_ROUTES) - in_openapi
    assert not vanished, f"routes listed here no longer exist: {vanished}"


def test_each_route_requires_exactly_the_permission_listed(portal_app: Any) -> None:
    routes = _app_routes(portal_app)
    wrong = {}
    for key, route in routes.items():
        expected = {ROUTE_PERMISSIONS[key]} if key in ROUTE_PERMISSIONS else set()
        declared = _declared_permissions(route)
        if declared != expected:
            wrong[key] = (sorted(declared), sorted(expected))
    assert not wrong, f"declared vs expected permissions: {wrong}"


# --- calling every route as every role ---------------------------------------------------------


@dataclass
class MatrixWorld:
    client: httpx.Client
    tenant: Tenant
    terminal: EnrolledTerminal

    def headers(self, role: Role) -> dict[str, str]:
        if role is Role.TERMINAL:
            return bearer(self.terminal.fresh_token(self.client))
        return self.tenant.user(role).headers

    @property
    def admin(self) -> dict[str, str]:
        return self.tenant.admin.headers

    def fresh_terminal(self, *, enrolled: bool = False) -> str:
        if enrolled:
            return enroll_terminal(
                self.client, self.tenant.admin, self.tenant.store_a_id
            ).terminal_id
        terminal_id, _, _ = register_terminal(
            self.client, self.tenant.admin, self.tenant.store_a_id
        )
        return terminal_id


@pytest.fixture(scope="module")
def world(test_settings: Settings, platform: PlatformThread) -> Iterator[MatrixWorld]:
    with httpx.Client(base_url=platform.portal_url, timeout=10.0) as client:
        tenant = build_tenant(test_settings, client)
        response = client.patch(
            f"/v1/merchants/{tenant.merchant_id}",
            headers=tenant.admin.headers,
            json={"bank_account": _bank_account()},
        )
        assert response.status_code == 200, response.text
        terminal = enroll_terminal(client, tenant.admin, tenant.store_a_id)
        yield MatrixWorld(client, tenant, terminal)


def _bank_account() -> dict[str, str]:
    return {
        "bank_name": "Mizuho",
        "branch": "Shibuya",
        "account_number": "1234567",
        "holder_name": "Matrix KK",
    }


@dataclass
class Call:
    path: str
    body: dict[str, Any] | None = None
    # A GET (as the psp_admin) whose answer a refused call must leave exactly as it was.
    read_back: str | None = None


def _call_for(method: str, template: str, world: MatrixWorld) -> Call:
    """A request that the route's permission alone decides: the target is in every caller's
    scope (store-level roles and the terminal live at store A) and the body is one every
    role holding the permission may send."""
    tenant = world.tenant
    merchant = f"/v1/merchants/{tenant.merchant_id}"
    store = f"/v1/stores/{tenant.store_a_id}"
    builders: dict[tuple[str, str], Callable[[], Call]] = {
        ("GET", "/v1/merchants"): lambda: Call("/v1/merchants"),
        ("POST", "/v1/merchants"): lambda: Call(
            "/v1/merchants", {"name": unique("m")}, read_back="/v1/merchants?limit=200"
        ),
        ("GET", "/v1/merchants/{merchant_id}"): lambda: Call(merchant),
        ("PATCH", "/v1/merchants/{merchant_id}"): lambda: Call(
            merchant, {"name": unique("renamed")}, read_back=merchant
        ),
        ("GET", "/v1/merchants/{merchant_id}/bank-account"): lambda: Call(
            f"{merchant}/bank-account"
        ),
        ("GET", "/v1/stores"): lambda: Call("/v1/stores"),
        ("POST", "/v1/stores"): lambda: Call(
            "/v1/stores",
            {"merchant_id": tenant.merchant_id, "name": unique("s")},
            read_back="/v1/stores?limit=200",
        ),
        ("GET", "/v1/stores/{store_id}"): lambda: Call(store),
        ("PATCH", "/v1/stores/{store_id}"): lambda: Call(
            store, {"name": unique("renamed")}, read_back=store
        ),
        ("GET", "/v1/users"): lambda: Call("/v1/users"),
        ("POST", "/v1/users"): lambda: Call(
            "/v1/users",
            {
                "email": f"{unique('matrix')}@example.com",
                "display_name": "Matrix cashier",
                "password": PASSWORD,
                "role": "cashier",
                "store_id": tenant.store_a_id,
            },
            read_back="/v1/users?limit=200",
        ),
        ("GET", "/v1/users/{user_id}"): lambda: Call(f"/v1/users/{tenant.user('cashier').id}"),
        ("PATCH", "/v1/users/{user_id}"): lambda: _fresh_cashier_call(world),
        ("GET", "/v1/terminals"): lambda: Call("/v1/terminals"),
        ("POST", "/v1/terminals"): lambda: Call(
            "/v1/terminals",
            {"store_id": tenant.store_a_id, "serial": unique("SN"), "name": "Matrix"},
            read_back="/v1/terminals?limit=200",
        ),
        ("GET", "/v1/terminals/{terminal_id}"): lambda: Call(
            f"/v1/terminals/{world.terminal.terminal_id}"
        ),
        ("POST", "/v1/terminals/{terminal_id}/activation-code"): lambda: _terminal_call(
            world, "activation-code", body=None
        ),
        ("POST", "/v1/terminals/{terminal_id}/suspend"): lambda: _terminal_call(world, "suspend"),
        ("POST", "/v1/terminals/{terminal_id}/reactivate"): lambda: _terminal_call(
            world, "reactivate", suspended=True
        ),
        ("POST", "/v1/terminals/{terminal_id}/decommission"): lambda: _terminal_call(
            world, "decommission"
        ),
        ("GET", "/v1/audit-events"): lambda: Call("/v1/audit-events"),
    }
    return builders[(method, template)]()


def _fresh_cashier_call(world: MatrixWorld) -> Call:
    cashier = create_user(
        world.client, world.tenant.admin, Role.CASHIER, store_id=world.tenant.store_a_id
    )
    path = f"/v1/users/{cashier.id}"
    return Call(path, {"status": "disabled", "display_name": "Changed"}, read_back=path)


def _terminal_call(
    world: MatrixWorld, action: str, *, body: dict[str, Any] | None = None, suspended: bool = False
) -> Call:
    # Suspension is exercised on enrolled terminals, the state it is meant for.
    terminal_id = world.fresh_terminal(enrolled=action in ("suspend", "reactivate"))
    if suspended:
        response = world.client.post(
            f"/v1/terminals/{terminal_id}/suspend", headers=world.admin, json={"reason": "setup"}
        )
        assert response.status_code == 200, response.text
    path = f"/v1/terminals/{terminal_id}"
    payload = {"reason": "matrix"} if body is None and action != "activation-code" else body
    return Call(f"{path}/{action}", payload, read_back=path)


@pytest.mark.parametrize("route", sorted(ROUTE_PERMISSIONS), ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value)
def test_route_answers_as_the_matrix_says(
    world: MatrixWorld, role: Role, route: tuple[str, str]
) -> None:
    method, template = route
    permission = ROUTE_PERMISSIONS[route]
    allowed = permission in ROLE_PERMISSIONS[role]
    call = _call_for(method, template, world)
    before = world.client.get(call.read_back, headers=world.admin) if call.read_back else None

    response = world.client.request(method, call.path, headers=world.headers(role), json=call.body)

    if allowed:
        assert response.status_code in (200, 201), (role, route, response.text)
        return
    assert response.status_code == 403, (role, route, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "permission_denied"
    assert problem["permission"] == permission.value
    if before is not None:
        assert call.read_back is not None
        after = world.client.get(call.read_back, headers=world.admin)
        assert after.json() == before.json(), f"a refused {method} {call.path} changed state"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value)
def test_permission_denied_comes_before_the_scope_lookup(world: MatrixWorld, role: Role) -> None:
    """A role lacking the permission learns nothing about whether an id exists."""
    missing = "00000000-0000-4000-8000-000000000000"
    for (method, template), permission in ROUTE_PERMISSIONS.items():
        if permission in ROLE_PERMISSIONS[role] or "{" not in template:
            continue
        path = template.split("{")[0] + missing + template.split("}")[1]
        body = {} if method != "GET" else None
        response = world.client.request(method, path, headers=world.headers(role), json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "permission_denied"


def test_auth_me_lists_exactly_the_matrix_permissions_of_each_human_role(
    world: MatrixWorld,
) -> None:
    for role in HUMAN_ROLES:
        response = world.client.get("/v1/auth/me", headers=world.headers(role))
        assert response.status_code == 200, response.text
        assert response.json()["role"] == role.value
        assert set(response.json()["permissions"]) == {p.value for p in ROLE_PERMISSIONS[role]}


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer pt_not-a-portal-credential"},
        {"x-mpac-signature": "v1=deadbeef", "x-mpac-caller": "pgw"},
    ],
    ids=["payment_token", "service_signature"],
)
def test_the_portal_accepts_no_payment_token_or_service_signature(
    world: MatrixWorld, headers: dict[str, str]
) -> None:
    """Role.PAYMENT_TOKEN and Role.SERVICE exist for pgw and smarttab; the portal has no
    resolver for them, so such callers are unauthenticated here whatever the matrix grants."""
    for (method, path), _ in sorted(ROUTE_PERMISSIONS.items()):
        if "{" in path:
            continue
        response = world.client.request(
            method, path, headers=headers, json={} if method != "GET" else None
        )
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


# --- role assignment: who may create a user of which role --------------------------------------


def _user_body(world: MatrixWorld, role: Role) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": f"{unique('grant')}@example.com",
        "display_name": f"Granted {role.value}",
        "password": PASSWORD,
        "role": role.value,
    }
    if role in (Role.MERCHANT_ADMIN, Role.AUDITOR):
        body["merchant_id"] = world.tenant.merchant_id
    elif role in (Role.STORE_MANAGER, Role.CASHIER):
        body["store_id"] = world.tenant.store_a_id
    return body


@pytest.mark.parametrize("granted", HUMAN_ROLES, ids=lambda r: r.value)
@pytest.mark.parametrize("granter", HUMAN_ROLES, ids=lambda r: r.value)
def test_creating_a_user_follows_the_assignable_roles(
    world: MatrixWorld, granter: Role, granted: Role
) -> None:
    response = world.client.post(
        "/v1/users", headers=world.headers(granter), json=_user_body(world, granted)
    )
    if Permission.USER_WRITE not in ROLE_PERMISSIONS[granter]:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "permission_denied"
    elif granted not in ASSIGNABLE_ROLES[granter]:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "role_not_assignable"
    else:
        assert response.status_code == 201, response.text
        assert response.json()["role"] == granted.value


# --- docs/permissions.md -----------------------------------------------------------------------


def test_documented_matrix_matches_role_permissions() -> None:
    if not DOC_PATH.exists():
        pytest.skip(
            f"{DOC_PATH} does not exist yet; generate its matrix with "
            "`python -m tests.support.permissions_doc`"
        )
    documented = extract_matrix(DOC_PATH.read_text(encoding="utf-8"))
    assert documented is not None, (
        f"{DOC_PATH} lacks the <!-- matrix:start --> / <!-- matrix:end --> markers"
    )
    assert documented == render_matrix(), (
        "docs/permissions.md is out of date: regenerate it with "
        "`python -m tests.support.permissions_doc`"
    )


def test_rendered_matrix_has_a_row_per_permission_and_a_column_per_role() -> None:
    lines = render_matrix().splitlines()
    assert len(lines) == 2 + len(Permission)
    header = lines[0]
    for role in Role:
        assert f"`{role.value}`" in header
    merchant_create = next(line for line in lines if "`merchant:create`" in line)
    cells = [cell.strip() for cell in merchant_create.strip("|").split("|")][1:]
    assert cells == ["✓" if role is Role.PSP_ADMIN else "—" for role in Role]
