"""The security event log: what is recorded, for which tenant, how it is read, and that it is
append-only in the database itself."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backend.core.authz import Role
from backend.core.database import create_engine
from backend.core.settings import Settings
from tests.support.portal import PASSWORD, Tenant, create_user, unique

BANK_ACCOUNT = {
    "bank_name": "SMBC",
    "branch": "Ginza",
    "account_number": "4455667788",
    "holder_name": "Audit KK",
}


def _sql(settings: Settings, statement: str, **params: Any) -> list[Any]:
    """Run one statement on a direct connection (outside the portal) and return its rows."""

    async def execute() -> list[Any]:
        engine = create_engine(settings, application_name="tests-audit")
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(execute())


def _request_id() -> str:
    return f"test-{uuid.uuid4().hex}"


def _events(
    client: httpx.Client, reader: Any, *, event_type: str | None = None, **query: Any
) -> list[dict[str, Any]]:
    params = {"limit": 200, **query}
    if event_type:
        params["event_type"] = event_type
    response = client.get("/v1/audit-events", headers=reader.headers, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _one_event(
    client: httpx.Client, reader: Any, event_type: str, request_id: str
) -> dict[str, Any]:
    matching = [
        event
        for event in _events(client, reader, event_type=event_type)
        if event["request_id"] == request_id
    ]
    assert len(matching) == 1, f"{event_type} with request_id {request_id}: {matching}"
    return matching[0]


def _assert_actor_and_context(event: dict[str, Any], actor_id: str, request_id: str) -> None:
    assert event["outcome"] == "success"
    assert event["actor_type"] == "user"
    assert event["actor_id"] == actor_id
    assert event["request_id"] == request_id
    assert event["client_ip"] == "127.0.0.1"


def test_user_created_is_recorded_in_the_new_users_tenant_with_the_request_id(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    request_id = _request_id()
    response = portal_client.post(
        "/v1/users",
        headers={**tenant.admin.headers, "x-request-id": request_id},
        json={
            "email": f"{unique('audited')}@example.com",
            "display_name": "Audited",
            "password": PASSWORD,
            "role": "cashier",
            "store_id": tenant.store_a_id,
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-request-id"] == request_id
    user_id = response.json()["id"]

    # The psp_admin acted, but the row belongs to store A's tenant, so the merchant's own
    # auditor sees it.
    event = _one_event(portal_client, tenant.user(Role.AUDITOR), "user.created", request_id)
    _assert_actor_and_context(event, tenant.admin.id, request_id)
    assert (event["psp_id"], event["merchant_id"], event["store_id"]) == (
        tenant.psp_id,
        tenant.merchant_id,
        tenant.store_a_id,
    )
    assert (event["target_type"], event["target_id"]) == ("user", user_id)
    assert event["detail"]["role"] == "cashier"
    assert PASSWORD not in str(event)


def test_a_generated_request_id_is_the_one_in_the_response_header(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    response = portal_client.patch(
        f"/v1/users/{tenant.user(Role.CASHIER).id}",
        headers={**tenant.admin.headers, "x-request-id": "bad id with spaces"},
        json={"status": "disabled"},
    )
    assert response.status_code == 200, response.text
    generated = response.headers["x-request-id"]
    assert generated != "bad id with spaces"
    event = _one_event(portal_client, tenant.admin, "user.status_changed", generated)
    assert event["target_id"] == tenant.user(Role.CASHIER).id


def test_role_change_records_from_and_to(portal_client: httpx.Client, tenant: Tenant) -> None:
    cashier = create_user(portal_client, tenant.admin, Role.CASHIER, store_id=tenant.store_a_id)
    merchant_admin = tenant.user(Role.MERCHANT_ADMIN)
    request_id = _request_id()
    response = portal_client.patch(
        f"/v1/users/{cashier.id}",
        headers={**merchant_admin.headers, "x-request-id": request_id},
        json={"role": "store_manager"},
    )
    assert response.status_code == 200, response.text
    event = _one_event(portal_client, tenant.user(Role.AUDITOR), "user.role_changed", request_id)
    _assert_actor_and_context(event, merchant_admin.id, request_id)
    assert event["detail"] == {"from": "cashier", "to": "store_manager"}
    assert (event["target_id"], event["store_id"]) == (cashier.id, tenant.store_a_id)


def test_status_change_records_from_and_to_and_nothing_when_unchanged(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    cashier = create_user(portal_client, tenant.admin, Role.CASHIER, store_id=tenant.store_a_id)
    manager = tenant.user(Role.STORE_MANAGER)
    request_id = _request_id()
    response = portal_client.patch(
        f"/v1/users/{cashier.id}",
        headers={**manager.headers, "x-request-id": request_id},
        json={"status": "disabled"},
    )
    assert response.status_code == 200, response.text
    event = _one_event(portal_client, tenant.user(Role.AUDITOR), "user.status_changed", request_id)
    _assert_actor_and_context(event, manager.id, request_id)
    assert event["detail"] == {"from": "active", "to": "disabled"}

    again = _request_id()
    portal_client.patch(
        f"/v1/users/{cashier.id}",
        headers={**manager.headers, "x-request-id": again},
        json={"status": "disabled"},
    )
    assert not [e for e in _events(portal_client, tenant.admin) if e["request_id"] == again]


def test_a_refused_change_leaves_no_success_row(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    request_id = _request_id()
    manager = tenant.user(Role.STORE_MANAGER)
    response = portal_client.patch(
        f"/v1/users/{manager.id}",
        headers={**manager.headers, "x-request-id": request_id},
        json={"status": "disabled"},
    )
    assert response.status_code == 403
    assert not [e for e in _events(portal_client, tenant.admin) if e["request_id"] == request_id]


def test_merchant_created_and_bank_account_changed_and_viewed(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    created_id = _request_id()
    created = portal_client.post(
        "/v1/merchants",
        headers={**tenant.admin.headers, "x-request-id": created_id},
        json={"name": unique("audited")},
    )
    assert created.status_code == 201, created.text
    merchant_id = created.json()["id"]
    event = _one_event(portal_client, tenant.admin, "merchant.created", created_id)
    _assert_actor_and_context(event, tenant.admin.id, created_id)
    assert (event["psp_id"], event["merchant_id"], event["store_id"]) == (
        tenant.psp_id,
        merchant_id,
        None,
    )
    assert (event["target_type"], event["target_id"]) == ("merchant", merchant_id)
    # Another merchant's auditor does not see it.
    seen = _events(portal_client, tenant.user(Role.AUDITOR), event_type="merchant.created")
    assert created_id not in {e["request_id"] for e in seen}

    changed_id = _request_id()
    merchant_admin = tenant.user(Role.MERCHANT_ADMIN)
    changed = portal_client.patch(
        f"/v1/merchants/{tenant.merchant_id}",
        headers={**merchant_admin.headers, "x-request-id": changed_id},
        json={"bank_account": BANK_ACCOUNT},
    )
    assert changed.status_code == 200, changed.text
    auditor = tenant.user(Role.AUDITOR)
    event = _one_event(portal_client, auditor, "merchant.bank_account_changed", changed_id)
    _assert_actor_and_context(event, merchant_admin.id, changed_id)
    assert event["detail"] == {"last4": "7788"}
    assert BANK_ACCOUNT["account_number"] not in str(event)

    viewed_id = _request_id()
    viewed = portal_client.get(
        f"/v1/merchants/{tenant.merchant_id}/bank-account",
        headers={**auditor.headers, "x-request-id": viewed_id},
    )
    assert viewed.status_code == 200, viewed.text
    event = _one_event(portal_client, auditor, "merchant.bank_account_viewed", viewed_id)
    _assert_actor_and_context(event, auditor.id, viewed_id)
    assert (event["merchant_id"], event["target_id"]) == (tenant.merchant_id, tenant.merchant_id)
    assert BANK_ACCOUNT["account_number"] not in str(event)


def test_logins_that_succeed_and_fail_are_recorded_against_the_user(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    cashier = tenant.user(Role.CASHIER)
    ok_id, bad_id = _request_id(), _request_id()
    ok = portal_client.post(
        "/v1/auth/login",
        headers={"x-request-id": ok_id},
        json={"email": cashier.email, "password": PASSWORD},
    )
    assert ok.status_code == 200, ok.text
    bad = portal_client.post(
        "/v1/auth/login",
        headers={"x-request-id": bad_id},
        json={"email": cashier.email, "password": "not the password at all"},
    )
    assert bad.status_code == 401

    auditor = tenant.user(Role.AUDITOR)
    succeeded = _one_event(portal_client, auditor, "login.succeeded", ok_id)
    _assert_actor_and_context(succeeded, cashier.id, ok_id)
    assert succeeded["store_id"] == tenant.store_a_id
    failed = _one_event(portal_client, auditor, "login.failed", bad_id)
    assert failed["outcome"] == "failure"
    assert failed["reason"] == "wrong_password"
    assert (failed["actor_id"], failed["client_ip"]) == (cashier.id, "127.0.0.1")
    assert failed["detail"]["email"] == cashier.email
    assert "not the password at all" not in str(failed)


def test_a_login_for_an_unknown_email_is_recorded_without_a_tenant(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    request_id = _request_id()
    email = f"{unique('nobody')}@example.com"
    response = portal_client.post(
        "/v1/auth/login",
        headers={"x-request-id": request_id},
        json={"email": email, "password": "whatever password"},
    )
    assert response.status_code == 401
    rows = _sql(
        test_settings,
        "SELECT event_type, outcome, reason, actor_type, psp_id, client_ip, detail"
        " FROM portal.audit_events WHERE request_id = :request_id",
        request_id=request_id,
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row.event_type, row.outcome, row.reason, row.actor_type) == (
        "login.failed",
        "failure",
        "unknown_email",
        "anonymous",
    )
    assert row.psp_id is None
    assert row.client_ip == "127.0.0.1"
    assert row.detail == {"email": email}
    # No tenant owns it, so no tenant's reader is shown it.
    assert request_id not in {e["request_id"] for e in _events(portal_client, tenant.admin)}


# --- reading the log ---------------------------------------------------------------------------


def test_audit_events_page_newest_first_with_before_id(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    initial = len(_events(portal_client, tenant.admin, event_type="user.created"))
    for _ in range(3):
        create_user(portal_client, tenant.admin, Role.CASHIER, store_id=tenant.store_a_id)
    everything = _events(portal_client, tenant.admin, event_type="user.created")
    assert len(everything) == initial + 3
    ids = [event["id"] for event in everything]
    assert ids == sorted(ids, reverse=True)

    paged: list[int] = []
    before_id = None
    pages = 0
    while True:
        params: dict[str, Any] = {"event_type": "user.created", "limit": 3}
        if before_id is not None:
            params["before_id"] = before_id
        response = portal_client.get(
            "/v1/audit-events", headers=tenant.admin.headers, params=params
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 3
        paged.extend(event["id"] for event in page["items"])
        pages += 1
        before_id = page["next_before_id"]
        if before_id is None:
            break
        assert before_id == page["items"][-1]["id"]
        assert pages < 10, "paging does not end"
    assert paged == ids
    # A full last page still names a cursor (one more, empty, page follows); a short one ends.
    assert pages == len(ids) // 3 + 1


def test_audit_events_filter_by_type_and_outcome(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    cashier = tenant.user(Role.CASHIER)
    portal_client.post(
        "/v1/auth/login", json={"email": cashier.email, "password": "definitely wrong"}
    )
    failures = _events(portal_client, tenant.admin, outcome="failure")
    assert failures
    assert {event["outcome"] for event in failures} == {"failure"}
    successes = _events(portal_client, tenant.admin, outcome="success")
    assert successes
    assert {event["outcome"] for event in successes} == {"success"}
    logins = _events(portal_client, tenant.admin, event_type="login.succeeded")
    assert logins
    assert {event["event_type"] for event in logins} == {"login.succeeded"}
    both = _events(portal_client, tenant.admin, event_type="login.failed", outcome="success")
    assert both == []
    assert _events(portal_client, tenant.admin, event_type="no.such.event") == []


@pytest.mark.parametrize(
    "query",
    [
        "outcome=maybe",
        "before_id=0",
        "before_id=abc",
        "limit=0",
        "limit=201",
        # Found by the API fuzzer: past PostgreSQL's BIGINT the query failed with a 500.
        "before_id=9223372036854775808",
        "before_id=169490417268178107739970643834175488",
    ],
)
def test_bad_audit_queries_are_validation_failures(
    portal_client: httpx.Client, tenant: Tenant, query: str
) -> None:
    response = portal_client.get(f"/v1/audit-events?{query}", headers=tenant.admin.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "validation_failed"


@pytest.mark.parametrize("role", [Role.PSP_ADMIN, Role.MERCHANT_ADMIN, Role.AUDITOR])
def test_admins_and_auditors_read_audit_events(
    portal_client: httpx.Client, tenant: Tenant, role: Role
) -> None:
    assert _events(portal_client, tenant.user(role))


@pytest.mark.parametrize("role", [Role.CASHIER, Role.STORE_MANAGER])
def test_store_staff_cannot_read_audit_events(
    portal_client: httpx.Client, tenant: Tenant, role: Role
) -> None:
    response = portal_client.get("/v1/audit-events", headers=tenant.user(role).headers)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


# --- append-only in the database ---------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE portal.audit_events SET reason = 'tampered' WHERE id = :id",
        "UPDATE portal.audit_events SET actor_id = NULL",
        "DELETE FROM portal.audit_events WHERE id = :id",
        "DELETE FROM portal.audit_events",
        "TRUNCATE portal.audit_events",
    ],
)
def test_audit_rows_cannot_be_changed_or_removed_even_directly(
    test_settings: Settings, portal_client: httpx.Client, tenant: Tenant, statement: str
) -> None:
    newest = _events(portal_client, tenant.admin, limit=1)[0]
    count = "SELECT count(*) AS n FROM portal.audit_events"
    before = _sql(test_settings, count)[0].n
    with pytest.raises(DBAPIError, match="append-only"):
        _sql(test_settings, statement, id=newest["id"])
    assert _sql(test_settings, count)[0].n >= before
    after = _events(portal_client, tenant.admin, limit=1)[0]
    assert after == newest
