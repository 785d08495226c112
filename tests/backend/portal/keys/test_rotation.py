"""Signing-key rotation on a running platform: no valid token is ever refused because of it."""

from __future__ import annotations

import httpx

from tests.backend.portal.keys.conftest import KEY_RING_REFRESH_S, Isolated
from tests.helpers import wait_until
from tests.support.portal import bearer, create_psp_with_admin, login
from tests.support.tokens import unverified_parts

# The portal rereads its keys every KEY_RING_REFRESH_S; give it generous room on a slow machine.
PICKUP_TIMEOUT_S = 10 * KEY_RING_REFRESH_S + 5


def _kid(token: str) -> str:
    return str(unverified_parts(token)[0]["kid"])


def _jwks_kids(portal: httpx.Client) -> set[str]:
    return {jwk["kid"] for jwk in portal.get("/.well-known/jwks.json").json()["keys"]}


def _accepted(
    isolated: Isolated, token: str, order: tuple[str, ...] = ("portal", "smarttab", "pgw")
) -> dict[str, int]:
    """Status of ``token`` on each service, asked in ``order`` (which matters for caching)."""
    clients = {"portal": isolated.portal, "smarttab": isolated.smarttab, "pgw": isolated.pgw}
    paths = {"portal": "/v1/auth/me", "smarttab": "/v1/whoami", "pgw": "/v1/whoami"}
    return {
        service: clients[service].get(paths[service], headers=bearer(token)).status_code
        for service in order
    }


ALL_OK = {"portal": 200, "smarttab": 200, "pgw": 200}


def _login_with_kid(isolated: Isolated, email: str, kid: str) -> dict[str, str]:
    """Log in until the portal signs with ``kid`` (it rereads its keys every refresh period)."""
    latest: dict[str, dict[str, str]] = {}

    def signs_with_kid() -> bool:
        latest["pair"] = login(isolated.portal, email)
        return _kid(latest["pair"]["access_token"]) == kid

    wait_until(signs_with_kid, timeout_s=PICKUP_TIMEOUT_S, what=f"tokens signed by {kid}")
    return latest["pair"]


def test_rotation_keeps_old_tokens_valid_and_new_tokens_carry_the_new_kid(
    isolated: Isolated,
) -> None:
    _, email = create_psp_with_admin(isolated.settings)
    before = login(isolated.portal, email)
    old_kid = _kid(before["access_token"])
    assert _jwks_kids(isolated.portal) == {old_kid}
    # smarttab fetches the JWKS now; pgw finds it in the shared Redis cache and never fetches.
    assert _accepted(isolated, before["access_token"]) == ALL_OK

    previous, new_kid = isolated.rotate(keep_published_s=3600)
    assert previous == old_kid
    assert new_kid != old_kid

    wait_until(
        lambda: _jwks_kids(isolated.portal) == {old_kid, new_kid},
        timeout_s=PICKUP_TIMEOUT_S,
        what="the JWKS to publish both keys",
    )
    after = _login_with_kid(isolated, email, new_kid)

    # A token signed before the rotation still works everywhere.
    assert _accepted(isolated, before["access_token"]) == ALL_OK
    # The new kid is unknown to pgw's cached JWKS: it refetches (it never fetched before), and
    # smarttab then finds the new document in the Redis cache pgw refreshed.
    assert _accepted(isolated, after["access_token"], ("pgw", "smarttab", "portal")) == ALL_OK

    # The refresh token from before the rotation still refreshes, into a new-kid token.
    refreshed = isolated.portal.post(
        "/v1/auth/refresh", json={"refresh_token": before["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert _kid(refreshed.json()["access_token"]) == new_kid
    assert _accepted(isolated, refreshed.json()["access_token"]) == ALL_OK


def test_rotation_retires_keys_kept_published_long_enough(isolated: Isolated) -> None:
    _, email = create_psp_with_admin(isolated.settings)
    first = login(isolated.portal, email)
    first_kid = _kid(first["access_token"])

    _, second_kid = isolated.rotate(keep_published_s=3600)
    second = _login_with_kid(isolated, email, second_kid)

    # The next rotation keeps nothing older than "now" published: the first key goes away.
    previous, third_kid = isolated.rotate(keep_published_s=0)
    assert previous == second_kid
    wait_until(
        lambda: _jwks_kids(isolated.portal) == {second_kid, third_kid},
        timeout_s=PICKUP_TIMEOUT_S,
        what="the first key to leave the JWKS",
    )
    refused = isolated.portal.get("/v1/auth/me", headers=bearer(first["access_token"]))
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_unknown_kid"
    assert first_kid not in _jwks_kids(isolated.portal)
    # The key the previous rotation retired is still honoured.
    assert (
        isolated.portal.get("/v1/auth/me", headers=bearer(second["access_token"])).status_code
        == 200
    )


def test_verifier_that_fetched_just_before_the_rotation_accepts_the_new_kid(
    isolated: Isolated,
) -> None:
    _, email = create_psp_with_admin(isolated.settings)
    before = login(isolated.portal, email)
    assert (
        isolated.smarttab.get("/v1/whoami", headers=bearer(before["access_token"])).status_code
        == 200
    )

    _, new_kid = isolated.rotate(keep_published_s=3600)
    after = _login_with_kid(isolated, email, new_kid)
    response = isolated.smarttab.get("/v1/whoami", headers=bearer(after["access_token"]))
    assert response.status_code == 200, response.text
