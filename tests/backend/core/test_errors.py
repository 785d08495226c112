"""backend.core.errors: every service answers errors as RFC 9457 problem details, never HTML."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from backend.core.errors import (
    PROBLEM_CONTENT_TYPE,
    Conflict,
    Forbidden,
    TooManyRequests,
    install_problem_handlers,
)
from backend.core.request_context import RequestContextMiddleware
from backend.runtime.server import PlatformThread


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:mpac:problem:{code}"
    assert body["title"]
    assert body["detail"]
    return body


@pytest.fixture(params=["portal", "smarttab", "pgw"])
def service_client(
    request: pytest.FixtureRequest,
    portal_client: httpx.Client,
    smarttab_client: httpx.Client,
    pgw_client: httpx.Client,
) -> httpx.Client:
    return {"portal": portal_client, "smarttab": smarttab_client, "pgw": pgw_client}[request.param]


# --- over HTTP against the running services ---------------------------------------------------


def test_unknown_route_is_a_route_not_found_problem(service_client: httpx.Client) -> None:
    response = service_client.get("/v1/no-such-route")
    body = _assert_problem(response, 404, "route_not_found")
    assert body["instance"] == "/v1/no-such-route"
    assert body["request_id"] == response.headers["x-request-id"]


def test_wrong_method_is_a_method_not_allowed_problem_with_allow(
    service_client: httpx.Client,
) -> None:
    response = service_client.delete("/healthz")
    _assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


def test_problems_carry_the_security_headers(service_client: httpx.Client) -> None:
    response = service_client.get("/nope")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    # Plain HTTP (a local run): HSTS would be meaningless, and wrong if sent.
    assert "strict-transport-security" not in response.headers


def test_json_answers_forbid_running_anything_and_pages_keep_their_policy(
    service_client: httpx.Client,
) -> None:
    health = service_client.get("/healthz")
    docs = service_client.get("/docs")

    assert health.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert docs.status_code == 200
    # The docs UI loads its script and styles: no API policy forced onto an HTML page.
    assert "content-security-policy" not in docs.headers


def test_behind_a_tls_proxy_answers_carry_hsts(service_client: httpx.Client) -> None:
    response = service_client.get("/healthz", headers={"X-Forwarded-Proto": "https"})

    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_a_safe_caller_request_id_is_echoed_into_the_problem(
    service_client: httpx.Client,
) -> None:
    response = service_client.get("/nope", headers={"x-request-id": "trace-1234:abc"})
    assert response.headers["x-request-id"] == "trace-1234:abc"
    assert response.json()["request_id"] == "trace-1234:abc"


def test_an_unsafe_caller_request_id_is_replaced(service_client: httpx.Client) -> None:
    response = service_client.get("/nope", headers={"x-request-id": "evil\tvalue<script>"})
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert response.json()["request_id"] == request_id


def test_health_endpoints_answer(service_client: httpx.Client) -> None:
    assert service_client.get("/healthz").json()["status"] == "ok"
    assert service_client.get("/readyz").json()["status"] == "ready"


def _operations(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    ]


@pytest.mark.parametrize("service", ["portal", "smarttab", "pgw", "provider"])
def test_the_openapi_documents_every_error_as_problem_details(
    platform: PlatformThread, service: str
) -> None:
    """Found by the API fuzzer: every 422 (and every other error) is problem+json, but the
    schemas documented FastAPI's ``{"detail": [...]}`` under ``application/json`` for 422 and
    nothing for the other errors, so no client or checker could trust the documented answers."""
    spec = httpx.get(f"{platform.url_of(service)}/openapi.json").json()
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    documented = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for label, operation in _operations(spec):
        responses = operation["responses"]
        for status in ("4XX", "5XX"):
            assert responses[status]["content"] == {PROBLEM_CONTENT_TYPE: documented}, label
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert response.get("content") == {PROBLEM_CONTENT_TYPE: documented}, (
                    label,
                    status,
                )


# --- the handlers on a bare app ----------------------------------------------------------------


class _Body(BaseModel):
    amount: int
    password: str


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)
    install_problem_handlers(app)

    @app.get("/forbidden")
    async def forbidden() -> None:
        raise Forbidden("No.", code="permission_denied", permission="merchant:read")

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict()

    @app.get("/slow-down")
    async def slow_down() -> None:
        raise TooManyRequests("Later.", code="too_many_attempts", retry_after_s=42)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("database password is hunter2")

    @app.post("/echo")
    async def echo(body: _Body) -> dict:
        return body.model_dump()

    return app


class BareClient:
    """Calls the bare app in-process (ASGI), with app exceptions turned into responses."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://bare") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(call())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


@pytest.fixture(scope="module")
def bare() -> BareClient:
    return BareClient(_app())


def test_problem_extensions_are_merged_into_the_body(bare: BareClient) -> None:
    body = _assert_problem(bare.get("/forbidden"), 403, "permission_denied")
    assert body["permission"] == "merchant:read"
    assert body["detail"] == "No."


def test_problem_defaults_fill_code_title_and_detail(bare: BareClient) -> None:
    body = _assert_problem(bare.get("/conflict"), 409, "conflict")
    assert body["detail"] == body["title"] == "Conflict"


def test_too_many_requests_sends_retry_after(bare: BareClient) -> None:
    response = bare.get("/slow-down")
    body = _assert_problem(response, 429, "too_many_attempts")
    assert response.headers["retry-after"] == "42"
    assert body["retry_after_s"] == 42


def test_unexpected_exception_is_a_500_problem_that_hides_the_message(bare: BareClient) -> None:
    response = bare.get("/boom")
    body = _assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert body["title"] == "Internal server error"


def test_malformed_json_is_a_400_malformed_json(bare: BareClient) -> None:
    response = bare.post(
        "/echo", content=b'{"amount": 1,', headers={"content-type": "application/json"}
    )
    _assert_problem(response, 400, "malformed_json")


def test_a_body_that_is_not_utf8_is_a_400_malformed_json_too(bare: BareClient) -> None:
    """Found by the API fuzzer: bytes that are not UTF-8 made FastAPI raise its own 400 "There
    was an error parsing the body", answered with the undocumented code ``bad_request``."""
    response = bare.post(
        "/echo", content=b"n'>*(\xff", headers={"content-type": "application/json"}
    )
    body = _assert_problem(response, 400, "malformed_json")
    assert body["detail"] == "The request body is not valid JSON."


def test_schema_violation_is_a_422_that_lists_fields_without_echoing_input(
    bare: BareClient,
) -> None:
    response = bare.post("/echo", json={"amount": "lots", "password": ["hunter2-secret"]})
    body = _assert_problem(response, 422, "validation_failed")
    assert "hunter2-secret" not in response.text
    locations = {tuple(error["loc"]) for error in body["errors"]}
    assert locations == {("body", "amount"), ("body", "password")}
    assert all(set(error) == {"loc", "msg", "type"} for error in body["errors"])


def test_a_500_still_names_the_request_so_the_log_line_can_be_found(bare: BareClient) -> None:
    response = bare.get("/boom", headers={"x-request-id": "req-boom-1"})

    body = _assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "req-boom-1"
    assert response.headers["x-request-id"] == "req-boom-1"


# --- a saturated database pool -----------------------------------------------------------------


def test_a_saturated_database_pool_is_a_503_with_retry_after(test_database_url: str) -> None:
    """Found by the locust run: smarttab answered 500 when its pool was exhausted. A full pool
    is the service being busy, not broken: 503 ``service_busy`` with Retry-After, so clients
    (and the load generator) back off instead of reporting a defect."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from backend.core.database import async_database_url

    engine = create_async_engine(
        async_database_url(test_database_url), pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/needs-the-database")
    async def needs_the_database() -> dict[str, int]:
        async with engine.connect() as connection:
            return {"one": (await connection.execute(text("SELECT 1"))).scalar_one()}

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            async with engine.connect():  # the pool's only connection, held by "someone else"
                busy = await client.get("/needs-the-database")
            free = await client.get("/needs-the-database")
        await engine.dispose()
        return busy, free

    busy, free = asyncio.run(scenario())
    body = _assert_problem(busy, 503, "service_busy")
    assert busy.headers["retry-after"] == "1"
    assert body["request_id"] == busy.headers["x-request-id"]
    assert free.status_code == 200
    assert free.json() == {"one": 1}
