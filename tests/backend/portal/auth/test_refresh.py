"""Refresh-token rotation, reuse detection and logout on the running portal."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import httpx

from backend.core.authz import Role
from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.backend.portal.auth.conftest import Account
from tests.backend.portal.auth.support import (
    audit_by_request,
    execute,
    family_rows,
    problem,
    refresh_row,
)
from tests.support.portal import Tenant, login
from tests.support.tokens import unverified_parts


def _refresh(client: httpx.Client, refresh_token: str) -> httpx.Response:
    return client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


def _logout(client: httpx.Client, refresh_token: str) -> httpx.Response:
    return client.post("/v1/auth/logout", json={"refresh_token": refresh_token})


def test_refresh_rotates_the_refresh_token_and_marks_the_old_one_used(
    portal_client: httpx.Client, account: Account, test_settings: Settings
) -> None:
    first = login(portal_client, account.email)
    response = _refresh(portal_client, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()

    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["expires_in"] == 900
    old, new = (
        refresh_row(test_settings, first["refresh_token"]),
        refresh_row(test_settings, second["refresh_token"]),
    )
    assert old["used_at"] is not None
    assert old["revoked_at"] is None
    assert new["used_at"] is None
    assert new["family_id"] == old["family_id"]
    # Only a hash of the secret is stored.
    assert first["refresh_token"] not in str(old)

    _, claims = unverified_parts(second["access_token"])
    assert claims["token_use"] == "user"
    assert claims["psp_id"] == account.psp_id
    assert claims["exp"] - claims["iat"] == 900
    assert (
        portal_client.get(
            "/v1/auth/me", headers={"authorization": f"Bearer {second['access_token']}"}
        ).status_code
        == 200
    )


def test_refresh_chain_keeps_working(portal_client: httpx.Client, account: Account) -> None:
    token = login(portal_client, account.email)["refresh_token"]
    seen = {token}
    for _ in range(3):
        response = _refresh(portal_client, token)
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]
        seen.add(token)
    assert len(seen) == 4


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(
    portal_client: httpx.Client, tenant: Tenant, test_settings: Settings
) -> None:
    admin = tenant.admin
    stolen = login(portal_client, admin.email)["refresh_token"]
    rotated = _refresh(portal_client, stolen)
    assert rotated.status_code == 200, rotated.text
    newest = rotated.json()["refresh_token"]

    reuse = _refresh(portal_client, stolen)
    body = problem(reuse, 401, "refresh_token_reused")
    assert "access_token" not in reuse.text

    # The legitimate holder's newest token is dead too.
    problem(_refresh(portal_client, newest), 401, "invalid_refresh_token")

    family_id = refresh_row(test_settings, stolen)["family_id"]
    family = family_rows(test_settings, family_id)
    assert len(family) == 2
    assert all(row["revoked_at"] is not None for row in family)
    assert {row["revoked_reason"] for row in family} == {"reuse_detected"}

    # The tenant's admin sees the incident in the audit log.
    events = portal_client.get(
        "/v1/audit-events",
        params={"event_type": "refresh.reuse_detected"},
        headers=admin.headers,
    )
    assert events.status_code == 200, events.text
    [event] = events.json()["items"]
    assert event["request_id"] == body["request_id"]
    assert event["outcome"] == "failure"
    assert event["reason"] == "reuse_detected"
    assert event["actor_id"] == admin.id
    assert event["target_type"] == "refresh_token_family"
    assert event["target_id"] == str(family_id)
    assert event["psp_id"] == tenant.psp_id


def test_reuse_by_a_merchant_user_is_visible_to_the_auditor(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    merchant_admin = tenant.user(Role.MERCHANT_ADMIN)
    stolen = login(portal_client, merchant_admin.email)["refresh_token"]
    assert _refresh(portal_client, stolen).status_code == 200
    body = problem(_refresh(portal_client, stolen), 401, "refresh_token_reused")

    events = portal_client.get(
        "/v1/audit-events",
        params={"event_type": "refresh.reuse_detected"},
        headers=tenant.user(Role.AUDITOR).headers,
    )
    assert events.status_code == 200, events.text
    assert [e["request_id"] for e in events.json()["items"]] == [body["request_id"]]


def test_reuse_revokes_only_that_family(portal_client: httpx.Client, account: Account) -> None:
    laptop = login(portal_client, account.email)["refresh_token"]
    phone = login(portal_client, account.email)["refresh_token"]
    assert _refresh(portal_client, laptop).status_code == 200
    problem(_refresh(portal_client, laptop), 401, "refresh_token_reused")
    assert _refresh(portal_client, phone).status_code == 200


def test_presenting_a_reused_token_again_is_still_refused(
    portal_client: httpx.Client, account: Account
) -> None:
    stolen = login(portal_client, account.email)["refresh_token"]
    assert _refresh(portal_client, stolen).status_code == 200
    problem(_refresh(portal_client, stolen), 401, "refresh_token_reused")
    problem(_refresh(portal_client, stolen), 401, "invalid_refresh_token")


def test_concurrent_refreshes_of_one_token_let_exactly_one_through(
    platform: PlatformThread, account: Account, test_settings: Settings
) -> None:
    with httpx.Client(base_url=platform.portal_url, timeout=10.0) as client:
        token = login(client, account.email)["refresh_token"]

    def attempt(_: int) -> int:
        with httpx.Client(base_url=platform.portal_url, timeout=10.0) as client:
            return _refresh(client, token).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(attempt, range(4)))
    assert statuses == [200, 401, 401, 401]
    # Racing with a copy is indistinguishable from theft: the family is gone.
    family = family_rows(test_settings, refresh_row(test_settings, token)["family_id"])
    assert all(row["revoked_at"] is not None for row in family)


def test_logout_revokes_the_family(
    portal_client: httpx.Client, account: Account, test_settings: Settings
) -> None:
    first = login(portal_client, account.email)["refresh_token"]
    current = _refresh(portal_client, first).json()["refresh_token"]

    response = _logout(portal_client, current)
    assert response.status_code == 204
    assert response.content == b""

    problem(_refresh(portal_client, current), 401, "invalid_refresh_token")
    family = family_rows(test_settings, refresh_row(test_settings, current)["family_id"])
    assert {row["revoked_reason"] for row in family} == {"logout"}
    rows = audit_by_request(test_settings, response.headers["x-request-id"])
    assert [row["event_type"] for row in rows] == ["logout"]


def test_logout_of_an_unknown_or_revoked_token_is_a_quiet_204(
    portal_client: httpx.Client, account: Account
) -> None:
    token = login(portal_client, account.email)["refresh_token"]
    assert _logout(portal_client, token).status_code == 204
    assert _logout(portal_client, token).status_code == 204
    assert _logout(portal_client, "rt_never-issued").status_code == 204


def test_unknown_refresh_token_is_refused_and_audited(
    portal_client: httpx.Client, test_settings: Settings
) -> None:
    body = problem(_refresh(portal_client, "rt_forged-value"), 401, "invalid_refresh_token")
    [row] = audit_by_request(test_settings, body["request_id"])
    assert (row["event_type"], row["reason"], row["actor_type"]) == (
        "refresh.refused",
        "unknown_refresh_token",
        "anonymous",
    )


def test_expired_refresh_token_is_refused(
    portal_client: httpx.Client, account: Account, test_settings: Settings
) -> None:
    token = login(portal_client, account.email)["refresh_token"]
    row = refresh_row(test_settings, token)
    execute(
        test_settings,
        "UPDATE portal.refresh_tokens SET expires_at = $1 WHERE id = $2",
        dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
        row["id"],
    )
    body = problem(_refresh(portal_client, token), 401, "invalid_refresh_token")
    [event] = audit_by_request(test_settings, body["request_id"])
    assert (event["event_type"], event["reason"]) == ("refresh.refused", "expired")


def test_refresh_reads_the_users_current_role(portal_client: httpx.Client, tenant: Tenant) -> None:
    cashier = tenant.user(Role.CASHIER)
    changed = portal_client.patch(
        f"/v1/users/{cashier.id}", json={"role": "store_manager"}, headers=tenant.admin.headers
    )
    assert changed.status_code == 200, changed.text
    response = _refresh(portal_client, cashier.refresh_token)
    assert response.status_code == 200, response.text
    _, claims = unverified_parts(response.json()["access_token"])
    assert claims["role"] == "store_manager"


def test_refresh_and_logout_validate_their_body(portal_client: httpx.Client) -> None:
    for path in ("/v1/auth/refresh", "/v1/auth/logout"):
        problem(portal_client.post(path, json={}), 422, "validation_failed")
        problem(portal_client.post(path, json={"refresh_token": ""}), 422, "validation_failed")
        problem(
            portal_client.post(path, json={"refresh_token": "x" * 513}), 422, "validation_failed"
        )
        problem(
            portal_client.post(path, content=b"{", headers={"content-type": "application/json"}),
            400,
            "malformed_json",
        )
