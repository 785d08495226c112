"""The portal's published keys and OAuth metadata, on the session's running portal."""

from __future__ import annotations

import httpx

from backend.core.jwks import parse_jwks
from backend.core.settings import Settings
from tests.support.portal import create_psp_with_admin, login
from tests.support.tokens import portal_signing_key, published_signing_keys, unverified_parts

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


def test_jwks_publishes_public_es256_signature_keys_only(portal_client: httpx.Client) -> None:
    response = portal_client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    keys = response.json()["keys"]
    assert keys
    for jwk in keys:
        assert not PRIVATE_MEMBERS & set(jwk), jwk
        assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
        assert jwk["kid"]
    assert len(parse_jwks(response.json())) == len(keys)


def test_jwks_may_be_cached_briefly_by_verifiers(portal_client: httpx.Client) -> None:
    response = portal_client.get("/.well-known/jwks.json")
    assert response.headers["cache-control"] == "public, max-age=60"


def test_jwks_lists_exactly_the_keys_published_in_the_database(
    portal_client: httpx.Client, test_settings: Settings
) -> None:
    published = published_signing_keys(test_settings)
    served = {jwk["kid"]: jwk for jwk in portal_client.get("/.well-known/jwks.json").json()["keys"]}
    assert set(served) == set(published)
    for kid, key in published.items():
        assert served[kid] == key.public_jwk()


def test_tokens_are_signed_by_the_active_key(
    portal_client: httpx.Client, test_settings: Settings
) -> None:
    _, email = create_psp_with_admin(test_settings)
    header, _ = unverified_parts(login(portal_client, email)["access_token"])
    assert header["kid"] == portal_signing_key(test_settings).kid


def test_authorization_server_metadata(
    portal_client: httpx.Client, test_settings: Settings
) -> None:
    response = portal_client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == test_settings.resolved_issuer
    assert metadata["token_endpoint"] == f"{test_settings.resolved_issuer}/oauth2/token"
    assert metadata["jwks_uri"] == f"{test_settings.resolved_portal_url}/.well-known/jwks.json"
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert metadata["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert metadata["token_endpoint_auth_signing_alg_values_supported"] == ["ES256", "RS256"]
    # What it points at is really there.
    jwks_path = metadata["jwks_uri"].removeprefix(test_settings.resolved_portal_url)
    assert portal_client.get(jwks_path).status_code == 200
