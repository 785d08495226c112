"""Suspend, reactivate, decommission, and reissue activation codes; every change audited."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from backend.core.settings import Settings
from tests.backend.portal.devices.db import audit_rows, new_request_id, terminal_row
from tests.support.portal import (
    EnrolledTerminal,
    PortalUser,
    Tenant,
    enroll_terminal,
    register_terminal,
)


def act(
    portal: httpx.Client,
    user: PortalUser,
    terminal_id: str,
    action: str,
    *,
    reason: str | None = None,
    request_id: str | None = None,
) -> httpx.Response:
    """POST /v1/terminals/{id}/{action}; the status changes take a reason, the code does not."""
    headers = {**user.headers, "x-request-id": request_id or new_request_id()}
    body: dict[str, Any] | None = None
    if action != "activation-code":
        body = {"reason": reason} if reason is not None else {}
    return portal.post(f"/v1/terminals/{terminal_id}/{action}", headers=headers, json=body)


def assert_audited(
    settings: Settings,
    request_id: str,
    event_type: str,
    *,
    actor: PortalUser,
    tenant: Tenant,
    terminal_id: str,
    reason: str | None = None,
) -> None:
    (row,) = audit_rows(settings, request_id=request_id)
    assert row["event_type"] == event_type
    assert row["outcome"] == "success"
    assert row["actor_type"] == "user"
    assert row["actor_id"] == actor.id
    assert row["target_type"] == "terminal"
    assert row["target_id"] == terminal_id
    assert str(row["merchant_id"]) == tenant.merchant_id
    assert str(row["store_id"]) == tenant.store_a_id
    assert row["reason"] == reason


@pytest.fixture
def enrolled(portal_client: httpx.Client, tenant: Tenant) -> EnrolledTerminal:
    return enroll_terminal(portal_client, tenant.admin, tenant.store_a_id)


# --- status changes ---------------------------------------------------------------------------


def test_suspending_an_active_terminal_records_why(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    enrolled: EnrolledTerminal,
) -> None:
    request_id = new_request_id()

    response = act(
        portal_client,
        tenant.admin,
        enrolled.terminal_id,
        "suspend",
        reason="cash drawer tampered",
        request_id=request_id,
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "suspended"
    assert response.json()["status_reason"] == "cash drawer tampered"
    assert terminal_row(test_settings, enrolled.terminal_id)["status"] == "suspended"
    assert_audited(
        test_settings,
        request_id,
        "terminal.suspended",
        actor=tenant.admin,
        tenant=tenant,
        terminal_id=enrolled.terminal_id,
        reason="cash drawer tampered",
    )


def test_reactivating_a_suspended_terminal_makes_it_active_again(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    enrolled: EnrolledTerminal,
) -> None:
    suspended = act(portal_client, tenant.admin, enrolled.terminal_id, "suspend", reason="check")
    assert suspended.status_code == 200, suspended.text
    request_id = new_request_id()

    response = act(
        portal_client,
        tenant.admin,
        enrolled.terminal_id,
        "reactivate",
        reason="all clear",
        request_id=request_id,
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
    assert response.json()["status_reason"] is None
    assert response.json()["key_thumbprint"] == suspended.json()["key_thumbprint"]
    assert_audited(
        test_settings,
        request_id,
        "terminal.reactivated",
        actor=tenant.admin,
        tenant=tenant,
        terminal_id=enrolled.terminal_id,
        reason="all clear",
    )


@pytest.mark.parametrize("enrolled_first", [True, False], ids=["active", "pending"])
def test_decommissioning_retires_a_terminal(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    enrolled_first: bool,
) -> None:
    admin = tenant.admin
    terminal_id = (
        enroll_terminal(portal_client, admin, tenant.store_a_id).terminal_id
        if enrolled_first
        else register_terminal(portal_client, admin, tenant.store_a_id)[0]
    )
    request_id = new_request_id()

    response = act(
        portal_client, admin, terminal_id, "decommission", reason="broken", request_id=request_id
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "decommissioned"
    assert response.json()["status_reason"] == "broken"
    assert_audited(
        test_settings,
        request_id,
        "terminal.decommissioned",
        actor=admin,
        tenant=tenant,
        terminal_id=terminal_id,
        reason="broken",
    )


def test_store_manager_can_suspend_a_terminal_of_their_store(
    portal_client: httpx.Client, tenant: Tenant, enrolled: EnrolledTerminal
) -> None:
    response = act(portal_client, tenant.user("store_manager"), enrolled.terminal_id, "suspend")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "suspended"
    assert response.json()["status_reason"] is None


@pytest.mark.parametrize("action", ["suspend", "reactivate", "decommission", "activation-code"])
def test_cashier_cannot_change_a_terminal(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    enrolled: EnrolledTerminal,
    action: str,
) -> None:
    before = terminal_row(test_settings, enrolled.terminal_id)

    response = act(portal_client, tenant.user("cashier"), enrolled.terminal_id, action)

    assert response.status_code == 403, response.text
    assert response.json()["code"] == "permission_denied"
    assert terminal_row(test_settings, enrolled.terminal_id) == before


# --- activation codes -------------------------------------------------------------------------


@pytest.mark.parametrize("enrolled_first", [True, False], ids=["active", "pending"])
def test_new_activation_code_replaces_the_stored_hash(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    enrolled_first: bool,
) -> None:
    admin = tenant.admin
    terminal_id = (
        enroll_terminal(portal_client, admin, tenant.store_a_id).terminal_id
        if enrolled_first
        else register_terminal(portal_client, admin, tenant.store_a_id)[0]
    )
    before = terminal_row(test_settings, terminal_id)
    request_id = new_request_id()

    response = act(portal_client, admin, terminal_id, "activation-code", request_id=request_id)

    assert response.status_code == 201, response.text
    code = response.json()["activation_code"]
    assert response.json()["terminal_id"] == terminal_id
    after = terminal_row(test_settings, terminal_id)
    assert (
        after["activation_code_hash"] == hashlib.sha256(code.replace("-", "").encode()).hexdigest()
    )
    assert after["activation_code_hash"] != before["activation_code_hash"]
    assert after["activation_code_used_at"] is None
    assert after["status"] == before["status"]
    assert after["public_jwk"] == before["public_jwk"]
    assert_audited(
        test_settings,
        request_id,
        "terminal.activation_code_issued",
        actor=admin,
        tenant=tenant,
        terminal_id=terminal_id,
    )


# --- refused transitions ----------------------------------------------------------------------


def _pending(portal: httpx.Client, tenant: Tenant) -> str:
    return register_terminal(portal, tenant.admin, tenant.store_a_id)[0]


def _active(portal: httpx.Client, tenant: Tenant) -> str:
    return enroll_terminal(portal, tenant.admin, tenant.store_a_id).terminal_id


def _suspended(portal: httpx.Client, tenant: Tenant) -> str:
    terminal_id = _active(portal, tenant)
    assert act(portal, tenant.admin, terminal_id, "suspend").status_code == 200
    return terminal_id


def _decommissioned(portal: httpx.Client, tenant: Tenant) -> str:
    terminal_id = _active(portal, tenant)
    assert act(portal, tenant.admin, terminal_id, "decommission").status_code == 200
    return terminal_id


STATES = {
    "pending": _pending,
    "active": _active,
    "suspended": _suspended,
    "decommissioned": _decommissioned,
}


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("decommissioned", "suspend"),
        ("decommissioned", "reactivate"),
        ("decommissioned", "decommission"),
        ("decommissioned", "activation-code"),
        ("suspended", "suspend"),
        ("suspended", "activation-code"),
        ("active", "reactivate"),
        ("pending", "reactivate"),
        # Nothing to stop: a pending terminal cannot get tokens (and the database requires a
        # suspended terminal to have enrolled a key).
        ("pending", "suspend"),
    ],
)
def test_transition_not_allowed_from_the_current_state_is_a_conflict(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    state: str,
    action: str,
) -> None:
    terminal_id = STATES[state](portal_client, tenant)
    before = terminal_row(test_settings, terminal_id)
    request_id = new_request_id()

    response = act(portal_client, tenant.admin, terminal_id, action, request_id=request_id)

    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "terminal_state_conflict"
    assert response.json()["current_status"] == state
    assert terminal_row(test_settings, terminal_id) == before
    assert audit_rows(test_settings, request_id=request_id) == []
