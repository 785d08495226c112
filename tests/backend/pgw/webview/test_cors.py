"""CORS on the routes a payment token may call: any origin, no credentials, preflights answered,
and every answer readable by the page, problems included. Nothing else is opened."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from backend.core.cors import CorsMiddleware
from backend.core.errors import install_problem_handlers
from backend.core.request_context import RequestContextMiddleware
from backend.pgw.webview.cors import PGW_CORS_POLICIES
from tests.backend.pgw.payment_tokens.support import Shop, token_headers
from tests.backend.pgw.webview.support import ORIGIN
from tests.helpers import run
from tests.support.pgw import qr_payment


def preflight(
    pgw: httpx.Client, path: str, method: str, headers: str = "authorization"
) -> httpx.Response:
    return pgw.options(
        path,
        headers={
            "origin": ORIGIN,
            "access-control-request-method": method,
            "access-control-request-headers": headers,
        },
    )


def assert_readable_by_any_page(response: httpx.Response) -> None:
    assert response.headers["access-control-allow-origin"] == "*"
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "idempotent-replayed", "location", "retry-after"} <= exposed
    assert "access-control-allow-credentials" not in response.headers


class TestPreflight:
    @pytest.mark.parametrize(
        ("path", "method"),
        [
            ("/v1/payments", "POST"),
            (f"/v1/payments/{uuid.uuid4()}", "GET"),
            (f"/v1/payments/{uuid.uuid4()}/stream", "GET"),
            (f"/v1/payments/{uuid.uuid4()}/qr.svg", "GET"),
            (f"/v1/payments/{uuid.uuid4()}/void", "POST"),
            ("/v1/payment-tokens/current", "DELETE"),
        ],
    )
    def test_is_answered_204_with_what_a_page_may_send(
        self, pgw: httpx.Client, path: str, method: str
    ) -> None:
        response = preflight(pgw, path, method, "authorization, content-type, idempotency-key")

        assert response.status_code == 204, response.text
        assert response.content == b""
        assert response.headers["access-control-allow-origin"] == "*"
        methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
        assert {"GET", "POST", "DELETE"} <= methods
        allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type", "idempotency-key"} <= allowed
        assert int(response.headers["access-control-max-age"]) > 0
        assert "access-control-allow-credentials" not in response.headers
        # The shared middleware still runs around it.
        assert response.headers["x-request-id"]
        assert response.headers["x-content-type-options"] == "nosniff"

    @pytest.mark.parametrize(
        ("path", "method"),
        [
            ("/v1/payment-tokens", "POST"),  # issuing: terminals and services only
            ("/v1/settlements/close", "POST"),
            ("/v1/provider/webhooks", "POST"),
            ("/v1/payments-export", "GET"),  # a prefix covers its subtree, not look-alikes
            ("/v1/whoami", "GET"),
        ],
    )
    def test_paths_a_token_does_not_use_get_no_cors(
        self, pgw: httpx.Client, path: str, method: str
    ) -> None:
        response = preflight(pgw, path, method)

        assert response.status_code in (404, 405)
        assert "access-control-allow-origin" not in response.headers

    def test_an_options_request_that_is_no_preflight_is_not_answered_as_one(
        self, pgw: httpx.Client
    ) -> None:
        response = pgw.options("/v1/payments", headers={"origin": ORIGIN})

        assert response.status_code == 405
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["access-control-allow-origin"] == "*"


class TestResponses:
    def test_a_success_is_readable_by_a_page_of_any_origin(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        token = shop.issue(amount=800, currency="JPY")["token"]
        created = pgw.post(
            "/v1/payments",
            json=qr_payment(amount=800),
            headers={**token_headers(token, idempotency_key=True), "origin": ORIGIN},
        )
        assert created.status_code == 201, created.text
        assert_readable_by_any_page(created)

        read = pgw.get(
            f"/v1/payments/{created.json()['id']}",
            headers={**token_headers(token), "origin": ORIGIN},
        )
        assert read.status_code == 200
        assert_readable_by_any_page(read)
        current = pgw.get(
            "/v1/payment-tokens/current", headers={**token_headers(token), "origin": ORIGIN}
        )
        assert current.status_code == 200
        assert_readable_by_any_page(current)

    def test_problems_are_readable_too(self, shop: Shop, pgw: httpx.Client) -> None:
        token = shop.issue(amount=800, currency="JPY")["token"]
        with_origin = {"origin": ORIGIN}
        problems = {
            401: pgw.get(f"/v1/payments/{uuid.uuid4()}", headers=with_origin),
            # A well-formed token that does not exist.
            402: pgw.get(
                f"/v1/payments/{uuid.uuid4()}",
                headers={**token_headers("pt_" + "x" * 43), **with_origin},
            ),
            403: pgw.get("/v1/payments", headers={**token_headers(token), **with_origin}),
            404: pgw.get(
                f"/v1/payments/{uuid.uuid4()}", headers={**token_headers(token), **with_origin}
            ),
            422: pgw.post(
                "/v1/payments",
                json={"amount": -1, "currency": "JPY"},
                headers={**token_headers(token, idempotency_key=True), **with_origin},
            ),
        }
        expected = {
            401: (401, "missing_token"),
            402: (401, "payment_token_invalid"),
            403: (403, "permission_denied"),
            404: (404, "payment_not_found"),
            422: (422, "validation_failed"),
        }
        for key, response in problems.items():
            status, code = expected[key]
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == code
            assert_readable_by_any_page(response)
        # A page can see why it must ask for a new token.
        exposed = problems[402].headers["access-control-expose-headers"]
        assert "www-authenticate" in exposed
        assert problems[402].headers["www-authenticate"].startswith("Bearer")

    def test_other_routes_stay_closed_to_pages(self, shop: Shop, pgw: httpx.Client) -> None:
        for response in (
            pgw.get("/healthz", headers={"origin": ORIGIN}),
            pgw.post(
                "/v1/payment-tokens",
                json={},
                headers={**shop.device_headers(), "origin": ORIGIN},
            ),
            pgw.get("/v1/settlements", headers={**shop.device_headers(), "origin": ORIGIN}),
        ):
            assert "access-control-allow-origin" not in response.headers, response.request.url


def test_an_unexpected_500_still_carries_the_cors_headers() -> None:
    """Starlette sends a 500 past every middleware; the problem handler adds them itself."""
    app = FastAPI()
    app.add_middleware(CorsMiddleware, policies=PGW_CORS_POLICIES)
    app.add_middleware(RequestContextMiddleware)
    install_problem_handlers(app)

    @app.get("/v1/payments/{payment_id}")
    async def broken(payment_id: str) -> None:
        raise RuntimeError("a defect")

    @app.get("/v1/settlements")
    async def broken_elsewhere() -> None:
        raise RuntimeError("a defect")

    async def call() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://pgw") as client:
            covered = await client.get("/v1/payments/x", headers={"origin": ORIGIN})
            closed = await client.get("/v1/settlements", headers={"origin": ORIGIN})
            return covered, closed

    covered, closed = run(call())

    assert covered.status_code == 500
    assert covered.json()["code"] == "internal_error"
    assert_readable_by_any_page(covered)
    assert covered.headers["x-request-id"]
    assert closed.status_code == 500
    assert "access-control-allow-origin" not in closed.headers
