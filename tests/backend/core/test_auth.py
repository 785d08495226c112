"""backend.core.auth: turning verified claims into a Principal, and reading the bearer header."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from backend.core.auth import principal_from_claims
from backend.core.authz import Role
from backend.core.tokens import InvalidToken

PSP = str(uuid.uuid4())
MERCHANT = str(uuid.uuid4())
STORE = str(uuid.uuid4())


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "jti": "jti-1",
        "token_use": "user",
        "role": "cashier",
        "psp_id": PSP,
        "merchant_id": MERCHANT,
        "store_id": STORE,
    }
    claims.update(overrides)
    return claims


def test_user_claims_become_a_user_principal_scoped_to_the_store() -> None:
    claims = _claims()
    principal = principal_from_claims(claims)
    assert principal.kind == "user"
    assert principal.role is Role.CASHIER
    assert str(principal.subject_id) == claims["sub"]
    assert (str(principal.scope.psp_id), str(principal.scope.merchant_id)) == (PSP, MERCHANT)
    assert str(principal.scope.store_id) == STORE
    assert principal.token_id == "jti-1"
    assert principal.terminal_id is None


def test_psp_level_user_has_no_merchant_or_store() -> None:
    principal = principal_from_claims(_claims(role="psp_admin", merchant_id=None, store_id=None))
    assert principal.scope.merchant_id is None
    assert principal.scope.store_id is None


def test_device_claims_become_a_terminal_whatever_role_they_claim() -> None:
    principal = principal_from_claims(_claims(token_use="device", role="psp_admin"))
    assert principal.kind == "device"
    assert principal.role is Role.TERMINAL
    assert principal.terminal_id == principal.subject_id


@pytest.mark.parametrize(
    "overrides",
    [
        {"psp_id": None},
        {"psp_id": "not-a-uuid"},
        {"sub": "not-a-uuid"},
        {"role": "superuser"},
        {"role": None},
        # Roles that are not people's: a user token may not claim them.
        {"role": "terminal"},
        {"role": "service"},
        {"role": "payment_token"},
        {"store_id": STORE, "merchant_id": None},  # a store scope needs its merchant
        {"merchant_id": "nope"},
    ],
)
def test_invalid_tenant_or_role_claims_are_bad_claims(overrides: dict[str, Any]) -> None:
    # None removes the claim (merchant_id/store_id None means "not scoped below").
    claims = _claims(**overrides)
    for name in ("psp_id", "role"):
        if claims[name] is None:
            del claims[name]
    with pytest.raises(InvalidToken) as caught:
        principal_from_claims(claims)
    assert caught.value.reason == "bad_claims"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwdw==", "Token abc", "bearer"],
)
def test_requests_without_a_bearer_token_get_missing_token(
    smarttab_client: httpx.Client, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    response = smarttab_client.get("/v1/whoami", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "missing_token"
    assert response.headers["www-authenticate"] == "Bearer"


def test_bearer_scheme_is_case_insensitive(smarttab_client: httpx.Client) -> None:
    # The scheme is accepted; the (garbage) token itself is then what gets refused.
    response = smarttab_client.get("/v1/whoami", headers={"authorization": "bEaReR abc"})
    assert response.status_code == 401
    assert response.json()["code"] == "token_malformed"
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
