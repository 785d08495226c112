"""POST /v1/auth/login and GET /v1/auth/me on the running portal."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt
import pytest

from backend.core.authz import ROLE_PERMISSIONS, Role
from backend.core.jwks import parse_jwks
from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.backend.portal.auth.conftest import STRICT_MAX_FAILURES_PER_IP, Account
from tests.backend.portal.auth.support import (
    audit_by_request,
    client_from,
    fetch,
    problem,
    random_loopback_address,
)
from tests.support.portal import PASSWORD, Tenant, bearer, enroll_terminal, login, unique
from tests.support.tokens import unverified_parts


def _login(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/v1/auth/login", json={"email": email, "password": password})


def _verify_with_jwks(portal: httpx.Client, settings: Settings, token: str) -> dict[str, Any]:
    header, _ = unverified_parts(token)
    keys = parse_jwks(portal.get("/.well-known/jwks.json").json())
    key = keys[header["kid"]]
    return dict(
        jwt.decode(
            token,
            key.public_key,
            algorithms=["ES256"],
            audience=settings.token_audience,
            issuer=settings.resolved_issuer,
        )
    )


# --- success ------------------------------------------------------------------------------------


def test_login_returns_an_es256_access_token_and_a_refresh_token(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    cashier = tenant.user(Role.CASHIER)
    before = int(time.time())
    response = _login(portal_client, cashier.email)
    assert response.status_code == 200, response.text
    pair = response.json()
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 900
    assert pair["refresh_expires_in"] == test_settings.refresh_token_ttl_s
    assert pair["refresh_token"].startswith("rt_")
    assert len(pair["refresh_token"]) > 40
    assert response.headers["cache-control"] == "no-store"

    header, claims = unverified_parts(pair["access_token"])
    assert header["alg"] == "ES256"
    assert header["typ"] == "at+jwt"
    assert header["kid"]
    assert claims["exp"] - claims["iat"] == 900
    assert before <= claims["iat"] <= int(time.time())
    assert claims["token_use"] == "user"
    assert claims["role"] == "cashier"
    assert claims["sub"] == cashier.id
    assert claims["psp_id"] == tenant.psp_id
    assert claims["merchant_id"] == tenant.merchant_id
    assert claims["store_id"] == tenant.store_a_id
    assert claims["iss"] == test_settings.resolved_issuer
    assert claims["aud"] == test_settings.token_audience
    assert claims["jti"]
    # The JWKS the other services use verifies it.
    assert _verify_with_jwks(portal_client, test_settings, pair["access_token"]) == claims


def test_psp_admin_token_has_no_merchant_or_store(
    portal_client: httpx.Client, account: Account
) -> None:
    _, claims = unverified_parts(login(portal_client, account.email)["access_token"])
    assert claims["role"] == "psp_admin"
    assert claims["psp_id"] == account.psp_id
    assert claims["merchant_id"] is None
    assert claims["store_id"] is None


def test_each_login_issues_distinct_tokens(portal_client: httpx.Client, account: Account) -> None:
    first, second = login(portal_client, account.email), login(portal_client, account.email)
    assert first["refresh_token"] != second["refresh_token"]
    assert (
        unverified_parts(first["access_token"])[1]["jti"]
        != (unverified_parts(second["access_token"])[1]["jti"])
    )


def test_login_email_is_case_and_space_insensitive(
    portal_client: httpx.Client, account: Account
) -> None:
    response = _login(portal_client, f"  {account.email.upper()} ")
    assert response.status_code == 200, response.text


def test_login_writes_login_succeeded(
    portal_client: httpx.Client, tenant: Tenant, test_settings: Settings
) -> None:
    manager = tenant.user(Role.STORE_MANAGER)
    response = _login(portal_client, manager.email)
    assert response.status_code == 200
    rows = fetch(
        test_settings,
        "SELECT * FROM portal.audit_events WHERE request_id = $1",
        response.headers["x-request-id"],
    )
    assert [(row["event_type"], row["outcome"], row["actor_id"]) for row in rows] == [
        ("login.succeeded", "success", manager.id)
    ]
    assert str(rows[0]["store_id"]) == tenant.store_a_id


def test_me_describes_the_logged_in_user(portal_client: httpx.Client, tenant: Tenant) -> None:
    auditor = tenant.user(Role.AUDITOR)
    response = portal_client.get("/v1/auth/me", headers=auditor.headers)
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["id"] == auditor.id
    assert me["email"] == auditor.email
    assert me["role"] == "auditor"
    assert (me["psp_id"], me["merchant_id"], me["store_id"]) == (
        tenant.psp_id,
        tenant.merchant_id,
        None,
    )
    assert me["permissions"] == sorted(p.value for p in ROLE_PERMISSIONS[Role.AUDITOR])
    assert "audit:read" in me["permissions"]


def test_me_refuses_a_device_token_with_403(portal_client: httpx.Client, tenant: Tenant) -> None:
    terminal = enroll_terminal(portal_client, tenant.admin, tenant.store_a_id)
    response = portal_client.get("/v1/auth/me", headers=bearer(terminal.fresh_token(portal_client)))
    problem(response, 403, "user_token_required")


# --- refusals -----------------------------------------------------------------------------------


def _comparable(response: httpx.Response) -> tuple[int, str, str, dict[str, Any]]:
    body = {k: v for k, v in response.json().items() if k != "request_id"}
    return (
        response.status_code,
        response.headers["content-type"],
        response.headers.get("www-authenticate", ""),
        body,
    )


def test_wrong_password_and_unknown_email_get_the_same_answer(
    isolated_client: httpx.Client, account: Account
) -> None:
    wrong_password = _login(isolated_client, account.email, "not the password")
    unknown_email = _login(isolated_client, f"{unique('nobody')}@example.com")
    problem(wrong_password, 401, "invalid_credentials")
    assert _comparable(wrong_password) == _comparable(unknown_email)
    assert wrong_password.headers["www-authenticate"] == "Bearer"
    assert "access_token" not in wrong_password.text


def test_wrong_password_is_audited_in_the_tenant(
    isolated_client: httpx.Client, portal_client: httpx.Client, tenant: Tenant, own_address: str
) -> None:
    cashier = tenant.user(Role.CASHIER)
    refused = _login(isolated_client, cashier.email, "guess-1")
    problem(refused, 401, "invalid_credentials")

    events = portal_client.get(
        "/v1/audit-events",
        params={"event_type": "login.failed"},
        headers=tenant.admin.headers,
    )
    assert events.status_code == 200, events.text
    [event] = [e for e in events.json()["items"] if e["request_id"] == refused.json()["request_id"]]
    assert event["outcome"] == "failure"
    assert event["reason"] == "wrong_password"
    assert event["actor_type"] == "user"
    assert event["actor_id"] == cashier.id
    assert event["client_ip"] == own_address
    assert event["detail"] == {"email": cashier.email}


def test_unknown_email_is_audited_without_a_tenant(
    isolated_client: httpx.Client, test_settings: Settings
) -> None:
    email = f"{unique('ghost')}@example.com"
    refused = _login(isolated_client, email)
    body = problem(refused, 401, "invalid_credentials")
    rows = audit_by_request(test_settings, body["request_id"])
    assert len(rows) == 1
    row = rows[0]
    assert (row["event_type"], row["reason"], row["actor_type"]) == (
        "login.failed",
        "unknown_email",
        "anonymous",
    )
    assert row["psp_id"] is None
    assert row["detail"] == {"email": email}


def test_disabled_user_can_neither_log_in_nor_refresh_and_is_back_when_enabled(
    isolated_client: httpx.Client,
    portal_client: httpx.Client,
    tenant: Tenant,
    test_settings: Settings,
) -> None:
    cashier = tenant.user(Role.CASHIER)
    disable = portal_client.patch(
        f"/v1/users/{cashier.id}", json={"status": "disabled"}, headers=tenant.admin.headers
    )
    assert disable.status_code == 200, disable.text
    assert disable.json()["status"] == "disabled"

    refused = _login(isolated_client, cashier.email)
    body = problem(refused, 401, "invalid_credentials")
    [row] = audit_by_request(test_settings, body["request_id"])
    assert (row["event_type"], row["reason"]) == ("login.failed", "user_disabled")

    refresh = isolated_client.post(
        "/v1/auth/refresh", json={"refresh_token": cashier.refresh_token}
    )
    body = problem(refresh, 401, "invalid_refresh_token")
    [row] = audit_by_request(test_settings, body["request_id"])
    assert (row["event_type"], row["reason"]) == ("refresh.refused", "user_disabled")

    enable = portal_client.patch(
        f"/v1/users/{cashier.id}", json={"status": "active"}, headers=tenant.admin.headers
    )
    assert enable.status_code == 200, enable.text
    assert _login(isolated_client, cashier.email).status_code == 200


# --- rate limiting ------------------------------------------------------------------------------


def test_account_is_locked_after_max_failures_even_for_the_right_password(
    isolated_client: httpx.Client, account: Account, test_settings: Settings
) -> None:
    limit = test_settings.login_max_failures
    for attempt in range(limit):
        refused = _login(isolated_client, account.email, f"wrong-{attempt}")
        problem(refused, 401, "invalid_credentials")

    locked = _login(isolated_client, account.email, PASSWORD)
    body = problem(locked, 429, "too_many_attempts")
    retry_after = int(locked.headers["retry-after"])
    assert 1 <= retry_after <= test_settings.login_failure_window_s
    assert body["retry_after_s"] == retry_after
    assert "access_token" not in locked.text

    [row] = audit_by_request(test_settings, body["request_id"])
    assert (row["event_type"], row["outcome"], row["reason"]) == (
        "login.rate_limited",
        "failure",
        "too_many_failures",
    )
    assert row["detail"] == {"email": account.email, "limit": "account"}
    failures = fetch(
        test_settings,
        "SELECT reason FROM portal.audit_events WHERE event_type = 'login.failed' AND psp_id = $1",
        uuid.UUID(account.psp_id),
    )
    assert [f["reason"] for f in failures] == ["wrong_password"] * limit


def test_lockout_is_per_account(
    isolated_client: httpx.Client, test_settings: Settings, account: Account
) -> None:
    locked_email = f"{unique('locked')}@example.com"
    for _ in range(test_settings.login_max_failures):
        problem(_login(isolated_client, locked_email), 401, "invalid_credentials")
    problem(_login(isolated_client, locked_email), 429, "too_many_attempts")
    # The same address, another account: still fine.
    assert _login(isolated_client, account.email).status_code == 200


def test_successful_login_resets_the_account_failure_count(
    isolated_client: httpx.Client, account: Account, test_settings: Settings
) -> None:
    for _ in range(2):
        for _ in range(test_settings.login_max_failures - 1):
            problem(_login(isolated_client, account.email, "wrong"), 401, "invalid_credentials")
        assert _login(isolated_client, account.email).status_code == 200


def test_address_is_locked_after_max_failures_per_ip(
    strict_portal: PlatformThread, own_address: str, account: Account
) -> None:
    limit = strict_portal.settings.login_max_failures_per_ip
    assert limit == STRICT_MAX_FAILURES_PER_IP
    with (
        client_from(strict_portal.portal_url, own_address) as sprayer,
        client_from(strict_portal.portal_url, random_loopback_address()) as bystander,
    ):
        # Distinct unknown e-mails: the per-account limit never triggers, only the per-address.
        for _ in range(limit):
            problem(_login(sprayer, f"{unique('spray')}@example.com"), 401, "invalid_credentials")
        locked = _login(sprayer, account.email)
        body = problem(locked, 429, "too_many_attempts")
        assert int(locked.headers["retry-after"]) >= 1
        # The account itself is not locked: from another address it logs in.
        assert _login(bystander, account.email).status_code == 200
    # The audit row says which limit tripped: the address, not the account it named.
    [row] = audit_by_request(strict_portal.settings, body["request_id"])
    assert (row["event_type"], row["reason"], row["client_ip"]) == (
        "login.rate_limited",
        "too_many_failures",
        own_address,
    )
    assert row["detail"] == {"email": account.email, "limit": "address"}


def test_successful_logins_do_not_use_up_the_address_budget(
    strict_portal: PlatformThread, own_address: str, account: Account
) -> None:
    limit = strict_portal.settings.login_max_failures_per_ip
    with client_from(strict_portal.portal_url, own_address) as client:
        for _ in range(2 * limit):
            assert _login(client, account.email).status_code == 200
        for _ in range(limit - 1):
            problem(_login(client, f"{unique('typo')}@example.com"), 401, "invalid_credentials")
        assert _login(client, account.email).status_code == 200


# --- malformed requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b'{"email": "a@example.com", "password": ', b"{not json}", b'{"email": "a@b.c"} trailing'],
)
def test_malformed_json_is_400_malformed_json(portal_client: httpx.Client, body: bytes) -> None:
    response = portal_client.post(
        "/v1/auth/login", content=body, headers={"content-type": "application/json"}
    )
    problem(response, 400, "malformed_json")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"email": "a@example.com"},
        {"password": "x"},
        {"email": "a@example.com", "password": ""},
        {"email": "ab", "password": "x"},
        {"email": "a@example.com", "password": "x" * 1025},
        {"email": ["a@example.com"], "password": "x"},
        {"email": "a@example.com", "password": 12345},
        [],
        "just a string",
        None,
    ],
)
def test_schema_violations_are_422_validation_failed(
    portal_client: httpx.Client, payload: Any
) -> None:
    response = portal_client.post("/v1/auth/login", json=payload)
    body = problem(response, 422, "validation_failed")
    assert body["errors"]
    assert all({"loc", "msg", "type"} == set(error) for error in body["errors"])


def test_validation_errors_do_not_echo_the_password(portal_client: httpx.Client) -> None:
    secret = "hunter2-" + "s" * 1100
    response = portal_client.post("/v1/auth/login", json={"email": "a", "password": secret})
    problem(response, 422, "validation_failed")
    assert "hunter2" not in response.text


def test_form_encoded_login_is_a_problem_not_a_500(portal_client: httpx.Client) -> None:
    response = portal_client.post(
        "/v1/auth/login", data={"email": "a@example.com", "password": "x"}
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] in {"validation_failed", "malformed_json"}


def test_login_with_get_is_405(portal_client: httpx.Client) -> None:
    problem(portal_client.get("/v1/auth/login"), 405, "method_not_allowed")


def test_parallel_guesses_cannot_exceed_the_account_limit(
    platform: PlatformThread, own_address: str, account: Account, test_settings: Settings
) -> None:
    limit = test_settings.login_max_failures
    attempts = 4 * limit

    def guess(index: int) -> int:
        with client_from(platform.portal_url, own_address) as client:
            return _login(client, account.email, f"guess-{index}").status_code

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        statuses = list(pool.map(guess, range(attempts)))
    # Every guess the portal actually checked answered 401; the rest were refused unchecked.
    assert statuses.count(401) <= limit, statuses
    assert statuses.count(401) + statuses.count(429) == attempts
    checked = fetch(
        test_settings,
        "SELECT count(*) AS n FROM portal.audit_events "
        "WHERE event_type = 'login.failed' AND psp_id = $1",
        uuid.UUID(account.psp_id),
    )
    assert checked[0]["n"] <= limit
