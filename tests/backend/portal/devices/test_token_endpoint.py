"""POST /oauth2/token: client_credentials with private_key_jwt client authentication (RFC 7523)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from backend.core.redis import create_redis
from backend.core.settings import Settings
from backend.portal.devices.service import CLIENT_ASSERTION_TYPE, jwk_thumbprint
from tests.backend.portal.devices.db import audit_rows, new_request_id
from tests.support.portal import (
    DeviceKey,
    EnrolledTerminal,
    Tenant,
    bearer,
    enroll_terminal,
    register_terminal,
    token_form,
)

TOKEN = "/oauth2/token"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_jws(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A compact JWS built without a JWT library: ``alg`` says whatever the test wants."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = (
        b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    )
    return f"{signing_input}.{b64url(signature)}"


def assertion_claims(client_id: str, audience: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }


def post_token(portal: httpx.Client, form: dict[str, str], request_id: str) -> httpx.Response:
    return portal.post(TOKEN, data=form, headers={"x-request-id": request_id})


def assert_token_refused(
    portal: httpx.Client, settings: Settings, form: dict[str, str], code: str
) -> dict[str, Any]:
    """A 401 that is both a problem document and an OAuth2 error, with its audit row."""
    request_id = new_request_id()

    response = post_token(portal, form, request_id)

    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 'error="invalid_client"' in response.headers["www-authenticate"]
    body = response.json()
    assert body["code"] == code
    assert body["error"] == "invalid_client"
    assert body["error_description"]
    assert "access_token" not in body
    rows = audit_rows(settings, request_id=request_id)
    assert [(row["event_type"], row["outcome"], row["reason"]) for row in rows] == [
        ("device_token.refused", "failure", code.removeprefix("assertion_"))
    ]
    return rows[0]


def assert_token_issued(portal: httpx.Client, form: dict[str, str]) -> dict[str, Any]:
    response = portal.post(TOKEN, data=form)
    assert response.status_code == 200, response.text
    return dict(response.json())


def verified_claims(portal: httpx.Client, settings: Settings, token: str) -> dict[str, Any]:
    """Verify a portal token the way another service does: through the published JWKS."""
    header = jwt.get_unverified_header(token)
    jwks = portal.get("/.well-known/jwks.json").json()["keys"]
    (jwk,) = [key for key in jwks if key["kid"] == header["kid"]]
    return dict(
        jwt.decode(
            token,
            jwt.PyJWK(jwk).key,
            algorithms=[jwk["alg"]],
            audience=settings.token_audience,
            issuer=settings.resolved_issuer,
        )
    )


# --- tokens are issued ------------------------------------------------------------------------


def test_signed_assertion_is_exchanged_for_a_short_lived_device_token(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    enrolled: EnrolledTerminal,
) -> None:
    issued = assert_token_issued(
        portal_client,
        token_form(enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint)),
    )

    assert issued["token_type"] == "Bearer"
    assert 60 <= issued["expires_in"] <= 120
    header = jwt.get_unverified_header(issued["access_token"])
    assert header["alg"] == "ES256"
    assert header["kid"]
    claims = verified_claims(portal_client, test_settings, issued["access_token"])
    assert claims["aud"] == "mpac"
    assert claims["sub"] == enrolled.terminal_id
    assert claims["token_use"] == "device"
    assert claims["terminal_id"] == enrolled.terminal_id
    assert claims["psp_id"] == tenant.psp_id
    assert claims["merchant_id"] == tenant.merchant_id
    assert claims["store_id"] == tenant.store_a_id
    assert claims["exp"] - claims["iat"] == issued["expires_in"]
    shown = portal_client.get(f"/v1/terminals/{enrolled.terminal_id}", headers=tenant.admin.headers)
    assert claims["cnf"] == {"jkt": shown.json()["key_thumbprint"]}


@pytest.mark.parametrize("audience", ["token_endpoint", "issuer"])
def test_assertion_may_name_the_token_endpoint_or_the_issuer(
    portal_client: httpx.Client,
    test_settings: Settings,
    enrolled: EnrolledTerminal,
    audience: str,
) -> None:
    named = {
        "token_endpoint": enrolled.token_endpoint,
        "issuer": test_settings.resolved_issuer,
    }[audience]

    assert_token_issued(
        portal_client, token_form(enrolled.key.assertion(enrolled.terminal_id, named))
    )


def test_client_id_form_field_may_repeat_the_assertions_subject(
    portal_client: httpx.Client, enrolled: EnrolledTerminal
) -> None:
    assertion = enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint)

    assert_token_issued(portal_client, token_form(assertion, client_id=enrolled.terminal_id))


def test_assertion_may_live_exactly_the_maximum_lifetime(
    portal_client: httpx.Client, test_settings: Settings, enrolled: EnrolledTerminal
) -> None:
    assertion = enrolled.key.assertion(
        enrolled.terminal_id,
        enrolled.token_endpoint,
        lifetime_s=test_settings.client_assertion_max_lifetime_s,
    )

    assert_token_issued(portal_client, token_form(assertion))


def test_small_clock_skew_on_iat_is_tolerated(
    portal_client: httpx.Client, enrolled: EnrolledTerminal
) -> None:
    assertion = enrolled.key.assertion(
        enrolled.terminal_id, enrolled.token_endpoint, issued_at=int(time.time()) + 10
    )

    assert_token_issued(portal_client, token_form(assertion))


@pytest.mark.parametrize("service", ["smarttab_client", "pgw_client"])
def test_device_token_authenticates_the_terminal_at_the_other_services(
    request: pytest.FixtureRequest,
    portal_client: httpx.Client,
    tenant: Tenant,
    enrolled: EnrolledTerminal,
    service: str,
) -> None:
    client: httpx.Client = request.getfixturevalue(service)

    response = client.get("/v1/whoami", headers=bearer(enrolled.fresh_token(portal_client)))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "kind": "device",
        "subject_id": enrolled.terminal_id,
        "role": "terminal",
        "psp_id": tenant.psp_id,
        "merchant_id": tenant.merchant_id,
        "store_id": tenant.store_a_id,
    }


# --- malformed requests -----------------------------------------------------------------------


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "", None])
def test_only_the_client_credentials_grant_is_supported(
    portal_client: httpx.Client, enrolled: EnrolledTerminal, grant_type: str | None
) -> None:
    form = token_form(enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint))
    if grant_type is None:
        del form["grant_type"]
    else:
        form["grant_type"] = grant_type

    response = portal_client.post(TOKEN, data=form)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "unsupported_grant_type"
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"client_assertion": None}, id="no-assertion"),
        pytest.param({"client_assertion": ""}, id="empty-assertion"),
        pytest.param({"client_assertion_type": None}, id="no-assertion-type"),
        pytest.param(
            {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"},
            id="other-assertion-type",
        ),
    ],
)
def test_client_must_authenticate_with_a_jwt_assertion(
    portal_client: httpx.Client, enrolled: EnrolledTerminal, change: dict[str, str | None]
) -> None:
    form = token_form(enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint))
    for name, value in change.items():
        if value is None:
            del form[name]
        else:
            form[name] = value

    response = portal_client.post(TOKEN, data=form)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "client_assertion_required"
    assert response.json()["error"] == "invalid_request"
    assert CLIENT_ASSERTION_TYPE in response.json()["error_description"]


def test_assertion_that_is_not_a_jwt_is_refused(
    portal_client: httpx.Client, test_settings: Settings
) -> None:
    assert_token_refused(
        portal_client, test_settings, token_form("not-a-jwt"), "assertion_malformed"
    )


# --- refused assertions -----------------------------------------------------------------------


def test_assertion_cannot_be_replayed(
    portal_client: httpx.Client, test_settings: Settings, enrolled: EnrolledTerminal
) -> None:
    form = token_form(enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint))
    assert_token_issued(portal_client, form)

    assert_token_refused(portal_client, test_settings, form, "assertion_replayed")


def test_an_assertion_stays_used_when_redis_forgets_it(
    portal_client: httpx.Client,
    test_settings: Settings,
    enrolled: EnrolledTerminal,
    run_async: Callable[[Coroutine[Any, Any, Any]], Any],
) -> None:
    jti = uuid.uuid4().hex
    form = token_form(
        enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint, jti=jti)
    )
    assert_token_issued(portal_client, form)

    async def forget() -> int:
        # What a Redis crash without persistence does to the replay marker.
        redis = create_redis(test_settings)
        try:
            return int(
                await redis.delete(f"replay:client_assertion_jti:{enrolled.terminal_id}:{jti}")
            )
        finally:
            await redis.aclose()

    assert run_async(forget()) == 1
    assert_token_refused(portal_client, test_settings, form, "assertion_replayed")


def test_jti_cannot_be_reused_in_a_new_assertion(
    portal_client: httpx.Client, test_settings: Settings, enrolled: EnrolledTerminal
) -> None:
    jti = uuid.uuid4().hex
    assert_token_issued(
        portal_client,
        token_form(enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint, jti=jti)),
    )
    again = enrolled.key.assertion(
        enrolled.terminal_id, enrolled.token_endpoint, jti=jti, lifetime_s=120
    )

    assert_token_refused(portal_client, test_settings, token_form(again), "assertion_replayed")


def test_refused_assertion_does_not_use_up_its_jti(
    portal_client: httpx.Client, test_settings: Settings, enrolled: EnrolledTerminal
) -> None:
    assertion = enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint)
    assert_token_refused(
        portal_client,
        test_settings,
        token_form(assertion, client_id=str(uuid.uuid4())),
        "assertion_client_id_mismatch",
    )

    assert_token_issued(portal_client, token_form(assertion))


@pytest.mark.parametrize(
    "audience",
    [
        pytest.param(lambda settings: settings.token_audience, id="access-token-audience"),
        pytest.param(lambda settings: f"{settings.resolved_issuer}/v1/auth/login", id="other-path"),
        pytest.param(lambda settings: "https://elsewhere.example/oauth2/token", id="other-server"),
    ],
)
def test_assertion_for_another_audience_is_refused(
    portal_client: httpx.Client,
    test_settings: Settings,
    enrolled: EnrolledTerminal,
    audience: Any,
) -> None:
    assertion = enrolled.key.assertion(enrolled.terminal_id, audience(test_settings))

    assert_token_refused(
        portal_client, test_settings, token_form(assertion), "assertion_wrong_audience"
    )


def test_assertion_living_longer_than_allowed_is_refused(
    portal_client: httpx.Client, test_settings: Settings, enrolled: EnrolledTerminal
) -> None:
    assertion = enrolled.key.assertion(
        enrolled.terminal_id,
        enrolled.token_endpoint,
        lifetime_s=test_settings.client_assertion_max_lifetime_s + 1,
    )

    assert_token_refused(
        portal_client, test_settings, token_form(assertion), "assertion_lifetime_too_long"
    )


def test_expired_assertion_is_refused(
    portal_client: httpx.Client, test_settings: Settings, enrolled: EnrolledTerminal
) -> None:
    issued_at = int(time.time()) - 60 - test_settings.clock_skew_leeway_s - 30
    assertion = enrolled.key.assertion(
        enrolled.terminal_id, enrolled.token_endpoint, issued_at=issued_at, lifetime_s=60
    )

    assert_token_refused(portal_client, test_settings, token_form(assertion), "assertion_expired")


def test_assertion_issued_in_the_future_is_refused(
    portal_client: httpx.Client, test_settings: Settings, enrolled: EnrolledTerminal
) -> None:
    issued_at = int(time.time()) + test_settings.clock_skew_leeway_s + 60
    assertion = enrolled.key.assertion(
        enrolled.terminal_id, enrolled.token_endpoint, issued_at=issued_at
    )

    # PyJWT refuses an iat beyond the leeway itself, as "not yet valid".
    assert_token_refused(
        portal_client, test_settings, token_form(assertion), "assertion_not_yet_valid"
    )


def test_assertion_signed_by_another_key_is_refused(
    portal_client: httpx.Client, test_settings: Settings, enrolled: EnrolledTerminal
) -> None:
    forged = DeviceKey().assertion(enrolled.terminal_id, enrolled.token_endpoint)

    assert_token_refused(
        portal_client, test_settings, token_form(forged), "assertion_bad_signature"
    )


@pytest.mark.parametrize("pointer", ["kid_of_another_terminal", "embedded_jwk", "jku"])
def test_assertion_whose_header_points_to_the_signing_key_is_refused(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    enrolled: EnrolledTerminal,
    pointer: str,
) -> None:
    """The key comes from the terminal's enrollment, never from what the assertion's header
    says: another enrolled terminal's kid, a key offered inline, or a URL to fetch one from."""
    if pointer == "kid_of_another_terminal":
        neighbour = enroll_terminal(portal_client, tenant.admin, tenant.store_a_id)
        key = neighbour.key
        header: dict[str, Any] = {"kid": jwk_thumbprint(key.public_jwk())}
    else:
        key = DeviceKey()
        header = (
            {"jwk": key.public_jwk()}
            if pointer == "embedded_jwk"
            else {"jku": "http://127.0.0.1:9/evil-jwks.json"}
        )
    claims = assertion_claims(enrolled.terminal_id, enrolled.token_endpoint)
    forged = jwt.encode(claims, key.private_key, algorithm="ES256", headers=header)

    assert_token_refused(
        portal_client, test_settings, token_form(forged), "assertion_bad_signature"
    )


@pytest.mark.parametrize("algorithm", ["none", "HS256"])
def test_assertion_with_a_non_asymmetric_algorithm_is_refused(
    portal_client: httpx.Client,
    test_settings: Settings,
    enrolled: EnrolledTerminal,
    algorithm: str,
) -> None:
    claims = assertion_claims(enrolled.terminal_id, enrolled.token_endpoint)
    # HS256 "signed" with the device's public key: the classic algorithm-confusion forgery.
    public_key = json.dumps(enrolled.key.public_jwk()).encode() if algorithm == "HS256" else None
    assertion = hand_made_jws({"alg": algorithm, "typ": "JWT"}, claims, public_key)

    assert_token_refused(
        portal_client, test_settings, token_form(assertion), "assertion_algorithm_not_allowed"
    )


def test_rs256_assertion_for_an_ec_key_is_refused(
    portal_client: httpx.Client, test_settings: Settings, enrolled: EnrolledTerminal
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assertion = jwt.encode(
        assertion_claims(enrolled.terminal_id, enrolled.token_endpoint), rsa_key, algorithm="RS256"
    )

    assert_token_refused(
        portal_client, test_settings, token_form(assertion), "assertion_algorithm_mismatch"
    )


def test_assertion_whose_issuer_is_not_its_subject_is_refused(
    portal_client: httpx.Client, test_settings: Settings, enrolled: EnrolledTerminal
) -> None:
    assertion = enrolled.key.assertion(
        enrolled.terminal_id, enrolled.token_endpoint, extra_claims={"iss": str(uuid.uuid4())}
    )

    assert_token_refused(
        portal_client, test_settings, token_form(assertion), "assertion_iss_sub_mismatch"
    )


def test_client_id_form_field_must_match_the_assertion(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    enrolled: EnrolledTerminal,
) -> None:
    other = register_terminal(portal_client, tenant.admin, tenant.store_a_id)[0]
    assertion = enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint)

    assert_token_refused(
        portal_client,
        test_settings,
        token_form(assertion, client_id=other),
        "assertion_client_id_mismatch",
    )


def test_jti_must_be_long_enough_to_be_unique(
    portal_client: httpx.Client, test_settings: Settings, enrolled: EnrolledTerminal
) -> None:
    assertion = enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint, jti="1234")

    assert_token_refused(portal_client, test_settings, token_form(assertion), "assertion_bad_jti")


@pytest.mark.parametrize("client_id", ["5f0c1a52-3d4e-4b7f-9a61-0c2d8e9b7a10", "not-a-uuid"])
def test_unknown_client_is_refused(
    portal_client: httpx.Client, test_settings: Settings, client_id: str
) -> None:
    assertion = DeviceKey().assertion(client_id, test_settings.token_endpoint)

    row = assert_token_refused(
        portal_client, test_settings, token_form(assertion), "assertion_unknown_client"
    )
    assert row["actor_type"] == "anonymous"
    assert row["merchant_id"] is None


def test_never_enrolled_terminal_is_refused(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    terminal_id = register_terminal(portal_client, tenant.admin, tenant.store_a_id)[0]
    assertion = DeviceKey().assertion(terminal_id, test_settings.token_endpoint)

    assert_token_refused(
        portal_client, test_settings, token_form(assertion), "assertion_client_not_enrolled"
    )


def test_decommissioned_terminal_is_refused_as_unknown(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    enrolled: EnrolledTerminal,
) -> None:
    retired = portal_client.post(
        f"/v1/terminals/{enrolled.terminal_id}/decommission",
        headers=tenant.admin.headers,
        json={"reason": "end of life"},
    )
    assert retired.status_code == 200, retired.text
    assertion = enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint)

    assert_token_refused(
        portal_client, test_settings, token_form(assertion), "assertion_unknown_client"
    )


def test_suspended_terminal_gets_tokens_again_once_reactivated(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    enrolled: EnrolledTerminal,
) -> None:
    terminal_url = f"/v1/terminals/{enrolled.terminal_id}"
    suspended = portal_client.post(
        f"{terminal_url}/suspend", headers=tenant.admin.headers, json={"reason": "audit"}
    )
    assert suspended.status_code == 200, suspended.text
    assert_token_refused(
        portal_client,
        test_settings,
        token_form(enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint)),
        "assertion_client_suspended",
    )

    reactivated = portal_client.post(
        f"{terminal_url}/reactivate", headers=tenant.admin.headers, json={}
    )
    assert reactivated.status_code == 200, reactivated.text

    assert_token_issued(
        portal_client,
        token_form(enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint)),
    )


# --- who sees the refusals --------------------------------------------------------------------


@pytest.mark.parametrize("refusal", ["suspended", "forged"])
def test_refusal_about_a_known_terminal_is_recorded_in_its_tenant(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    enrolled: EnrolledTerminal,
    refusal: str,
) -> None:
    key = enrolled.key
    if refusal == "suspended":
        suspended = portal_client.post(
            f"/v1/terminals/{enrolled.terminal_id}/suspend",
            headers=tenant.admin.headers,
            json={"reason": "audit"},
        )
        assert suspended.status_code == 200, suspended.text
    else:
        key = DeviceKey()
    code = {"suspended": "assertion_client_suspended", "forged": "assertion_bad_signature"}
    form = token_form(key.assertion(enrolled.terminal_id, enrolled.token_endpoint))

    row = assert_token_refused(portal_client, test_settings, form, code[refusal])

    assert row["target_type"] == "terminal"
    assert row["target_id"] == enrolled.terminal_id
    assert str(row["psp_id"]) == tenant.psp_id
    assert str(row["merchant_id"]) == tenant.merchant_id
    assert str(row["store_id"]) == tenant.store_a_id
    # ... so the tenant's auditor sees it through the audit API.
    listed = portal_client.get(
        "/v1/audit-events",
        headers=tenant.user("auditor").headers,
        params={"event_type": "device_token.refused"},
    )
    assert listed.status_code == 200, listed.text
    assert [item["target_id"] for item in listed.json()["items"]] == [enrolled.terminal_id]
