"""Stores over real HTTP: who opens and changes them, time zones, listing and filtering."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from backend.core.authz import Role
from tests.support.portal import Tenant, unique


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    return problem


def _store_ids(client: httpx.Client, headers: dict[str, str], query: str = "") -> list[str]:
    response = client.get(f"/v1/stores?limit=200{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [store["id"] for store in response.json()["items"]]


@pytest.mark.parametrize("role", [Role.PSP_ADMIN, Role.MERCHANT_ADMIN])
def test_psp_and_merchant_admins_open_stores(
    portal_client: httpx.Client, tenant: Tenant, role: Role
) -> None:
    name = unique("store")
    response = portal_client.post(
        "/v1/stores",
        headers=tenant.user(role).headers,
        json={"merchant_id": tenant.merchant_id, "name": name, "timezone": "Europe/Berlin"},
    )
    assert response.status_code == 201, response.text
    store = response.json()
    assert store["merchant_id"] == tenant.merchant_id
    assert store["psp_id"] == tenant.psp_id
    assert store["name"] == name
    assert store["timezone"] == "Europe/Berlin"
    assert store["status"] == "active"
    assert portal_client.get(f"/v1/stores/{store['id']}", headers=tenant.admin.headers).json() == (
        store
    )


def test_a_new_store_defaults_to_tokyo_time(portal_client: httpx.Client, tenant: Tenant) -> None:
    response = portal_client.post(
        "/v1/stores",
        headers=tenant.admin.headers,
        json={"merchant_id": tenant.merchant_id, "name": "Default tz"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["timezone"] == "Asia/Tokyo"


@pytest.mark.parametrize("role", [Role.STORE_MANAGER, Role.CASHIER, Role.AUDITOR])
def test_other_roles_cannot_open_stores(
    portal_client: httpx.Client, tenant: Tenant, role: Role
) -> None:
    before = _store_ids(portal_client, tenant.admin.headers)
    response = portal_client.post(
        "/v1/stores",
        headers=tenant.user(role).headers,
        json={"merchant_id": tenant.merchant_id, "name": "Not allowed"},
    )
    _problem(response, 403, "permission_denied")
    assert _store_ids(portal_client, tenant.admin.headers) == before


def test_merchant_admin_renames_moves_time_zone_and_closes_a_store(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    path = f"/v1/stores/{tenant.store_b_id}"
    response = portal_client.patch(
        path,
        headers=tenant.user(Role.MERCHANT_ADMIN).headers,
        json={"name": "Store B (old town)", "timezone": "America/New_York", "status": "closed"},
    )
    assert response.status_code == 200, response.text
    store = portal_client.get(path, headers=tenant.admin.headers).json()
    assert (store["name"], store["timezone"], store["status"]) == (
        "Store B (old town)",
        "America/New_York",
        "closed",
    )


@pytest.mark.parametrize("role", [Role.STORE_MANAGER, Role.CASHIER, Role.AUDITOR])
def test_other_roles_cannot_change_a_store_even_their_own(
    portal_client: httpx.Client, tenant: Tenant, role: Role
) -> None:
    path = f"/v1/stores/{tenant.store_a_id}"
    before = portal_client.get(path, headers=tenant.admin.headers).json()
    response = portal_client.patch(
        path, headers=tenant.user(role).headers, json={"name": "Renamed", "status": "closed"}
    )
    _problem(response, 403, "permission_denied")
    assert portal_client.get(path, headers=tenant.admin.headers).json() == before


def test_stores_are_filtered_by_merchant(portal_client: httpx.Client, tenant: Tenant) -> None:
    other = portal_client.post("/v1/merchants", headers=tenant.admin.headers, json={"name": "M2"})
    other_id = other.json()["id"]
    other_store = portal_client.post(
        "/v1/stores", headers=tenant.admin.headers, json={"merchant_id": other_id, "name": "M2-S"}
    ).json()["id"]

    everything = set(_store_ids(portal_client, tenant.admin.headers))
    assert {tenant.store_a_id, tenant.store_b_id, other_store} <= everything
    first = _store_ids(portal_client, tenant.admin.headers, f"&merchant_id={tenant.merchant_id}")
    assert set(first) == {tenant.store_a_id, tenant.store_b_id}
    assert _store_ids(portal_client, tenant.admin.headers, f"&merchant_id={other_id}") == [
        other_store
    ]


@pytest.mark.parametrize("role", [Role.STORE_MANAGER, Role.CASHIER])
def test_store_level_users_see_only_their_own_store(
    portal_client: httpx.Client, tenant: Tenant, role: Role
) -> None:
    headers = tenant.user(role).headers
    assert _store_ids(portal_client, headers) == [tenant.store_a_id]
    assert _store_ids(portal_client, headers, f"&merchant_id={tenant.merchant_id}") == [
        tenant.store_a_id
    ]
    assert portal_client.get(f"/v1/stores/{tenant.store_a_id}", headers=headers).status_code == 200


def test_stores_page_by_cursor(portal_client: httpx.Client, tenant: Tenant) -> None:
    for index in range(3):
        portal_client.post(
            "/v1/stores",
            headers=tenant.admin.headers,
            json={"merchant_id": tenant.merchant_id, "name": f"extra {index}"},
        )
    seen: list[str] = []
    cursor = None
    while True:
        query = f"?merchant_id={tenant.merchant_id}&limit=2" + (
            f"&after={cursor}" if cursor else ""
        )
        page = portal_client.get(f"/v1/stores{query}", headers=tenant.admin.headers).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(seen) < 20, "paging does not end"
    assert len(seen) == len(set(seen)) == 5


# --- malformed input ---------------------------------------------------------------------------

BAD_TIME_ZONES = [
    "Mars/Olympus_Mons",
    "asia/tokyo",
    "",
    "../../etc/passwd",
    "/etc/localtime",
    "Asia/",
    "zone.tab",
    "x" * 65,
    # Files of the zoneinfo tree that are no IANA zone name: the server's own local time and
    # the leap-second and POSIX copies, which give other local times than their names suggest.
    "localtime",
    "posixrules",
    "right/Asia/Tokyo",
    "posix/Asia/Tokyo",
]


@pytest.mark.parametrize("timezone", BAD_TIME_ZONES)
def test_opening_a_store_in_an_unknown_time_zone_is_refused(
    portal_client: httpx.Client, tenant: Tenant, timezone: str
) -> None:
    before = _store_ids(portal_client, tenant.admin.headers)
    response = portal_client.post(
        "/v1/stores",
        headers=tenant.admin.headers,
        json={"merchant_id": tenant.merchant_id, "name": "tz", "timezone": timezone},
    )
    problem = _problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"][-1] == "timezone"
    assert _store_ids(portal_client, tenant.admin.headers) == before


@pytest.mark.parametrize("timezone", BAD_TIME_ZONES)
def test_moving_a_store_to_an_unknown_time_zone_is_refused(
    portal_client: httpx.Client, tenant: Tenant, timezone: str
) -> None:
    path = f"/v1/stores/{tenant.store_a_id}"
    response = portal_client.patch(path, headers=tenant.admin.headers, json={"timezone": timezone})
    _problem(response, 422, "validation_failed")
    assert portal_client.get(path, headers=tenant.admin.headers).json()["timezone"] == "Asia/Tokyo"


@pytest.mark.parametrize("timezone", ["UTC", "Etc/GMT+9", "America/Argentina/Buenos_Aires"])
def test_iana_time_zones_are_accepted(
    portal_client: httpx.Client, tenant: Tenant, timezone: str
) -> None:
    response = portal_client.patch(
        f"/v1/stores/{tenant.store_a_id}", headers=tenant.admin.headers, json={"timezone": timezone}
    )
    assert response.status_code == 200, response.text
    assert response.json()["timezone"] == timezone


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/stores/not-a-uuid"),
        ("PATCH", "/v1/stores/not-a-uuid"),
        ("GET", "/v1/stores?merchant_id=nope"),
        ("GET", "/v1/stores?after=nope"),
        ("GET", "/v1/stores?limit=-1"),
    ],
)
def test_malformed_store_ids_are_validation_failures(
    portal_client: httpx.Client, tenant: Tenant, method: str, path: str
) -> None:
    body = {"name": "x"} if method == "PATCH" else None
    response = portal_client.request(method, path, headers=tenant.admin.headers, json=body)
    _problem(response, 422, "validation_failed")


@pytest.mark.parametrize(
    "extra",
    [
        {"merchant_id": "00000000-0000-4000-8000-000000000000"},
        {"psp_id": "00000000-0000-4000-8000-000000000000"},
        {"status": "demolished"},
        {"name": ""},
        {"opened_on": "2024-01-01"},
    ],
)
def test_a_store_cannot_be_moved_or_given_unknown_fields(
    portal_client: httpx.Client, tenant: Tenant, extra: dict[str, Any]
) -> None:
    path = f"/v1/stores/{tenant.store_a_id}"
    before = portal_client.get(path, headers=tenant.admin.headers).json()
    response = portal_client.patch(path, headers=tenant.admin.headers, json=extra)
    _problem(response, 422, "validation_failed")
    assert portal_client.get(path, headers=tenant.admin.headers).json() == before


@pytest.mark.parametrize(
    "body",
    [
        {"name": "no merchant"},
        {"merchant_id": "not-a-uuid", "name": "x"},
        {"merchant_id": None, "name": "x"},
        {"merchant_id": "{merchant}", "name": "x", "status": "active"},
        {"merchant_id": "{merchant}", "name": "x", "psp_id": "00000000-0000-4000-8000-0000000000"},
        {"merchant_id": "{merchant}"},
    ],
)
def test_invalid_store_bodies_are_refused(
    portal_client: httpx.Client, tenant: Tenant, body: dict[str, Any]
) -> None:
    body = {k: (tenant.merchant_id if v == "{merchant}" else v) for k, v in body.items()}
    response = portal_client.post("/v1/stores", headers=tenant.admin.headers, json=body)
    _problem(response, 422, "validation_failed")


def test_an_unknown_store_is_not_found(portal_client: httpx.Client, tenant: Tenant) -> None:
    missing = "5a1e0000-0000-4000-8000-000000000000"
    _problem(
        portal_client.get(f"/v1/stores/{missing}", headers=tenant.admin.headers),
        404,
        "store_not_found",
    )
    _problem(
        portal_client.post(
            "/v1/stores", headers=tenant.admin.headers, json={"merchant_id": missing, "name": "x"}
        ),
        404,
        "merchant_not_found",
    )


def test_a_store_name_with_a_nul_character_is_a_422_not_a_500(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    """Found by the API fuzzer: PostgreSQL cannot store NUL, and the update failed with a 500."""
    # The exact body the fuzzer sent (JSON escapes; \ud9d6\ude23 is one valid character).
    response = portal_client.patch(
        f"/v1/stores/{tenant.store_b_id}",
        headers={**tenant.admin.headers, "content-type": "application/json"},
        content=b'{"name": "\\u0000\\u00fb\\u00af\\u000e \\ud9d6\\ude23"}',
    )
    body = _problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "name"]
    name = portal_client.get(f"/v1/stores/{tenant.store_b_id}", headers=tenant.admin.headers)
    assert name.json()["name"] == "Store B"
