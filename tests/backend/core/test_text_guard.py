"""backend.core.text_guard: text PostgreSQL cannot store is a 422, never a 500.

PostgreSQL refuses NUL in text and JSONB, and an unpaired UTF-16 surrogate cannot be encoded
at all. The API fuzzer found requests that carried them into an INSERT or a WHERE and failed
with 500 ``internal_error``; each is repeated here, then the middleware's rules on a bare app.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Form
from pydantic import BaseModel

from backend.core.errors import PROBLEM_CONTENT_TYPE, install_problem_handlers
from backend.core.request_context import RequestContextMiddleware
from backend.core.settings import Settings
from backend.core.text_guard import UnstorableTextMiddleware
from tests.support.pgw import (
    PayingTerminal,
    card_payment,
    paying_terminal,
    provider_api,
    service_client,
)

NUL = "a\u0000b"
LONE_SURROGATE = "a\ud800b"


def _json(value: Any) -> bytes:
    # json.dumps writes NUL and a lone surrogate as \u escapes, as a client would.
    return json.dumps(value).encode()


def _refused(response: httpx.Response, *loc: str | int) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert body["code"] == "validation_failed"
    assert [error["loc"] for error in body["errors"]] == [list(loc)]
    assert body["errors"][0]["type"] == "string_unstorable"
    assert "\u0000" not in response.text  # the input is not echoed


# --- the requests that failed with a 500 ------------------------------------------------------


@pytest.fixture
def paying(test_settings: Settings, portal_client: httpx.Client) -> PayingTerminal:
    return paying_terminal(test_settings, portal_client)


def test_portal_refuses_nul_in_a_query_and_in_a_new_store(
    portal_client: httpx.Client, paying: PayingTerminal
) -> None:
    admin = paying.tenant.admin.headers
    _refused(
        portal_client.get("/v1/audit-events", params={"event_type": NUL}, headers=admin),
        "query",
        "event_type",
    )
    _refused(
        portal_client.post(
            "/v1/stores",
            content=_json({"merchant_id": paying.tenant.merchant_id, "name": NUL}),
            headers={**admin, "content-type": "application/json"},
        ),
        "body",
        "name",
    )


@pytest.mark.parametrize(
    ("field", "value", "loc"),
    [
        ("description", NUL, ("body", "description")),
        ("reference", NUL, ("body", "reference")),
        ("metadata", {"order": NUL}, ("body", "metadata", "order")),
        ("metadata", {"order": LONE_SURROGATE}, ("body", "metadata", "order")),
    ],
)
def test_pgw_refuses_unstorable_text_in_a_payment_before_charging(
    pgw_client: httpx.Client, paying: PayingTerminal, field: str, value: Any, loc: tuple[str, ...]
) -> None:
    response = pgw_client.post(
        "/v1/payments",
        content=_json(card_payment(**{field: value})),
        headers={
            **paying.headers,
            "content-type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
        },
    )
    _refused(response, *loc)
    listed = pgw_client.get("/v1/payments", headers=paying.headers).json()
    assert listed["items"] == []


def test_pgw_directory_refuses_nul_in_a_name(test_settings: Settings) -> None:
    body = {"psp_id": str(uuid.uuid4()), "name": NUL, "status": "active", "source_version": 1}
    with service_client(test_settings, "portal", test_settings.url_of("pgw")) as portal:
        response = portal.put(
            f"/internal/v1/directory/merchants/{uuid.uuid4()}",
            content=_json(body),
            headers={"content-type": "application/json"},
        )
    _refused(response, "body", "name")


def test_provider_refuses_nul_in_an_authorization(test_settings: Settings) -> None:
    body = {
        "reference": f"r{uuid.uuid4().hex}",
        "amount": 100,
        "currency": "JPY",
        "capture": False,
        "entry_mode": "chip",
        "card": {"pan": "4242424242424242", "exp_month": 12, "exp_year": 2030},
        "merchant_id": NUL,
        "store_id": "s",
    }
    with provider_api(test_settings) as provider:
        response = provider.post(
            "/v1/authorizations", content=_json(body), headers={"content-type": "application/json"}
        )
    _refused(response, "body", "merchant_id")


# --- the rules, on a bare app -----------------------------------------------------------------


class _Body(BaseModel):
    name: str
    tags: list[str] = []
    extra: dict[str, Any] = {}


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(UnstorableTextMiddleware)
    app.add_middleware(RequestContextMiddleware)
    install_problem_handlers(app)

    @app.post("/json")
    async def json_route(body: _Body) -> dict[str, Any]:
        return body.model_dump()

    @app.post("/form")
    async def form_route(name: str = Form()) -> dict[str, str]:
        return {"name": name}

    @app.get("/items/{name}")
    async def item(name: str, q: str = "") -> dict[str, str]:
        return {"name": name, "q": q}

    return app


def _call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://bare") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(call())


def _post_json(value: Any) -> httpx.Response:
    return _call(
        "POST", "/json", content=_json(value), headers={"content-type": "application/json"}
    )


def test_nul_or_a_lone_surrogate_anywhere_in_a_json_body_is_located() -> None:
    _refused(_post_json({"name": NUL}), "body", "name")
    _refused(_post_json({"name": "x", "tags": ["ok", LONE_SURROGATE]}), "body", "tags", 1)
    _refused(_post_json({"name": "x", "extra": {"a": [{"b": NUL}]}}), "body", "extra", "a", 0, "b")
    _refused(_post_json({"name": "x", "extra": {NUL: 1}}), "body", "extra")


def test_text_that_only_looks_like_an_escape_passes() -> None:
    for name in ["\\u0000", "\\ud800", "\U0001f35c ramen", "tab\tand newline\n"]:
        response = _post_json({"name": name})
        assert response.status_code == 200, response.text
        assert response.json()["name"] == name


def test_nul_in_a_form_a_query_or_a_path_is_refused() -> None:
    """A path with a NUL names nothing (404, as pgw's static files answer traversals too)."""
    _refused(_call("POST", "/form", data={"name": NUL}), "body", "name")
    _refused(_call("GET", "/items/x", params={"q": NUL}), "query", "q")
    no_such_path = _call("GET", "/items/a%00b")
    assert no_such_path.status_code == 404
    assert no_such_path.json()["code"] == "route_not_found"
    assert _call("GET", "/items/x", params={"q": "100%"}).json() == {"name": "x", "q": "100%"}


def test_bodies_that_are_not_json_still_reach_the_app_unchanged() -> None:
    response = _call(
        "POST", "/json", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert response.json()["code"] == "malformed_json"
