"""Another tenant's credentials never reach a tenant's pgw resources, whichever route they try.

The routes are enumerated from pgw's OpenAPI document: a route added later with an id in its
path (or a body or query naming one) fails the coverage tests until it has its entry here, and
is then called with every attacker's credentials by the isolation tests.

What is asserted for each call with another tenant's id: a problem+json 404 with the resource's
``*_not_found`` code, or the 401/403 the credential gets on that route whatever the id (a kind of
caller the route does not serve), or 422 ``store_mismatch`` for a store-level caller naming any
store but its own; and in every case exactly the answer a random, nonexistent id gets, so the
answer tells nothing about whether the id exists. Afterwards the victim's resources are as they
were.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from backend.core.settings import Settings
from backend.pgw.app import create_app
from tests.support.pgw import (
    PayingTerminal,
    card_payment,
    close_settlement,
    qr_payment,
    service_client,
)

# Path parameters naming a tenant-owned resource, and that resource's not-found code.
ID_PARAMETERS = {
    "payment_id": "payment_not_found",
    "batch_id": "settlement_not_found",
    # The directory is written by the portal and read by the platform's services (HMAC): no
    # tenant credential passes authentication there, so these never get as far as a lookup.
    "merchant_id": None,
    "store_id": None,
    "terminal_id": None,
}

_SYNC_BODY = {"psp_id": str(uuid.uuid4()), "status": "closed", "source_version": 2**62}

# Every route with an id in its path, and the body an attacker sends (None: no body). Each body
# asks for as much as the route allows, so a leak would show in the victim's resources.
PATH_ID_ROUTES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("GET", "/v1/payments/{payment_id}"): None,
    ("GET", "/v1/payments/{payment_id}/events"): None,
    ("GET", "/v1/payments/{payment_id}/refunds"): None,
    ("POST", "/v1/payments/{payment_id}/refunds"): {"amount": 1},
    ("POST", "/v1/payments/{payment_id}/capture"): {},
    ("POST", "/v1/payments/{payment_id}/void"): None,
    ("GET", "/v1/payments/{payment_id}/qr.svg"): None,
    ("GET", "/v1/payments/{payment_id}/stream"): None,
    ("GET", "/v1/settlements/{batch_id}"): None,
    ("GET", "/v1/settlements/{batch_id}.csv"): None,
    ("PUT", "/internal/v1/directory/merchants/{merchant_id}"): {**_SYNC_BODY, "name": "hijack"},
    ("PUT", "/internal/v1/directory/stores/{store_id}"): {
        **_SYNC_BODY,
        "merchant_id": str(uuid.uuid4()),
        "name": "hijack",
        "timezone": "UTC",
    },
    ("GET", "/internal/v1/directory/stores/{store_id}"): None,
    ("PUT", "/internal/v1/directory/terminals/{terminal_id}"): {
        **_SYNC_BODY,
        "merchant_id": str(uuid.uuid4()),
        "store_id": str(uuid.uuid4()),
        "serial": "HIJACK",
    },
    ("GET", "/internal/v1/directory/terminals/{terminal_id}"): None,
}

# Request bodies with an *_id that is looked up in the caller's scope: (body, expected code of
# a 404) per route; the answer must also equal the one for a random id.
Ids = dict[str, str]
BODY_ID_CASES: dict[tuple[str, str], list[Callable[[Ids], dict[str, Any]]]] = {
    ("POST", "/v1/payments"): [lambda ids: card_payment(store_id=ids["store_id"])],
    ("POST", "/v1/payment-tokens"): [
        lambda ids: {"payment_id": ids["payment_id"]},
        lambda ids: {"store_id": ids["store_id"]},
    ],
    ("POST", "/v1/settlements/close"): [
        lambda ids: {"store_id": ids["store_id"]},
        lambda ids: {"terminal_id": ids["terminal_id"]},
        lambda ids: {"scope": "store", "store_id": ids["store_id"]},
    ],
}
BODY_IDS = {
    "payment_id": "payment_not_found",
    "store_id": "store_not_found",
    "terminal_id": "terminal_not_found",
}
# Body fields named *_id that are no lookup: the cashier is a label the terminal sends along;
# the directory's ids are the portal's word (service-only routes, above).
BODY_IDS_WITHOUT_LOOKUP = {"cashier_id"}
# Query filters naming ids: another tenant's id filters down to nothing, never to its rows.
LIST_ROUTES = {"/v1/payments", "/v1/settlements"}

ATTACKERS = ["cashier", "store_manager", "merchant_admin", "terminal", "payment_token"]


@pytest.fixture(scope="module")
def openapi(test_settings: Settings) -> dict[str, Any]:
    return dict(create_app(test_settings).openapi())


def _params(path: str) -> list[str]:
    return re.findall(r"{(\w+)}", path)


def _path_id_routes(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (method.upper(), path)
        for path, item in openapi["paths"].items()
        for method in item
        if any(name.endswith("_id") for name in _params(path))
    )


def _schema(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return dict(openapi["components"]["schemas"][ref.rsplit("/", 1)[-1]]) if ref else schema


def _body_id_routes(openapi: dict[str, Any]) -> set[tuple[str, str]]:
    routes = set()
    for path, item in openapi["paths"].items():
        if path.startswith("/internal/"):
            continue
        for method, operation in item.items():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                names = _schema(openapi, media.get("schema", {})).get("properties", {})
                if {name for name in names if name.endswith("_id")} - BODY_IDS_WITHOUT_LOOKUP:
                    routes.add((method.upper(), path))
    return routes


def _query_id_routes(openapi: dict[str, Any]) -> set[str]:
    return {
        path
        for path, item in openapi["paths"].items()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and parameter["name"].endswith("_id")
    }


def test_every_route_with_an_id_in_its_path_is_in_the_table(openapi: dict[str, Any]) -> None:
    routes = _path_id_routes(openapi)
    assert routes, "no route with an id parameter: is the OpenAPI document empty?"
    missing = [route for route in routes if route not in PATH_ID_ROUTES]
    assert not missing, f"new routes with ids: add them to PATH_ID_ROUTES: {missing}"
    stale = set(PATH_ID_ROUTES) - set(routes)
    assert not stale, f"PATH_ID_ROUTES lists routes that no longer exist: {stale}"
    unknown = {
        name
        for _, path in routes
        for name in _params(path)
        if name.endswith("_id") and name not in ID_PARAMETERS
    }
    assert not unknown, f"new id parameters: add them to ID_PARAMETERS: {unknown}"


def test_every_body_or_query_naming_an_id_has_cases(openapi: dict[str, Any]) -> None:
    assert _body_id_routes(openapi) == set(BODY_ID_CASES), (
        "routes whose body carries an *_id changed: update BODY_ID_CASES"
    )
    assert _query_id_routes(openapi) == LIST_ROUTES, (
        "routes filtering by an *_id changed: update LIST_ROUTES"
    )


# --- the victim and the attackers --------------------------------------------------------------


@pytest.fixture
def victim(
    paying: PayingTerminal, pgw_client: httpx.Client, test_settings: Settings
) -> dict[str, str]:
    """Ids of tenant A's resources: a settlement batch, then a QR payment still waiting."""
    batch = close_settlement(pgw_client, paying.headers)
    assert batch.status_code == 201, batch.text
    payment = paying.pay(pgw_client, qr_payment())
    assert payment.status_code == 201, payment.text
    assert payment.json()["status"] == "requires_action"
    tenant = paying.tenant
    return {
        "payment_id": payment.json()["id"],
        "batch_id": batch.json()["id"],
        "merchant_id": tenant.merchant_id,
        "store_id": tenant.store_a_id,
        "terminal_id": paying.terminal.terminal_id,
    }


def _random_ids() -> Ids:
    return {name: str(uuid.uuid4()) for name in ID_PARAMETERS}


def _attacker_headers(kind: str, intruder: PayingTerminal, pgw: httpx.Client) -> dict[str, str]:
    if kind == "terminal":
        return intruder.headers
    if kind == "payment_token":
        issued = pgw.post("/v1/payment-tokens", json={}, headers=intruder.headers)
        assert issued.status_code == 201, issued.text
        return {"authorization": f"Bearer {issued.json()['token']}"}
    return intruder.tenant.user(kind).headers


def _send(
    pgw: httpx.Client, headers: dict[str, str], method: str, path: str, body: Any
) -> httpx.Response:
    # A fresh Idempotency-Key per call: the random-id control must not replay the real call.
    headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    if path.endswith("/stream"):
        # Server-sent events: only the status line and headers matter here.
        with pgw.stream(method, path, headers=headers) as response:
            if response.status_code >= 400:
                response.read()
            return response
    return pgw.request(method, path, headers=headers, json=body)


def _answer(response: httpx.Response) -> tuple[int, str | None]:
    code = None
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        code = response.json().get("code")
    return response.status_code, code


def _check(
    what: str,
    foreign: httpx.Response,
    missing: httpx.Response,
    not_found_code: str | None,
) -> str | None:
    """Why ``foreign`` (another tenant's id) is wrong, or None."""
    status, code = _answer(foreign)
    if code is None:
        return f"{what}: {status} is not problem+json: {foreign.text[:200]}"
    if (status, code) != _answer(missing):
        return f"{what}: {status} {code}, but a random id gets {_answer(missing)}: an oracle"
    if status == 404 and not_found_code is not None and code == not_found_code:
        return None
    if status in (401, 403) or (status, code) == (422, "store_mismatch"):
        return None
    return f"{what}: expected 404 {not_found_code} (or this caller's 401/403), got {status} {code}"


def _fill(template: str, ids: Ids) -> str:
    return re.sub(r"{(\w+)}", lambda match: ids[match.group(1)], template)


def _snapshot(
    pgw: httpx.Client, paying: PayingTerminal, ids: Ids, test_settings: Settings
) -> dict[str, Any]:
    """Everything of the victim the routes could touch, as its own terminal and pgw see it."""
    snapshot = {}
    for path in (
        f"/v1/payments/{ids['payment_id']}",
        f"/v1/payments/{ids['payment_id']}/events",
        f"/v1/payments/{ids['payment_id']}/refunds",
        f"/v1/settlements/{ids['batch_id']}",
        "/v1/payments?limit=200",
        "/v1/settlements?limit=200",
    ):
        response = pgw.get(path, headers=paying.headers)
        assert response.status_code == 200, f"{path}: {response.text}"
        snapshot[path] = response.json()
    with service_client(test_settings, "smarttab", str(pgw.base_url)) as platform:
        for path in (
            f"/internal/v1/directory/stores/{ids['store_id']}",
            f"/internal/v1/directory/terminals/{ids['terminal_id']}",
        ):
            response = platform.get(path)
            assert response.status_code == 200, f"{path}: {response.text}"
            snapshot[path] = response.json()
    return snapshot


@pytest.mark.parametrize("attacker", ATTACKERS)
def test_another_tenants_ids_are_not_found_on_every_route_and_nothing_changes(
    openapi: dict[str, Any],
    pgw_client: httpx.Client,
    test_settings: Settings,
    paying: PayingTerminal,
    other_paying: PayingTerminal,
    victim: Ids,
    attacker: str,
) -> None:
    headers = _attacker_headers(attacker, other_paying, pgw_client)
    before = _snapshot(pgw_client, paying, victim, test_settings)

    failures = []
    for method, template in _path_id_routes(openapi):
        body = PATH_ID_ROUTES[(method, template)]
        path = _fill(template, victim)
        foreign = _send(pgw_client, headers, method, path, body)
        missing = _send(pgw_client, headers, method, _fill(template, _random_ids()), body)
        # The resource named last in the path is the one looked up.
        code = ID_PARAMETERS[_params(template)[-1]]
        failures.append(_check(f"{method} {path}", foreign, missing, code))
    for (method, path), cases in BODY_ID_CASES.items():
        for case in cases:
            body = case(victim)
            foreign = _send(pgw_client, headers, method, path, body)
            missing = _send(pgw_client, headers, method, path, case(_random_ids()))
            named = next(name for name in body if name.endswith("_id"))
            failures.append(_check(f"{method} {path} {body}", foreign, missing, BODY_IDS[named]))
    problems = [failure for failure in failures if failure]
    assert not problems, "\n".join(problems)

    assert _snapshot(pgw_client, paying, victim, test_settings) == before


@pytest.mark.parametrize("attacker", ["cashier", "store_manager", "merchant_admin", "terminal"])
def test_lists_filtered_by_another_tenants_ids_are_empty(
    pgw_client: httpx.Client,
    paying: PayingTerminal,
    other_paying: PayingTerminal,
    victim: Ids,
    attacker: str,
) -> None:
    headers = _attacker_headers(attacker, other_paying, pgw_client)
    for route in sorted(LIST_ROUTES):
        for query in (
            {"store_id": victim["store_id"]},
            {"terminal_id": victim["terminal_id"]},
            {"store_id": victim["store_id"], "terminal_id": victim["terminal_id"]},
        ):
            response = pgw_client.get(route, params=query, headers=headers)
            what = f"{route}?{query} as {attacker}"
            if response.status_code == 403:
                continue  # this caller may not list at all
            assert response.status_code == 200, f"{what}: {response.text}"
            items = response.json()["items"]
            leaked = [item for item in items if item.get("merchant_id") == victim["merchant_id"]]
            assert not leaked, f"{what} leaked {leaked}"
            assert {item["id"] for item in items}.isdisjoint(
                {victim["payment_id"], victim["batch_id"]}
            ), what
