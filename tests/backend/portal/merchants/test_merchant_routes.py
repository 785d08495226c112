"""Merchants over real HTTP: create, read, list, update, and what each role may change."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from backend.core.authz import Role
from tests.support.portal import Tenant, unique

BANK_ACCOUNT = {
    "bank_name": "MUFG",
    "branch": "Marunouchi",
    "account_number": "00123456",
    "holder_name": "Kabushiki Kaisha Test",
}


def _create(client: httpx.Client, tenant: Tenant, **body: Any) -> httpx.Response:
    return client.post(
        "/v1/merchants", headers=tenant.admin.headers, json={"name": unique("m"), **body}
    )


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status
    return problem


def test_psp_admin_creates_a_merchant_under_their_own_psp(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    name = unique("merchant")
    response = portal_client.post(
        "/v1/merchants", headers=tenant.admin.headers, json={"name": name}
    )
    assert response.status_code == 201, response.text
    merchant = response.json()
    assert merchant["name"] == name
    assert merchant["psp_id"] == tenant.psp_id
    assert merchant["status"] == "active"
    assert merchant["bank_account_last4"] is None
    assert set(merchant) == {"id", "psp_id", "name", "status", "bank_account_last4", "created_at"}

    read = portal_client.get(f"/v1/merchants/{merchant['id']}", headers=tenant.admin.headers)
    assert read.status_code == 200
    assert read.json() == merchant


def test_a_merchant_created_with_a_bank_account_shows_only_its_last_four_digits(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    response = _create(portal_client, tenant, bank_account=BANK_ACCOUNT)
    assert response.status_code == 201, response.text
    assert response.json()["bank_account_last4"] == "3456"
    assert "00123456" not in response.text
    assert "bank_account" not in response.json()


@pytest.mark.parametrize(
    "role", [Role.MERCHANT_ADMIN, Role.STORE_MANAGER, Role.CASHIER, Role.AUDITOR]
)
def test_only_the_psp_admin_creates_merchants(
    portal_client: httpx.Client, tenant: Tenant, role: Role
) -> None:
    before = portal_client.get("/v1/merchants", headers=tenant.admin.headers).json()
    response = portal_client.post(
        "/v1/merchants", headers=tenant.user(role).headers, json={"name": unique("m")}
    )
    _problem(response, 403, "permission_denied")
    assert portal_client.get("/v1/merchants", headers=tenant.admin.headers).json() == before


def test_merchant_list_pages_by_cursor_without_gaps_or_repeats(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    created = {_create(portal_client, tenant).json()["id"] for _ in range(3)}
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        query = "?limit=2" + (f"&after={cursor}" if cursor else "")
        page = portal_client.get(f"/v1/merchants{query}", headers=tenant.admin.headers).json()
        assert len(page["items"]) <= 2
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 4  # the tenant's own merchant and the three new ones
    assert created | {tenant.merchant_id} == set(seen)
    assert seen == sorted(seen)


@pytest.mark.parametrize("role", [Role.STORE_MANAGER, Role.CASHIER, Role.AUDITOR])
def test_merchant_and_store_level_users_read_their_own_merchant(
    portal_client: httpx.Client, tenant: Tenant, role: Role
) -> None:
    headers = tenant.user(role).headers
    _create(portal_client, tenant)  # a sibling they must not see
    listed = portal_client.get("/v1/merchants", headers=headers).json()["items"]
    assert [m["id"] for m in listed] == [tenant.merchant_id]
    one = portal_client.get(f"/v1/merchants/{tenant.merchant_id}", headers=headers)
    assert one.status_code == 200
    assert one.json()["id"] == tenant.merchant_id


def test_merchant_admin_renames_their_merchant_and_changes_its_bank_account(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    headers = tenant.user(Role.MERCHANT_ADMIN).headers
    response = portal_client.patch(
        f"/v1/merchants/{tenant.merchant_id}",
        headers=headers,
        json={"name": "Renamed KK", "bank_account": {**BANK_ACCOUNT, "account_number": "77775555"}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Renamed KK"
    assert response.json()["bank_account_last4"] == "5555"
    account = portal_client.get(f"/v1/merchants/{tenant.merchant_id}/bank-account", headers=headers)
    assert account.json()["account_number"] == "77775555"


def test_a_merchant_admin_cannot_suspend_their_merchant(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    response = portal_client.patch(
        f"/v1/merchants/{tenant.merchant_id}",
        headers=tenant.user(Role.MERCHANT_ADMIN).headers,
        json={"status": "suspended", "name": "Sneaky rename"},
    )
    _problem(response, 403, "permission_denied")
    merchant = portal_client.get(
        f"/v1/merchants/{tenant.merchant_id}", headers=tenant.admin.headers
    ).json()
    assert merchant["status"] == "active"
    assert merchant["name"] != "Sneaky rename"


def test_psp_admin_suspends_and_reactivates_a_merchant(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    path = f"/v1/merchants/{tenant.merchant_id}"
    suspended = portal_client.patch(
        path, headers=tenant.admin.headers, json={"status": "suspended"}
    )
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert portal_client.get(path, headers=tenant.admin.headers).json()["status"] == "suspended"
    active = portal_client.patch(path, headers=tenant.admin.headers, json={"status": "active"})
    assert active.json()["status"] == "active"


def test_an_empty_update_changes_nothing(portal_client: httpx.Client, tenant: Tenant) -> None:
    path = f"/v1/merchants/{tenant.merchant_id}"
    before = portal_client.get(path, headers=tenant.admin.headers).json()
    response = portal_client.patch(path, headers=tenant.admin.headers, json={})
    assert response.status_code == 200
    assert response.json() == before


def test_bank_account_of_a_merchant_without_one_is_not_found(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    response = portal_client.get(
        f"/v1/merchants/{tenant.merchant_id}/bank-account", headers=tenant.admin.headers
    )
    _problem(response, 404, "bank_account_not_found")


def test_an_unknown_merchant_id_is_not_found(portal_client: httpx.Client, tenant: Tenant) -> None:
    missing = "7d0f0c1e-0000-4000-8000-000000000000"
    for method, suffix in [("GET", ""), ("PATCH", ""), ("GET", "/bank-account")]:
        body = {"name": "x"} if method == "PATCH" else None
        response = portal_client.request(
            method, f"/v1/merchants/{missing}{suffix}", headers=tenant.admin.headers, json=body
        )
        _problem(response, 404, "merchant_not_found")


# --- malformed input: a clean 4xx problem, never a 500 ----------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/merchants/not-a-uuid"),
        ("PATCH", "/v1/merchants/not-a-uuid"),
        ("GET", "/v1/merchants/not-a-uuid/bank-account"),
        ("GET", "/v1/merchants/12345"),
        ("GET", "/v1/merchants?after=not-a-uuid"),
        ("GET", "/v1/merchants?limit=0"),
        ("GET", "/v1/merchants?limit=201"),
        ("GET", "/v1/merchants?limit=many"),
    ],
)
def test_malformed_ids_and_query_parameters_are_validation_failures(
    portal_client: httpx.Client, tenant: Tenant, method: str, path: str
) -> None:
    body = {"name": "x"} if method == "PATCH" else None
    response = portal_client.request(method, path, headers=tenant.admin.headers, json=body)
    problem = _problem(response, 422, "validation_failed")
    assert problem["errors"], problem


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "psp_id": "00000000-0000-4000-8000-000000000000"},
        {"name": "x", "status": "active"},
        {"name": "x", "bank_account_last4": "1234"},
        {"name": ""},
        {"name": "x" * 201},
        {},
        {"name": None},
        {"name": "x", "bank_account": {**BANK_ACCOUNT, "iban": "DE00"}},
        {"name": "x", "bank_account": {**BANK_ACCOUNT, "account_number": "12-34"}},
        {"name": "x", "bank_account": {**BANK_ACCOUNT, "account_number": "123"}},
        {"name": "x", "bank_account": {"bank_name": "MUFG"}},
        {"name": "x", "bank_account": "00123456"},
    ],
)
def test_invalid_merchant_bodies_are_refused(
    portal_client: httpx.Client, tenant: Tenant, body: dict[str, Any]
) -> None:
    before = portal_client.get("/v1/merchants", headers=tenant.admin.headers).json()
    response = portal_client.post("/v1/merchants", headers=tenant.admin.headers, json=body)
    problem = _problem(response, 422, "validation_failed")
    # The refused input is not echoed back (it may carry an account number).
    assert "00123456" not in response.text
    assert "input" not in problem["errors"][0]
    assert portal_client.get("/v1/merchants", headers=tenant.admin.headers).json() == before


@pytest.mark.parametrize(
    "body",
    [
        {"psp_id": "00000000-0000-4000-8000-000000000000"},
        {"id": "00000000-0000-4000-8000-000000000000"},
        {"status": "closed"},
        {"bank_account_last4": "0000"},
        {"name": ""},
    ],
)
def test_invalid_merchant_updates_are_refused(
    portal_client: httpx.Client, tenant: Tenant, body: dict[str, Any]
) -> None:
    path = f"/v1/merchants/{tenant.merchant_id}"
    before = portal_client.get(path, headers=tenant.admin.headers).json()
    response = portal_client.patch(path, headers=tenant.admin.headers, json=body)
    _problem(response, 422, "validation_failed")
    assert portal_client.get(path, headers=tenant.admin.headers).json() == before


def test_a_body_that_is_not_json_is_a_bad_request(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    response = portal_client.post(
        "/v1/merchants",
        headers={**tenant.admin.headers, "content-type": "application/json"},
        content=b'{"name": ',
    )
    _problem(response, 400, "malformed_json")
