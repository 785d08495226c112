from __future__ import annotations

import httpx
import pytest

from tests.backend.provider.support import authorization_body

PROTECTED = [
    ("POST", "/v1/authorizations"),
    ("GET", "/v1/authorizations/by-reference/x"),
    ("POST", "/v1/authorizations/auth_x/capture"),
    ("POST", "/v1/authorizations/auth_x/void"),
    ("POST", "/v1/authorizations/auth_x/refunds"),
    ("POST", "/v1/qr-payments"),
    ("GET", "/v1/qr-payments/by-reference/x"),
    ("POST", "/v1/qr-payments/qr_x/simulate"),
    ("POST", "/v1/qr-payments/qr_x/refunds"),
    ("GET", "/v1/_control/webhooks"),
    ("POST", "/v1/_control/webhooks/evt_x/redeliver"),
    ("GET", "/v1/_control/config"),
    ("POST", "/v1/_control/config"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_api_key"),
        ("Bearer sim_sk_wrong", "invalid_api_key"),
        ("Basic x", "missing_api_key"),
    ],
)
def test_every_route_needs_the_api_key(
    provider_url: str, method: str, path: str, authorization: str | None, code: str
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    response = httpx.request(
        method, provider_url + path, headers=headers, json=authorization_body(), timeout=10
    )
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_is_public(provider_url: str, path: str) -> None:
    response = httpx.get(provider_url + path, timeout=10)
    assert response.status_code == 200
    assert response.json()["service"] == "provider"
