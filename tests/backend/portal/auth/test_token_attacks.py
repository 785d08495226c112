"""Forged and broken access tokens against every service.

The portal verifies with its own key ring; smarttab and pgw verify through the portal's JWKS.
Each attack changes exactly one thing of a token that is otherwise accepted (the control test
proves that), and each must be refused with 401 and the precise ``code``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from backend.core.settings import Settings
from backend.core.tokens import SigningKey
from backend.runtime.server import PlatformThread
from tests.backend.portal.auth.support import audit_by_request, problem
from tests.support.portal import EnrolledTerminal, Tenant, build_tenant, enroll_terminal
from tests.support.tokens import (
    b64url_json,
    compact,
    foreign_key,
    forge,
    forge_hs256,
    portal_signing_key,
    public_pem,
    tamper_claims,
    user_claims,
)

SERVICES = {
    "portal": "/v1/auth/me",
    "smarttab": "/v1/whoami",
    "pgw": "/v1/whoami",
}


@dataclass
class Target:
    service: str
    client: httpx.Client
    path: str

    def call(self, token: str | None) -> httpx.Response:
        headers = {} if token is None else {"authorization": f"Bearer {token}"}
        return self.client.get(self.path, headers=headers)


@pytest.fixture(scope="module")
def clients(platform: PlatformThread) -> Iterator[dict[str, httpx.Client]]:
    opened = {name: httpx.Client(base_url=platform.url_of(name), timeout=10.0) for name in SERVICES}
    try:
        yield opened
    finally:
        for client in opened.values():
            client.close()


@pytest.fixture(scope="module")
def victim(test_settings: Settings, clients: dict[str, httpx.Client]) -> Tenant:
    return build_tenant(test_settings, clients["portal"])


@pytest.fixture(scope="module")
def terminal(clients: dict[str, httpx.Client], victim: Tenant) -> EnrolledTerminal:
    return enroll_terminal(clients["portal"], victim.admin, victim.store_a_id)


@pytest.fixture(scope="module")
def signing_key(test_settings: Settings, clients: dict[str, httpx.Client]) -> SigningKey:
    clients["portal"].get("/healthz")  # the portal has created its first key by now
    return portal_signing_key(test_settings)


@pytest.fixture(params=list(SERVICES))
def target(request: pytest.FixtureRequest, clients: dict[str, httpx.Client]) -> Target:
    return Target(request.param, clients[request.param], SERVICES[request.param])


@dataclass
class Forgery:
    settings: Settings
    key: SigningKey
    tenant: Tenant

    def claims(self, **overrides: Any) -> dict[str, Any]:
        claims = user_claims(self.settings, psp_id=self.tenant.psp_id, subject=self.tenant.admin.id)
        claims.update(overrides)
        return claims

    def signed(self, **overrides: Any) -> str:
        return forge(self.claims(**overrides), self.key)


@pytest.fixture
def forgery(test_settings: Settings, signing_key: SigningKey, victim: Tenant) -> Forgery:
    return Forgery(test_settings, signing_key, victim)


# --- what is accepted -----------------------------------------------------------------------------


def test_control_a_token_forged_with_the_real_key_and_claims_is_accepted(
    target: Target, forgery: Forgery
) -> None:
    # Without this, a refusal below could come from a broken forgery instead of the attack.
    response = target.call(forgery.signed())
    assert response.status_code == 200, response.text


def test_a_real_user_token_is_accepted(target: Target, victim: Tenant) -> None:
    cashier = victim.user("cashier")
    response = target.call(cashier.access_token)
    assert response.status_code == 200, response.text
    body = response.json()
    identity = body["id"] if target.service == "portal" else body["subject_id"]
    assert identity == cashier.id
    assert body["role"] == "cashier"
    assert body["store_id"] == victim.store_a_id
    if target.service != "portal":
        assert body["kind"] == "user"


def test_a_real_device_token_is_accepted_by_smarttab_and_pgw(
    clients: dict[str, httpx.Client], terminal: EnrolledTerminal, victim: Tenant
) -> None:
    token = terminal.fresh_token(clients["portal"])
    for service in ("smarttab", "pgw"):
        response = clients[service].get("/v1/whoami", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert response.json() == {
            "kind": "device",
            "subject_id": terminal.terminal_id,
            "role": "terminal",
            "psp_id": victim.psp_id,
            "merchant_id": victim.merchant_id,
            "store_id": terminal.store_id,
        }


def test_a_real_device_token_is_accepted_by_the_portal(
    clients: dict[str, httpx.Client], terminal: EnrolledTerminal
) -> None:
    portal = clients["portal"]
    headers = {"authorization": f"Bearer {terminal.fresh_token(portal)}"}
    # Authenticated (not 401): /me only describes people, but the store is the terminal's own.
    problem(portal.get("/v1/auth/me", headers=headers), 403, "user_token_required")
    store = portal.get(f"/v1/stores/{terminal.store_id}", headers=headers)
    assert store.status_code == 200, store.text
    assert store.json()["id"] == terminal.store_id


# --- what is refused ------------------------------------------------------------------------------


def _expired(f: Forgery) -> str:
    now = int(time.time())
    leeway = f.settings.clock_skew_leeway_s
    return f.signed(iat=now - 1000, nbf=now - 1000, exp=now - leeway - 60)


def _not_yet_valid(f: Forgery) -> str:
    now = int(time.time())
    return f.signed(nbf=now + 600, exp=now + 900)


def _without(claim: str) -> Callable[[Forgery], str]:
    def build(f: Forgery) -> str:
        claims = f.claims()
        del claims[claim]
        return forge(claims, f.key)

    return build


def _with_embedded_key(f: Forgery, *, kid: str | None) -> str:
    """Signed by a foreign key that the header itself offers (``jwk``/``jku``): never trusted."""
    intruder = foreign_key()
    headers = {
        "kid": kid or intruder.kid,
        "jwk": intruder.public_jwk(),
        "jku": "http://127.0.0.1:9/evil-jwks.json",
    }
    return forge(f.claims(), intruder.private_key, headers=headers)


def _payload_swapped(f: Forgery) -> str:
    """The signature of a genuine cashier token over a psp_admin payload."""
    header, _, signature = f.signed(role="cashier").split(".")
    return f"{header}.{b64url_json(f.claims(role='psp_admin'))}.{signature}"


ATTACKS: dict[str, tuple[Callable[[Forgery], str], str]] = {
    "alg_none": (
        lambda f: forge(f.claims(), None, alg="none", headers={"kid": f.key.kid}),
        "token_algorithm_not_allowed",
    ),
    "alg_none_capitalised": (
        lambda f: compact({"alg": "None", "kid": f.key.kid}, f.claims(), lambda _: b""),
        "token_algorithm_not_allowed",
    ),
    "alg_missing": (
        lambda f: compact({"kid": f.key.kid, "typ": "at+jwt"}, f.claims(), lambda _: b"x"),
        "token_algorithm_not_allowed",
    ),
    "hs256_keyed_with_the_portal_public_pem": (
        lambda f: forge_hs256(f.claims(), public_pem(f.key), headers={"kid": f.key.kid}),
        "token_algorithm_not_allowed",
    ),
    "rs256_header_on_the_portal_es256_kid": (
        lambda f: forge(
            f.claims(), foreign_key("RS256").private_key, alg="RS256", headers={"kid": f.key.kid}
        ),
        "token_algorithm_mismatch",
    ),
    "expired": (_expired, "token_expired"),
    "not_yet_valid": (_not_yet_valid, "token_not_yet_valid"),
    "wrong_audience": (lambda f: f.signed(aud="some-other-platform"), "token_wrong_audience"),
    "wrong_issuer": (lambda f: f.signed(iss="https://evil.example"), "token_wrong_issuer"),
    "unknown_kid": (
        lambda f: forge(f.claims(), f.key, headers={"kid": uuid.uuid4().hex}),
        "token_unknown_kid",
    ),
    "missing_kid": (lambda f: forge(f.claims(), f.key, headers={"kid": None}), "token_missing_kid"),
    "foreign_key_embedded_as_jwk_header": (
        lambda f: _with_embedded_key(f, kid=f.key.kid),
        "token_bad_signature",
    ),
    "foreign_key_embedded_with_its_own_kid": (
        lambda f: _with_embedded_key(f, kid=None),
        "token_unknown_kid",
    ),
    "kid_with_path_and_sql_tricks": (
        lambda f: forge(f.claims(), f.key, headers={"kid": "../../keys/active' OR '1'='1"}),
        "token_unknown_kid",
    ),
    "foreign_es256_key_under_the_real_kid": (
        lambda f: forge(f.claims(), foreign_key().private_key, headers={"kid": f.key.kid}),
        "token_bad_signature",
    ),
    "tampered_payload": (
        lambda f: tamper_claims(
            f.signed(
                role="cashier", merchant_id=f.tenant.merchant_id, store_id=f.tenant.store_a_id
            ),
            role="psp_admin",
            merchant_id=None,
            store_id=None,
        ),
        "token_bad_signature",
    ),
    "payload_swapped_from_another_token": (_payload_swapped, "token_bad_signature"),
    "token_use_refresh": (lambda f: f.signed(token_use="refresh"), "token_wrong_token_use"),
    "token_use_client_assertion": (
        lambda f: f.signed(token_use="client_assertion"),
        "token_wrong_token_use",
    ),
    "missing_jti": (_without("jti"), "token_missing_claim"),
    "missing_exp": (_without("exp"), "token_missing_claim"),
    "psp_id_not_a_uuid": (lambda f: f.signed(psp_id="everything"), "token_bad_claims"),
    "unknown_role": (lambda f: f.signed(role="superuser"), "token_bad_claims"),
    "garbage": (lambda f: "this-is-not-a-jwt", "token_malformed"),
    "three_garbage_segments": (lambda f: "aaa.bbb.ccc", "token_malformed"),
    "signature_stripped": (lambda f: f.signed().rsplit(".", 1)[0] + ".", "token_bad_signature"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_forged_or_broken_token_is_refused_with_its_reason(
    target: Target, forgery: Forgery, attack: str
) -> None:
    build, code = ATTACKS[attack]
    response = target.call(build(forgery))
    body = problem(response, 401, code)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert body["instance"] == target.path


def test_missing_bearer_is_refused_with_missing_token(target: Target) -> None:
    response = target.call(None)
    problem(response, 401, "missing_token")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "attack", ["alg_none", "expired", "unknown_kid", "foreign_es256_key_under_the_real_kid"]
)
def test_portal_audits_refused_tokens_with_the_reason(
    clients: dict[str, httpx.Client], forgery: Forgery, test_settings: Settings, attack: str
) -> None:
    build, code = ATTACKS[attack]
    response = clients["portal"].get(
        "/v1/auth/me", headers={"authorization": f"Bearer {build(forgery)}"}
    )
    body = problem(response, 401, code)
    [row] = audit_by_request(test_settings, body["request_id"])
    assert row["event_type"] == "access_token.refused"
    assert row["outcome"] == "failure"
    assert row["reason"] == code.removeprefix("token_")
    assert row["detail"] == {"path": "/v1/auth/me", "method": "GET"}


def test_every_refusal_reason_reaches_the_portal_audit(
    clients: dict[str, httpx.Client], forgery: Forgery, test_settings: Settings
) -> None:
    seen = set()
    for build, code in ATTACKS.values():
        response = clients["portal"].get(
            "/v1/auth/me", headers={"authorization": f"Bearer {build(forgery)}"}
        )
        body = problem(response, 401, code)
        [row] = audit_by_request(test_settings, body["request_id"])
        assert row["reason"] == code.removeprefix("token_")
        seen.add(row["reason"])
    assert len(seen) == len({code for _, code in ATTACKS.values()})


def test_refused_tokens_do_not_leak_the_verifier_internals(
    target: Target, forgery: Forgery
) -> None:
    response = target.call(forge_hs256(forgery.claims(), public_pem(forgery.key)))
    assert "BEGIN PUBLIC KEY" not in response.text
    assert "Traceback" not in response.text
