"""A terminal outside the caller's scope does not exist for them."""

from __future__ import annotations

import httpx
import pytest

from backend.core.settings import Settings
from tests.backend.portal.devices.db import audit_rows, new_request_id, terminal_row
from tests.support.portal import EnrolledTerminal, Tenant, bearer, enroll_terminal

# (method, path suffix, JSON body)
OPERATIONS = {
    "get": ("GET", "", None),
    "suspend": ("POST", "/suspend", {}),
    "reactivate": ("POST", "/reactivate", {}),
    "decommission": ("POST", "/decommission", {}),
    "activation-code": ("POST", "/activation-code", None),
}


def call(
    portal: httpx.Client, headers: dict[str, str], terminal_id: str, operation: str
) -> tuple[httpx.Response, str]:
    method, suffix, body = OPERATIONS[operation]
    request_id = new_request_id()
    response = portal.request(
        method,
        f"/v1/terminals/{terminal_id}{suffix}",
        headers={**headers, "x-request-id": request_id},
        json=body,
    )
    return response, request_id


@pytest.fixture
def foreign_terminal(portal_client: httpx.Client, other_tenant: Tenant) -> EnrolledTerminal:
    return enroll_terminal(portal_client, other_tenant.admin, other_tenant.store_a_id)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_another_tenants_terminal_is_not_found(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    foreign_terminal: EnrolledTerminal,
    operation: str,
) -> None:
    before = terminal_row(test_settings, foreign_terminal.terminal_id)

    response, request_id = call(
        portal_client, tenant.admin.headers, foreign_terminal.terminal_id, operation
    )

    assert response.status_code == 404, response.text
    assert response.json()["code"] == "terminal_not_found"
    assert terminal_row(test_settings, foreign_terminal.terminal_id) == before
    assert audit_rows(test_settings, request_id=request_id) == []


@pytest.mark.parametrize("operation", OPERATIONS)
def test_store_manager_cannot_reach_a_terminal_of_another_store(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    operation: str,
) -> None:
    in_store_b = enroll_terminal(portal_client, tenant.admin, tenant.store_b_id).terminal_id
    before = terminal_row(test_settings, in_store_b)

    response, _ = call(portal_client, tenant.user("store_manager").headers, in_store_b, operation)

    assert response.status_code == 404, response.text
    assert response.json()["code"] == "terminal_not_found"
    assert terminal_row(test_settings, in_store_b) == before


def test_unknown_terminal_is_not_found(portal_client: httpx.Client, tenant: Tenant) -> None:
    response, _ = call(
        portal_client, tenant.admin.headers, "00000000-0000-4000-8000-000000000000", "get"
    )

    assert response.status_code == 404, response.text
    assert response.json()["code"] == "terminal_not_found"


def test_terminal_of_the_callers_tenant_is_found(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    terminal = enroll_terminal(portal_client, tenant.admin, tenant.store_a_id)

    response, _ = call(portal_client, tenant.user("cashier").headers, terminal.terminal_id, "get")

    assert response.status_code == 200, response.text
    assert response.json()["id"] == terminal.terminal_id
    assert response.json()["status"] == "active"


def test_device_token_cannot_manage_terminals(portal_client: httpx.Client, tenant: Tenant) -> None:
    terminal = enroll_terminal(portal_client, tenant.admin, tenant.store_a_id)
    device = bearer(terminal.fresh_token(portal_client))

    listed = portal_client.get("/v1/terminals", headers=device)
    suspended, _ = call(portal_client, device, terminal.terminal_id, "suspend")

    for response in (listed, suspended):
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "permission_denied"


def test_terminal_api_requires_a_token(portal_client: httpx.Client) -> None:
    response = portal_client.get("/v1/terminals")

    assert response.status_code == 401, response.text
    assert response.json()["code"] == "missing_token"
