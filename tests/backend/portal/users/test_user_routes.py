"""Users over real HTTP: creation, role and status changes, and the rules that guard them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from backend.core.authz import Role
from tests.support.portal import PASSWORD, Tenant, create_user, unique


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    return problem


def _body(role: str, **fields: Any) -> dict[str, Any]:
    return {
        "email": f"{unique(role)}@example.com",
        "display_name": f"New {role}",
        "password": PASSWORD,
        "role": role,
        **fields,
    }


def _user(client: httpx.Client, tenant: Tenant, user_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/users/{user_id}", headers=tenant.admin.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _emails(client: httpx.Client, tenant: Tenant) -> set[str]:
    response = client.get("/v1/users?limit=200", headers=tenant.admin.headers)
    assert response.status_code == 200, response.text
    return {user["email"] for user in response.json()["items"]}


# Failed logins count against 127.0.0.1's per-IP limit for the whole session: only tests about
# logging in make them.
def _login(client: httpx.Client, email: str) -> httpx.Response:
    return client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})


# --- creation ----------------------------------------------------------------------------------


def test_created_user_lives_where_their_role_says_and_can_log_in(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    body = _body("cashier", store_id=tenant.store_b_id)
    body["email"] = body["email"].replace("cashier", "Mixed.Case")
    response = portal_client.post("/v1/users", headers=tenant.admin.headers, json=body)
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["email"] == body["email"].lower()
    assert user["role"] == "cashier"
    assert user["status"] == "active"
    assert (user["psp_id"], user["merchant_id"], user["store_id"]) == (
        tenant.psp_id,
        tenant.merchant_id,
        tenant.store_b_id,
    )
    assert set(user) == {
        "id",
        "email",
        "display_name",
        "role",
        "status",
        "psp_id",
        "merchant_id",
        "store_id",
        "created_at",
    }
    assert PASSWORD not in response.text
    assert _login(portal_client, body["email"].upper()).status_code == 200


def test_a_psp_admin_creates_another_psp_admin_without_merchant_or_store(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    response = portal_client.post(
        "/v1/users", headers=tenant.admin.headers, json=_body("psp_admin")
    )
    assert response.status_code == 201, response.text
    assert (response.json()["merchant_id"], response.json()["store_id"]) == (None, None)


def test_a_duplicate_email_is_a_conflict_whatever_its_case(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    existing = tenant.user(Role.CASHIER).email
    body = _body("cashier", store_id=tenant.store_a_id, email=existing.upper())
    _problem(
        portal_client.post("/v1/users", headers=tenant.admin.headers, json=body), 409, "email_taken"
    )


def test_an_email_taken_in_another_tenant_is_a_conflict_too(
    portal_client: httpx.Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    # E-mail is the login name, so it is unique across every tenant.
    body = _body("cashier", store_id=tenant.store_a_id, email=other_tenant.user("cashier").email)
    _problem(
        portal_client.post("/v1/users", headers=tenant.admin.headers, json=body), 409, "email_taken"
    )


def test_simultaneous_creations_with_one_email_make_one_user_and_one_conflict(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    email = f"{unique('race')}@example.com"
    bodies = [
        _body("cashier", store_id=tenant.store_a_id, email=email, display_name=f"racer {n}")
        for n in range(4)
    ]

    def create(body: dict[str, Any]) -> httpx.Response:
        with httpx.Client(base_url=str(portal_client.base_url), timeout=10.0) as client:
            return client.post("/v1/users", headers=tenant.admin.headers, json=body)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        responses = list(pool.map(create, bodies))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 409, 409, 409], [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == "email_taken"
    users = portal_client.get("/v1/users?limit=200", headers=tenant.admin.headers).json()["items"]
    assert [u["email"] for u in users].count(email) == 1


@pytest.mark.parametrize("password", ["", "tiny-pw1", "elevenchars", "x" * 11])
def test_a_password_shorter_than_twelve_characters_is_refused(
    portal_client: httpx.Client, tenant: Tenant, password: str
) -> None:
    body = _body("cashier", store_id=tenant.store_a_id, password=password)
    response = portal_client.post("/v1/users", headers=tenant.admin.headers, json=body)
    problem = _problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"][-1] == "password"
    if password:
        assert password not in response.text
    assert body["email"] not in _emails(portal_client, tenant)


def test_a_twelve_character_password_is_enough(portal_client: httpx.Client, tenant: Tenant) -> None:
    body = _body("cashier", store_id=tenant.store_a_id, password="x" * 12)
    assert (
        portal_client.post("/v1/users", headers=tenant.admin.headers, json=body).status_code == 201
    )


@pytest.mark.parametrize(
    ("creator", "role"),
    [
        (Role.STORE_MANAGER, "merchant_admin"),
        (Role.STORE_MANAGER, "store_manager"),
        (Role.STORE_MANAGER, "auditor"),
        (Role.STORE_MANAGER, "psp_admin"),
        (Role.MERCHANT_ADMIN, "psp_admin"),
    ],
)
def test_nobody_grants_a_role_above_what_they_may_assign(
    portal_client: httpx.Client, tenant: Tenant, creator: Role, role: str
) -> None:
    fields: dict[str, Any] = {}
    if role in ("merchant_admin", "auditor"):
        fields["merchant_id"] = tenant.merchant_id
    elif role in ("store_manager", "cashier"):
        fields["store_id"] = tenant.store_a_id
    body = _body(role, **fields)
    response = portal_client.post("/v1/users", headers=tenant.user(creator).headers, json=body)
    _problem(response, 403, "role_not_assignable")
    assert body["email"] not in _emails(portal_client, tenant)


def test_a_store_manager_creates_cashiers_in_their_own_store_only(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    manager = tenant.user(Role.STORE_MANAGER).headers
    created = portal_client.post(
        "/v1/users", headers=manager, json=_body("cashier", store_id=tenant.store_a_id)
    )
    assert created.status_code == 201, created.text
    assert created.json()["store_id"] == tenant.store_a_id
    elsewhere = portal_client.post(
        "/v1/users", headers=manager, json=_body("cashier", store_id=tenant.store_b_id)
    )
    _problem(elsewhere, 404, "store_not_found")


@pytest.mark.parametrize(
    ("role", "fields"),
    [
        ("psp_admin", {"merchant_id": "{merchant}"}),
        ("psp_admin", {"store_id": "{store_a}"}),
        ("merchant_admin", {}),
        ("merchant_admin", {"merchant_id": "{merchant}", "store_id": "{store_a}"}),
        ("auditor", {"store_id": "{store_a}"}),
        ("cashier", {"merchant_id": "{merchant}"}),
        ("store_manager", {}),
    ],
)
def test_a_role_must_come_with_exactly_the_ids_of_its_level(
    portal_client: httpx.Client, tenant: Tenant, role: str, fields: dict[str, str]
) -> None:
    ids = {"{merchant}": tenant.merchant_id, "{store_a}": tenant.store_a_id}
    body = _body(role, **{key: ids[value] for key, value in fields.items()})
    response = portal_client.post("/v1/users", headers=tenant.admin.headers, json=body)
    _problem(response, 422, "role_scope_mismatch")


def test_a_store_of_another_merchant_than_the_one_named_is_a_mismatch(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    m2 = portal_client.post("/v1/merchants", headers=tenant.admin.headers, json={"name": "M2"})
    body = _body("cashier", merchant_id=m2.json()["id"], store_id=tenant.store_a_id)
    response = portal_client.post("/v1/users", headers=tenant.admin.headers, json=body)
    _problem(response, 422, "role_scope_mismatch")


@pytest.mark.parametrize(
    "change",
    [
        {"role": "terminal"},
        {"role": "superuser"},
        {"psp_id": "00000000-0000-4000-8000-000000000000"},
        {"merchant_id": "00000000-0000-4000-8000-000000000000"},
        {"store_id": "00000000-0000-4000-8000-000000000000"},
        {"email": "new@example.com"},
        {"password": "a new long password"},
        {"status": "deleted"},
        {"display_name": ""},
    ],
)
def test_invalid_user_updates_are_refused(
    portal_client: httpx.Client, tenant: Tenant, change: dict[str, Any]
) -> None:
    cashier = tenant.user(Role.CASHIER)
    before = _user(portal_client, tenant, cashier.id)
    response = portal_client.patch(
        f"/v1/users/{cashier.id}", headers=tenant.admin.headers, json=change
    )
    _problem(response, 422, "validation_failed")
    assert _user(portal_client, tenant, cashier.id) == before


@pytest.mark.parametrize(
    "body",
    [
        {"role": "cashier"},
        {"email": "not-an-email", "display_name": "x", "password": PASSWORD, "role": "cashier"},
        {"email": "a@example.com", "display_name": "x", "password": PASSWORD, "role": "terminal"},
        {
            "email": "a@example.com",
            "display_name": "x",
            "password": PASSWORD,
            "role": "cashier",
            "store_id": "nope",
        },
        {
            "email": "a@example.com",
            "display_name": "x",
            "password": PASSWORD,
            "role": "cashier",
            "psp_id": "00000000-0000-4000-8000-000000000000",
        },
        {
            "email": "a@example.com",
            "display_name": "x",
            "password": PASSWORD,
            "role": "cashier",
            "status": "disabled",
        },
    ],
)
def test_invalid_user_bodies_are_refused(
    portal_client: httpx.Client, tenant: Tenant, body: dict[str, Any]
) -> None:
    response = portal_client.post("/v1/users", headers=tenant.admin.headers, json=body)
    _problem(response, 422, "validation_failed")
    assert PASSWORD not in response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/users/not-a-uuid"),
        ("PATCH", "/v1/users/not-a-uuid"),
        ("GET", "/v1/users?after=not-a-uuid"),
        ("GET", "/v1/users?limit=1000"),
    ],
)
def test_malformed_user_ids_are_validation_failures(
    portal_client: httpx.Client, tenant: Tenant, method: str, path: str
) -> None:
    body = {"display_name": "x"} if method == "PATCH" else None
    response = portal_client.request(method, path, headers=tenant.admin.headers, json=body)
    _problem(response, 422, "validation_failed")


# --- role and status changes -------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.PSP_ADMIN, Role.MERCHANT_ADMIN, Role.STORE_MANAGER])
@pytest.mark.parametrize(
    "change", [{"status": "disabled"}, {"role": "auditor"}, {"role": "cashier"}]
)
def test_nobody_changes_their_own_role_or_status(
    portal_client: httpx.Client, tenant: Tenant, role: Role, change: dict[str, str]
) -> None:
    me = tenant.user(role)
    before = _user(portal_client, tenant, me.id)
    response = portal_client.patch(f"/v1/users/{me.id}", headers=me.headers, json=change)
    _problem(response, 403, "cannot_modify_self")
    assert _user(portal_client, tenant, me.id) == before


def test_anyone_with_user_write_renames_themself(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    me = tenant.user(Role.STORE_MANAGER)
    response = portal_client.patch(
        f"/v1/users/{me.id}", headers=me.headers, json={"display_name": "Manager Sato"}
    )
    assert response.status_code == 200, response.text
    assert _user(portal_client, tenant, me.id)["display_name"] == "Manager Sato"


@pytest.mark.parametrize(
    ("user_role", "new_role"),
    [
        (Role.CASHIER, "auditor"),
        (Role.CASHIER, "merchant_admin"),
        (Role.AUDITOR, "store_manager"),
        (Role.MERCHANT_ADMIN, "psp_admin"),
        (Role.STORE_MANAGER, "merchant_admin"),
    ],
)
def test_a_role_change_across_levels_is_refused(
    portal_client: httpx.Client, tenant: Tenant, user_role: Role, new_role: str
) -> None:
    target = tenant.user(user_role)
    before = _user(portal_client, tenant, target.id)
    response = portal_client.patch(
        f"/v1/users/{target.id}", headers=tenant.admin.headers, json={"role": new_role}
    )
    _problem(response, 422, "role_scope_mismatch")
    assert _user(portal_client, tenant, target.id) == before


def test_a_role_change_within_a_level_takes_effect_at_next_login(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    cashier = create_user(portal_client, tenant.admin, Role.CASHIER, store_id=tenant.store_a_id)
    response = portal_client.patch(
        f"/v1/users/{cashier.id}",
        headers=tenant.user(Role.MERCHANT_ADMIN).headers,
        json={"role": "store_manager"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "store_manager"
    tokens = _login(portal_client, cashier.email).json()
    me = portal_client.get(
        "/v1/auth/me", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.json()["role"] == "store_manager"
    assert "user:write" in me.json()["permissions"]


def test_a_store_manager_cannot_promote_a_cashier_to_their_own_role(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    cashier = create_user(portal_client, tenant.admin, Role.CASHIER, store_id=tenant.store_a_id)
    response = portal_client.patch(
        f"/v1/users/{cashier.id}",
        headers=tenant.user(Role.STORE_MANAGER).headers,
        json={"role": "store_manager"},
    )
    _problem(response, 403, "role_not_assignable")
    assert _user(portal_client, tenant, cashier.id)["role"] == "cashier"


def test_a_store_manager_cannot_disable_a_fellow_store_manager(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    peer = create_user(portal_client, tenant.admin, Role.STORE_MANAGER, store_id=tenant.store_a_id)
    response = portal_client.patch(
        f"/v1/users/{peer.id}",
        headers=tenant.user(Role.STORE_MANAGER).headers,
        json={"status": "disabled"},
    )
    _problem(response, 403, "role_not_assignable")
    assert _user(portal_client, tenant, peer.id)["status"] == "active"


def test_a_merchant_admin_cannot_touch_a_psp_admin(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    response = portal_client.patch(
        f"/v1/users/{tenant.admin.id}",
        headers=tenant.user(Role.MERCHANT_ADMIN).headers,
        json={"status": "disabled"},
    )
    _problem(response, 404, "user_not_found")


def test_a_disabled_user_cannot_log_in_until_reenabled(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    cashier = create_user(portal_client, tenant.admin, Role.CASHIER, store_id=tenant.store_a_id)
    manager = tenant.user(Role.STORE_MANAGER).headers
    disabled = portal_client.patch(
        f"/v1/users/{cashier.id}", headers=manager, json={"status": "disabled"}
    )
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["status"] == "disabled"
    _problem(_login(portal_client, cashier.email), 401, "invalid_credentials")
    refreshed = portal_client.post(
        "/v1/auth/refresh", json={"refresh_token": cashier.refresh_token}
    )
    assert refreshed.status_code == 401

    enabled = portal_client.patch(
        f"/v1/users/{cashier.id}", headers=manager, json={"status": "active"}
    )
    assert enabled.json()["status"] == "active"
    assert _login(portal_client, cashier.email).status_code == 200


@pytest.mark.parametrize("role", [Role.CASHIER, Role.AUDITOR])
def test_cashiers_and_auditors_change_no_user(
    portal_client: httpx.Client, tenant: Tenant, role: Role
) -> None:
    target = create_user(portal_client, tenant.admin, Role.CASHIER, store_id=tenant.store_a_id)
    before = _user(portal_client, tenant, target.id)
    for change in ({"display_name": "x"}, {"status": "disabled"}, {"role": "store_manager"}):
        response = portal_client.patch(
            f"/v1/users/{target.id}", headers=tenant.user(role).headers, json=change
        )
        _problem(response, 403, "permission_denied")
    _problem(
        portal_client.post(
            "/v1/users",
            headers=tenant.user(role).headers,
            json=_body("cashier", store_id=tenant.store_a_id),
        ),
        403,
        "permission_denied",
    )
    assert _user(portal_client, tenant, target.id) == before


def test_users_list_pages_by_cursor(portal_client: httpx.Client, tenant: Tenant) -> None:
    everyone: list[str] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&after={cursor}" if cursor else "")
        page = portal_client.get(f"/v1/users{query}", headers=tenant.admin.headers).json()
        everyone.extend(user["id"] for user in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(everyone) < 50, "paging does not end"
    assert sorted(everyone) == everyone
    assert set(everyone) == {user.id for user in tenant.users.values()}
