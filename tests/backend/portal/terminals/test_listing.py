"""GET /v1/terminals: the caller's terminals, filtered and paged by cursor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.portal import PortalUser, Tenant, enroll_terminal, register_terminal


@dataclass
class Fleet:
    """Five terminals of one tenant: three in store A, two in store B, in various states."""

    active_a: str
    pending_a: list[str]
    decommissioned_b: str
    pending_b: str

    @property
    def store_a(self) -> set[str]:
        return {self.active_a, *self.pending_a}

    @property
    def store_b(self) -> set[str]:
        return {self.decommissioned_b, self.pending_b}

    @property
    def all(self) -> set[str]:
        return self.store_a | self.store_b


@pytest.fixture
def fleet(portal_client: httpx.Client, tenant: Tenant) -> Fleet:
    admin = tenant.admin
    active_a = enroll_terminal(portal_client, admin, tenant.store_a_id).terminal_id
    pending_a = [register_terminal(portal_client, admin, tenant.store_a_id)[0] for _ in range(2)]
    decommissioned_b = register_terminal(portal_client, admin, tenant.store_b_id)[0]
    retired = portal_client.post(
        f"/v1/terminals/{decommissioned_b}/decommission", headers=admin.headers, json={}
    )
    assert retired.status_code == 200, retired.text
    pending_b = register_terminal(portal_client, admin, tenant.store_b_id)[0]
    return Fleet(active_a, pending_a, decommissioned_b, pending_b)


def listed(portal: httpx.Client, user: PortalUser, **params: Any) -> dict[str, Any]:
    response = portal.get("/v1/terminals", headers=user.headers, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def ids(page: dict[str, Any]) -> set[str]:
    return {item["id"] for item in page["items"]}


def test_list_shows_every_terminal_of_the_tenant_and_no_other(
    portal_client: httpx.Client, tenant: Tenant, other_tenant: Tenant, fleet: Fleet
) -> None:
    register_terminal(portal_client, other_tenant.admin, other_tenant.store_a_id)

    page = listed(portal_client, tenant.admin)

    assert ids(page) == fleet.all
    assert page["next_cursor"] is None


def test_list_filters_by_store(portal_client: httpx.Client, tenant: Tenant, fleet: Fleet) -> None:
    assert ids(listed(portal_client, tenant.admin, store_id=tenant.store_a_id)) == fleet.store_a
    assert ids(listed(portal_client, tenant.admin, store_id=tenant.store_b_id)) == fleet.store_b


@pytest.mark.parametrize("status", ["pending", "active", "decommissioned", "suspended"])
def test_list_filters_by_status(
    portal_client: httpx.Client, tenant: Tenant, fleet: Fleet, status: str
) -> None:
    expected = {
        "pending": {*fleet.pending_a, fleet.pending_b},
        "active": {fleet.active_a},
        "decommissioned": {fleet.decommissioned_b},
        "suspended": set(),
    }[status]

    page = listed(portal_client, tenant.admin, status=status)

    assert ids(page) == expected
    assert {item["status"] for item in page["items"]} <= {status}


def test_store_and_status_filters_combine(
    portal_client: httpx.Client, tenant: Tenant, fleet: Fleet
) -> None:
    page = listed(portal_client, tenant.admin, store_id=tenant.store_a_id, status="pending")

    assert ids(page) == set(fleet.pending_a)


def test_unknown_status_is_refused(portal_client: httpx.Client, tenant: Tenant) -> None:
    response = portal_client.get(
        "/v1/terminals", headers=tenant.admin.headers, params={"status": "stolen"}
    )

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"


@pytest.mark.usefixtures("fleet")  # the tenant has terminals a broken filter would show
def test_filtering_by_another_tenants_store_finds_nothing(
    portal_client: httpx.Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    register_terminal(portal_client, other_tenant.admin, other_tenant.store_a_id)

    page = listed(portal_client, tenant.admin, store_id=other_tenant.store_a_id)

    assert page == {"items": [], "next_cursor": None}


def test_store_level_users_see_only_their_stores_terminals(
    portal_client: httpx.Client, tenant: Tenant, fleet: Fleet
) -> None:
    for role in ("store_manager", "cashier"):
        assert ids(listed(portal_client, tenant.user(role))) == fleet.store_a
        assert ids(listed(portal_client, tenant.user(role), store_id=tenant.store_b_id)) == set()


def test_cursor_pages_through_every_terminal_exactly_once(
    portal_client: httpx.Client, tenant: Tenant, fleet: Fleet
) -> None:
    seen: list[str] = []
    cursors: list[str | None] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = listed(portal_client, tenant.admin, **params)
        assert len(page["items"]) <= 2
        seen.extend(item["id"] for item in page["items"])
        cursors.append(page["next_cursor"])
        if page["next_cursor"] is None:
            break
        assert page["next_cursor"] == page["items"][-1]["id"]
        params["after"] = page["next_cursor"]
        assert len(cursors) < 10, "pagination does not end"

    assert len(cursors) == 3
    assert seen == sorted(fleet.all)


def test_page_that_ends_exactly_at_the_limit_has_no_next_cursor(
    portal_client: httpx.Client, tenant: Tenant, fleet: Fleet
) -> None:
    page = listed(portal_client, tenant.admin, limit=len(fleet.all))

    assert ids(page) == fleet.all
    assert page["next_cursor"] is None


def test_cursor_pages_respect_the_filters(
    portal_client: httpx.Client, tenant: Tenant, fleet: Fleet
) -> None:
    first = listed(portal_client, tenant.admin, store_id=tenant.store_a_id, limit=2)
    assert first["next_cursor"] is not None

    rest = listed(
        portal_client,
        tenant.admin,
        store_id=tenant.store_a_id,
        limit=2,
        after=first["next_cursor"],
    )

    assert ids(first) | ids(rest) == fleet.store_a
    assert not ids(first) & ids(rest)
    assert rest["next_cursor"] is None
