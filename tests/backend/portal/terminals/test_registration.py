"""POST /v1/terminals: staff register a terminal and get its one-time activation code."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import httpx
import pytest

from backend.core.settings import Settings
from tests.backend.portal.devices.db import (
    audit_rows,
    fetch,
    new_request_id,
    terminal_row,
)
from tests.support.portal import PortalUser, Tenant, unique

CODE_FORMAT = re.compile(r"^[A-HJKMNP-TV-Z2-9]{4}-[A-HJKMNP-TV-Z2-9]{4}-[A-HJKMNP-TV-Z2-9]{4}$")


def register(
    portal: httpx.Client,
    user: PortalUser,
    store_id: str,
    *,
    serial: str | None = None,
    request_id: str | None = None,
) -> httpx.Response:
    return portal.post(
        "/v1/terminals",
        headers={**user.headers, "x-request-id": request_id or new_request_id()},
        json={"store_id": store_id, "serial": serial or unique("SN").upper(), "name": "Till 1"},
    )


def test_registered_terminal_is_pending_with_a_fresh_activation_code(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    serial = unique("SN").upper()

    response = register(portal_client, tenant.admin, tenant.store_a_id, serial=serial)

    assert response.status_code == 201, response.text
    terminal, activation = response.json()["terminal"], response.json()["activation"]
    assert terminal["psp_id"] == tenant.psp_id
    assert terminal["merchant_id"] == tenant.merchant_id
    assert terminal["store_id"] == tenant.store_a_id
    assert terminal["serial"] == serial
    assert terminal["name"] == "Till 1"
    assert terminal["model"] == "SmartPOS"
    assert terminal["status"] == "pending"
    assert terminal["key_thumbprint"] is None
    assert terminal["enrolled_at"] is None
    assert activation["terminal_id"] == terminal["id"]
    assert CODE_FORMAT.match(activation["activation_code"]), activation
    expires_at = dt.datetime.fromisoformat(activation["expires_at"])
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=test_settings.activation_code_ttl_s)
    assert abs(expires_at - expected) < dt.timedelta(minutes=1)


def test_activation_code_is_shown_once_and_stored_only_as_a_hash(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    response = register(portal_client, tenant.admin, tenant.store_a_id)
    assert response.status_code == 201, response.text
    terminal_id = response.json()["terminal"]["id"]
    code = response.json()["activation"]["activation_code"]

    row = terminal_row(test_settings, terminal_id)
    assert row["activation_code_hash"] == hashlib.sha256(code.replace("-", "").encode()).hexdigest()
    assert code not in repr(row)
    assert code.replace("-", "") not in repr(row)
    shown = portal_client.get(f"/v1/terminals/{terminal_id}", headers=tenant.admin.headers)
    listed = portal_client.get("/v1/terminals", headers=tenant.admin.headers)
    for later in (shown, listed):
        assert later.status_code == 200, later.text
        assert code not in later.text
        assert "activation_code" not in later.text


def test_registration_is_audited(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    request_id = new_request_id()
    serial = unique("SN").upper()

    response = register(
        portal_client, tenant.admin, tenant.store_b_id, serial=serial, request_id=request_id
    )

    assert response.status_code == 201, response.text
    (row,) = audit_rows(test_settings, request_id=request_id)
    assert row["event_type"] == "terminal.registered"
    assert row["outcome"] == "success"
    assert row["actor_type"] == "user"
    assert row["actor_id"] == tenant.admin.id
    assert row["target_id"] == response.json()["terminal"]["id"]
    assert str(row["merchant_id"]) == tenant.merchant_id
    assert str(row["store_id"]) == tenant.store_b_id
    assert row["detail"] == {"serial": serial, "store_id": tenant.store_b_id}


def test_serial_can_be_registered_only_once(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    serial = unique("SN").upper()
    assert (
        register(portal_client, tenant.admin, tenant.store_a_id, serial=serial).status_code == 201
    )
    request_id = new_request_id()

    again = register(
        portal_client, tenant.admin, tenant.store_b_id, serial=serial, request_id=request_id
    )

    assert again.status_code == 409, again.text
    assert again.json()["code"] == "serial_taken"
    rows = fetch(test_settings, "SELECT id FROM portal.terminals WHERE serial = :s", s=serial)
    assert len(rows) == 1
    assert audit_rows(test_settings, request_id=request_id) == []


def test_serial_is_unique_across_tenants(
    portal_client: httpx.Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    serial = unique("SN").upper()
    assert (
        register(portal_client, tenant.admin, tenant.store_a_id, serial=serial).status_code == 201
    )

    again = register(portal_client, other_tenant.admin, other_tenant.store_a_id, serial=serial)

    assert again.status_code == 409, again.text
    assert again.json()["code"] == "serial_taken"


@pytest.mark.parametrize("role", ["psp_admin", "merchant_admin", "store_manager"])
def test_staff_who_manage_terminals_can_register_one_in_their_store(
    portal_client: httpx.Client, tenant: Tenant, role: str
) -> None:
    response = register(portal_client, tenant.user(role), tenant.store_a_id)

    assert response.status_code == 201, response.text
    assert response.json()["terminal"]["store_id"] == tenant.store_a_id


def test_store_manager_cannot_register_a_terminal_in_another_store(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    request_id = new_request_id()

    response = register(
        portal_client, tenant.user("store_manager"), tenant.store_b_id, request_id=request_id
    )

    assert response.status_code == 404, response.text
    assert response.json()["code"] == "store_not_found"
    assert audit_rows(test_settings, request_id=request_id) == []


def test_nobody_can_register_a_terminal_in_another_tenants_store(
    portal_client: httpx.Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = register(portal_client, tenant.admin, other_tenant.store_a_id)

    assert response.status_code == 404, response.text
    assert response.json()["code"] == "store_not_found"


@pytest.mark.parametrize("role", ["cashier", "auditor"])
def test_staff_without_terminal_write_cannot_register(
    portal_client: httpx.Client, tenant: Tenant, role: str
) -> None:
    response = register(portal_client, tenant.user(role), tenant.store_a_id)

    assert response.status_code == 403, response.text
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize(
    "serial", ["abc", "has space", "semi;colon", "x" * 65], ids=["short", "space", "symbol", "long"]
)
def test_malformed_serial_is_refused(
    portal_client: httpx.Client, tenant: Tenant, serial: str
) -> None:
    response = register(portal_client, tenant.admin, tenant.store_a_id, serial=serial)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"
