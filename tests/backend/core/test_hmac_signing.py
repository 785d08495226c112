"""backend.core.hmac_signing: the signing client and the verifying dependency, over real HTTP.

A small service app (assembled by ``create_service_app``, so ``app.state.settings`` and
``app.state.redis`` are exactly what a real receiver has) runs on its own port with the session's
real Redis; requests are signed by :class:`HmacAuth` and sent with httpx.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ValidationError

from backend.core.hmac_signing import (
    KEY_ID_HEADER,
    MERCHANT_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    STORE_HEADER,
    TIMESTAMP_HEADER,
    HmacAuth,
    ServiceCaller,
    ServiceCallerDep,
    canonical_query,
    canonical_request,
    compute_signature,
    generate_s2s_key_entry,
    generate_s2s_secret,
    new_nonce,
    parse_s2s_keys,
    require_caller,
    signed_client,
    tenant_headers,
)
from backend.core.service_app import create_service_app
from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.helpers import free_ports

SMARTTAB_NEW = generate_s2s_secret()  # k2, listed first: smarttab signs with it
SMARTTAB_OLD = generate_s2s_secret()  # k1, still accepted during the rotation
PORTAL_SECRET = generate_s2s_secret()
KEYS = f"smarttab:k2:{SMARTTAB_NEW}, smarttab:k1:{SMARTTAB_OLD}, portal:p1:{PORTAL_SECRET}"
MAX_SKEW_S = 300

MERCHANT = uuid.UUID("6f1c2b9e-4d7a-4c1e-9a3b-2f8d5e7c1a04")
STORE = uuid.UUID("0b7e4a52-91c3-4f0d-8e26-5d3a9c1f7b68")


# --- the receiving service ---------------------------------------------------------------------


class PaymentIn(BaseModel):
    amount: int
    currency: str


def _caller_json(service: ServiceCaller) -> dict[str, Any]:
    return {
        "caller": service.caller,
        "kid": service.kid,
        "merchant_id": str(service.merchant_id) if service.merchant_id else None,
        "store_id": str(service.store_id) if service.store_id else None,
    }


def _router() -> APIRouter:
    router = APIRouter()

    @router.api_route("/s2s/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def echo(request: Request, service: ServiceCallerDep) -> dict[str, Any]:
        body = await request.body()  # the dependency read it first; Starlette cached it
        return {
            **_caller_json(service),
            "method": request.method,
            "path": request.url.path,
            "query": sorted(request.query_params.multi_items()),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }

    @router.post("/v1/payments")
    async def create_payment(payment: PaymentIn, service: ServiceCallerDep) -> dict[str, Any]:
        return {**_caller_json(service), "amount": payment.amount, "currency": payment.currency}

    @router.get("/portal-only")
    async def portal_only(
        service: ServiceCaller = Depends(require_caller("portal")),
    ) -> dict[str, Any]:
        return _caller_json(service)

    return router


@pytest.fixture(scope="module")
def receiver_settings(test_settings: Settings) -> Settings:
    (port,) = free_ports(1)
    return test_settings.model_copy(
        update={"pgw_port": port, "s2s_keys": KEYS, "s2s_max_skew_s": MAX_SKEW_S}
    )


@pytest.fixture(scope="module")
def receiver_url(receiver_settings: Settings) -> Iterator[str]:
    app: FastAPI = create_service_app(
        service="pgw", title="s2s test receiver", settings=receiver_settings, routers=[_router()]
    )
    thread = PlatformThread(receiver_settings, services=("pgw",), apps={"pgw": app}).start()
    try:
        yield thread.pgw_url
    finally:
        thread.stop()


@pytest.fixture
def http(receiver_url: str) -> Iterator[httpx.Client]:
    """An unsigning client: tests sign explicitly with an ``HmacAuth`` per request."""
    with httpx.Client(base_url=receiver_url, timeout=10.0) as client:
        yield client


def _auth(
    caller: str = "smarttab", kid: str = "k2", secret: str = SMARTTAB_NEW, **kw: Any
) -> HmacAuth:
    return HmacAuth(caller, kid, secret, **kw)


def _signed(
    client: httpx.Client, method: str, url: str, auth: HmacAuth | None = None, **kw: Any
) -> httpx.Request:
    """A request built and signed once, so a test can send it as is, twice or altered."""
    return (auth or _auth()).sign(client.build_request(method, url, **kw))


def _altered(
    signed: httpx.Request,
    *,
    method: str | None = None,
    url: str | httpx.URL | None = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
) -> httpx.Request:
    """A copy of a signed request with some part changed and its signature headers kept."""
    skip = {"content-length", "host", *(name.lower() for name in drop)}
    kept = httpx.Headers(
        [(name, value) for name, value in signed.headers.multi_items() if name not in skip]
    )
    for name, value in (headers or {}).items():
        kept[name] = value  # case-insensitive: replaces the signed value
    return httpx.Request(
        method or signed.method,
        url or signed.url,
        headers=kept,
        content=signed.content if content is None else content,
    )


def _problem_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json")
    code: str = response.json()["code"]
    return code


def _assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert (response.status_code, _problem_code(response)) == (status, code), response.text


# --- keys and the canonical request (no server) ------------------------------------------------


def test_generated_secret_is_32_random_bytes_in_url_safe_base64() -> None:
    secrets = {generate_s2s_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert len(secret) == 43
        assert set(secret) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
        assert len(base64.urlsafe_b64decode(secret + "=")) == 32


def test_key_ring_keeps_order_per_caller_so_the_first_kid_signs() -> None:
    ring = parse_s2s_keys(KEYS)
    assert [key.kid for key in ring.by_caller["smarttab"]] == ["k2", "k1"]
    assert ring.signing_key("smarttab").kid == "k2"
    assert ring.lookup("smarttab", "k1") is not None
    assert ring.lookup("portal", "k1") is None  # kids belong to their caller
    assert SMARTTAB_NEW not in repr(ring)
    with pytest.raises(LookupError):
        ring.signing_key("pgw")
    entry = generate_s2s_key_entry("portal", "p9")
    assert parse_s2s_keys(entry).signing_key("portal").kid == "p9"


@pytest.mark.parametrize(
    "spec",
    [
        "smarttab:k1",
        f"smarttab:{SMARTTAB_NEW}",
        f"smart tab:k1:{SMARTTAB_NEW}",
        f"smarttab:k1:{SMARTTAB_NEW}:extra",
        f"smarttab:k1:{SMARTTAB_NEW},smarttab:k1:{SMARTTAB_OLD}",
        "smarttab:k1:c2hvcnQ",  # 5 bytes
        "smarttab:k1:not*base64*at*all*not*base64*at*all*xx",
    ],
)
def test_malformed_key_lists_are_refused_at_settings_time(spec: str) -> None:
    with pytest.raises(ValueError, match="s2s"):
        parse_s2s_keys(spec)
    with pytest.raises(ValidationError):
        Settings(s2s_keys=spec)


def test_from_settings_signs_with_the_first_kid_of_its_caller() -> None:
    settings = Settings(s2s_keys=KEYS)
    assert HmacAuth.from_settings(settings, "smarttab").key_id == "smarttab:k2"
    assert HmacAuth.from_settings(settings, "portal").key_id == "portal:p1"
    with pytest.raises(LookupError):
        HmacAuth.from_settings(settings, "pgw")


def test_canonical_query_sorts_encoded_pairs_and_keeps_exact_bytes() -> None:
    assert canonical_query(b"b=2&a=x%20y&a=1&z") == "a=1&a=x%20y&b=2&z="
    # "+" is a space (as Starlette reads it), %2B a plus; the encoding of either is normalized.
    assert canonical_query(b"q=a+b%2Bc") == canonical_query(b"q=a%20b%2bc") == "q=a%20b%2Bc"
    assert canonical_query(b"n=%C3%A9") == "n=%C3%A9"
    # Invalid UTF-8 is not collapsed into U+FFFD: different bytes, different canonical forms.
    assert canonical_query(b"n=%FF") != canonical_query(b"n=%FE")
    assert canonical_query(b"") == ""


def test_documented_example_vector() -> None:
    """The worked example of docs/s2s-auth.md, byte for byte."""
    secret = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()
    assert secret == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    auth = HmacAuth(
        "smarttab",
        "k2",
        secret,
        clock=lambda: 1700000000.7,
        nonce_factory=lambda: "q8Jx0eYp3T1m9Zb2Lw5VdA",
    )
    request = httpx.Request(
        "POST",
        "http://pgw.internal:8030/v1/payments/caf%C3%A9?b=2&a=x%20y&a=1&z",
        headers={MERCHANT_HEADER: str(MERCHANT), "content-type": "application/json"},
        content=b'{"amount":1000,"currency":"JPY"}',
    )
    auth.sign(request)
    canonical = canonical_request(
        method="POST",
        raw_path=b"/v1/payments/caf%C3%A9",
        raw_query=b"b=2&a=x%20y&a=1&z",
        timestamp="1700000000",
        nonce="q8Jx0eYp3T1m9Zb2Lw5VdA",
        merchant_id=str(MERCHANT),
        store_id="",
        body=b'{"amount":1000,"currency":"JPY"}',
    )
    assert canonical == (
        b"MPAC-HMAC-SHA256-V1\n"
        b"POST\n"
        b"/v1/payments/caf%C3%A9\n"
        b"a=1&a=x%20y&b=2&z=\n"
        b"1700000000\n"
        b"q8Jx0eYp3T1m9Zb2Lw5VdA\n"
        b"6f1c2b9e-4d7a-4c1e-9a3b-2f8d5e7c1a04\n"
        b"\n"
        b"a335e8f5ea13abbef4ce7d128069106e2374515c532ea30c317f23afcf38d696"
    )
    expected = "d3c26da1651a1115084d76d4fc5d7296d5bb9c80ce4d94b470ba9a8895ff4f9f"
    assert compute_signature(bytes(range(32)), canonical) == expected
    assert request.headers[KEY_ID_HEADER] == "smarttab:k2"
    assert request.headers[TIMESTAMP_HEADER] == "1700000000"
    assert request.headers[NONCE_HEADER] == "q8Jx0eYp3T1m9Zb2Lw5VdA"
    assert request.headers[SIGNATURE_HEADER] == f"v1={expected}"


def test_each_send_gets_a_fresh_nonce() -> None:
    auth = _auth()
    nonces = {auth.sign(httpx.Request("GET", "http://x/")).headers[NONCE_HEADER] for _ in range(20)}
    assert len(nonces) == 20
    assert all(len(nonce) >= 22 for nonce in nonces)


# --- happy paths --------------------------------------------------------------------------------


def test_get_with_query_parameters(http: httpx.Client) -> None:
    response = http.get("/s2s/items", params=[("b", "2"), ("a", "1"), ("a", "0")], auth=_auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["caller"] == "smarttab"
    assert body["kid"] == "k2"
    assert body["merchant_id"] is None
    assert body["query"] == [["a", "0"], ["a", "1"], ["b", "2"]]


def test_query_parameters_in_another_order_still_verify(http: httpx.Client) -> None:
    signed = _signed(http, "GET", "/s2s/items?b=2&a=1&a=0")
    reordered = _altered(signed, url=str(signed.url).replace("b=2&a=1&a=0", "a=0&b=2&a=1"))
    assert reordered.url.query == b"a=0&b=2&a=1"
    assert http.send(reordered).status_code == 200


def test_post_json_is_still_parsed_by_the_route(http: httpx.Client) -> None:
    response = http.post(
        "/v1/payments",
        json={"amount": 1000, "currency": "JPY"},
        headers=tenant_headers(MERCHANT, STORE),
        auth=_auth(),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "caller": "smarttab",
        "kid": "k2",
        "merchant_id": str(MERCHANT),
        "store_id": str(STORE),
        "amount": 1000,
        "currency": "JPY",
    }


@pytest.mark.parametrize("method", ["POST", "DELETE", "GET"])
def test_empty_body(http: httpx.Client, method: str) -> None:
    response = http.request(method, "/s2s/empty", auth=_auth())
    assert response.status_code == 200, response.text
    assert response.json()["body_sha256"] == hashlib.sha256(b"").hexdigest()


def test_unicode_path_and_query(http: httpx.Client) -> None:
    response = http.put(
        "/s2s/café/支払い/a b",
        params={"名前": "値 ü", "plus": "1+1", "slash": "a/b"},
        content="本文 ✓".encode(),
        auth=_auth(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["path"] == "/s2s/café/支払い/a b"
    assert body["query"] == [["plus", "1+1"], ["slash", "a/b"], ["名前", "値 ü"]]
    assert body["body_sha256"] == hashlib.sha256("本文 ✓".encode()).hexdigest()


def test_async_signed_client(
    receiver_url: str,
    receiver_settings: Settings,
    run_async: Callable[[Coroutine[Any, Any, Any]], Any],
) -> None:
    async def main() -> list[httpx.Response]:
        async with signed_client(receiver_settings, "portal", receiver_url) as client:
            return [
                await client.post("/v1/payments", json={"amount": 5, "currency": "EUR"}),
                await client.get("/portal-only", headers=tenant_headers(merchant_id=MERCHANT)),
            ]

    payment, portal_only = run_async(main())
    assert payment.status_code == 200, payment.text
    assert payment.json()["caller"] == "portal"
    assert portal_only.status_code == 200, portal_only.text
    assert portal_only.json()["merchant_id"] == str(MERCHANT)


def test_require_caller_refuses_other_services(http: httpx.Client) -> None:
    _assert_refused(http.get("/portal-only", auth=_auth()), 403, "hmac_caller_not_allowed")


# --- keys: wrong, unknown, rotated --------------------------------------------------------------


def test_wrong_secret_is_a_bad_signature(http: httpx.Client) -> None:
    response = http.get("/s2s/x", auth=_auth(secret=generate_s2s_secret()))
    _assert_refused(response, 401, "hmac_bad_signature")
    assert response.headers["www-authenticate"] == "MPAC-HMAC-SHA256-V1"


def test_another_callers_secret_is_a_bad_signature(http: httpx.Client) -> None:
    response = http.get("/s2s/x", auth=_auth(caller="smarttab", kid="k2", secret=PORTAL_SECRET))
    _assert_refused(response, 401, "hmac_bad_signature")


@pytest.mark.parametrize(
    ("caller", "kid"), [("smarttab", "k9"), ("acquirer", "k2"), ("portal", "k2")]
)
def test_unknown_key_id(http: httpx.Client, caller: str, kid: str) -> None:
    response = http.get("/s2s/x", auth=_auth(caller=caller, kid=kid))
    _assert_refused(response, 401, "hmac_unknown_key")


def test_rotation_both_listed_kids_verify(http: httpx.Client, receiver_settings: Settings) -> None:
    new_sender = HmacAuth.from_settings(receiver_settings, "smarttab")
    old_sender = _auth(kid="k1", secret=SMARTTAB_OLD)
    assert new_sender.key_id == "smarttab:k2"
    for auth in (new_sender, old_sender):
        response = http.get("/s2s/rotation", auth=auth)
        assert response.status_code == 200, response.text
        assert response.json()["kid"] == auth.kid
    # The old kid with the new secret (or the reverse) is no key at all.
    _assert_refused(
        http.get("/s2s/rotation", auth=_auth(kid="k1", secret=SMARTTAB_NEW)),
        401,
        "hmac_bad_signature",
    )


# --- clock --------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset_s", [-(MAX_SKEW_S + 1), MAX_SKEW_S + 1, -3600, 86400])
def test_clock_skew_either_way_is_refused(http: httpx.Client, offset_s: int) -> None:
    response = http.get("/s2s/x", auth=_auth(clock=lambda: time.time() + offset_s))
    _assert_refused(response, 401, "hmac_clock_skew")
    assert abs(response.json()["server_time"] - time.time()) < 5


@pytest.mark.parametrize("offset_s", [-(MAX_SKEW_S - 10), MAX_SKEW_S - 10])
def test_skew_within_the_window_is_accepted(http: httpx.Client, offset_s: int) -> None:
    response = http.get("/s2s/x", auth=_auth(clock=lambda: time.time() + offset_s))
    assert response.status_code == 200, response.text


# --- replay -------------------------------------------------------------------------------------


def test_replayed_request_is_refused(http: httpx.Client) -> None:
    signed = _signed(http, "POST", "/s2s/pay", json={"amount": 1})
    assert http.send(signed).status_code == 200
    _assert_refused(http.send(_altered(signed)), 401, "hmac_replayed_nonce")


def test_forged_request_does_not_consume_the_nonce(http: httpx.Client) -> None:
    nonce = new_nonce()
    forged = _auth(secret=generate_s2s_secret(), nonce_factory=lambda: nonce)
    genuine = _auth(nonce_factory=lambda: nonce)
    _assert_refused(http.get("/s2s/n", auth=forged), 401, "hmac_bad_signature")
    _assert_refused(
        http.get("/s2s/n", auth=_auth(nonce_factory=lambda: nonce, clock=lambda: 0)),
        401,
        "hmac_clock_skew",
    )
    assert http.get("/s2s/n", auth=genuine).status_code == 200
    _assert_refused(http.get("/s2s/n", auth=genuine), 401, "hmac_replayed_nonce")


def test_nonces_are_per_caller(http: httpx.Client) -> None:
    nonce = new_nonce()
    smarttab = _auth(nonce_factory=lambda: nonce)
    portal = _auth(caller="portal", kid="p1", secret=PORTAL_SECRET, nonce_factory=lambda: nonce)
    assert http.get("/s2s/n", auth=smarttab).status_code == 200
    assert http.get("/s2s/n", auth=portal).status_code == 200


def test_concurrent_copies_of_one_request_succeed_exactly_once(receiver_url: str) -> None:
    with httpx.Client(base_url=receiver_url, timeout=10.0) as builder:
        signed = _signed(builder, "POST", "/v1/payments", json={"amount": 7, "currency": "JPY"})
    copies = 20
    barrier = threading.Barrier(copies)

    def send(_: int) -> httpx.Response:
        with httpx.Client(timeout=10.0) as client:
            request = _altered(signed)
            barrier.wait(timeout=10)
            return client.send(request)

    with ThreadPoolExecutor(max_workers=copies) as pool:
        responses = list(pool.map(send, range(copies)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [401] * (copies - 1)
    refused = [r for r in responses if r.status_code == 401]
    assert {_problem_code(r) for r in refused} == {"hmac_replayed_nonce"}


# --- tampering ----------------------------------------------------------------------------------


def _tampered_cases() -> list[tuple[str, Callable[[httpx.Request], httpx.Request]]]:
    other = str(uuid.uuid4())
    return [
        ("body", lambda r: _altered(r, content=r.content.replace(b"1000", b"9000"))),
        ("body appended", lambda r: _altered(r, content=r.content + b" ")),
        ("method", lambda r: _altered(r, method="PUT")),
        ("path", lambda r: _altered(r, url=r.url.copy_with(path="/s2s/other"))),
        ("path encoding", lambda r: _altered(r, url=str(r.url).replace("/s2s/pay", "/s2s/p%61y"))),
        ("query value", lambda r: _altered(r, url=r.url.copy_merge_params({"ref": "B"}))),
        ("query added", lambda r: _altered(r, url=r.url.copy_add_param("extra", "1"))),
        ("query dropped", lambda r: _altered(r, url=r.url.copy_remove_param("ref"))),
        ("merchant changed", lambda r: _altered(r, headers={MERCHANT_HEADER: other})),
        ("merchant dropped", lambda r: _altered(r, drop=(MERCHANT_HEADER,))),
        ("store added", lambda r: _altered(r, headers={STORE_HEADER: other})),
        (
            "timestamp",
            lambda r: _altered(
                r, headers={TIMESTAMP_HEADER: str(int(r.headers[TIMESTAMP_HEADER]) + 1)}
            ),
        ),
        ("nonce", lambda r: _altered(r, headers={NONCE_HEADER: new_nonce()})),
    ]


@pytest.mark.parametrize(
    "tamper", [case for _, case in _tampered_cases()], ids=[name for name, _ in _tampered_cases()]
)
def test_tampered_request_is_a_bad_signature(
    http: httpx.Client, tamper: Callable[[httpx.Request], httpx.Request]
) -> None:
    signed = _signed(
        http,
        "POST",
        "/s2s/pay",
        params={"ref": "A", "n": "1"},
        json={"amount": 1000},
        headers=tenant_headers(merchant_id=MERCHANT),
    )
    _assert_refused(http.send(tamper(signed)), 401, "hmac_bad_signature")
    # The untouched request was never consumed by the refusals above.
    assert http.send(_altered(signed)).status_code == 200


# --- malformed requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", [KEY_ID_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER]
)
def test_missing_header(http: httpx.Client, header: str) -> None:
    signed = _signed(http, "GET", "/s2s/x")
    _assert_refused(http.send(_altered(signed, drop=(header,))), 401, "hmac_missing_headers")


def test_unsigned_request(http: httpx.Client) -> None:
    _assert_refused(http.get("/s2s/x"), 401, "hmac_missing_headers")


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (TIMESTAMP_HEADER, "1.7e9"),
        (TIMESTAMP_HEADER, "-5"),
        (NONCE_HEADER, "short"),
        (NONCE_HEADER, "has space in it but is long enough"),
        (SIGNATURE_HEADER, "sha256=" + "0" * 64),
        (SIGNATURE_HEADER, "v1=" + "0" * 63),
        (SIGNATURE_HEADER, "v1=" + "A" * 64),
    ],
)
def test_malformed_header(http: httpx.Client, header: str, value: str) -> None:
    signed = _signed(http, "GET", "/s2s/x")
    response = http.send(_altered(signed, headers={header: value}))
    _assert_refused(response, 401, "hmac_malformed_headers")


def test_duplicated_tenant_header_is_refused(http: httpx.Client) -> None:
    signed = _signed(http, "GET", "/s2s/x", headers=tenant_headers(merchant_id=MERCHANT))
    headers = [(k, v) for k, v in signed.headers.multi_items() if k.lower() != "host"]
    headers.append((MERCHANT_HEADER, str(uuid.uuid4())))
    response = http.send(httpx.Request("GET", signed.url, headers=headers))
    _assert_refused(response, 401, "hmac_malformed_headers")


@pytest.mark.parametrize("header", [MERCHANT_HEADER, STORE_HEADER])
def test_malformed_tenant_header_is_a_bad_request(http: httpx.Client, header: str) -> None:
    response = http.get("/s2s/x", headers={header: "not-a-uuid"}, auth=_auth())
    _assert_refused(response, 400, "hmac_bad_tenant_header")
    # The same header unsigned (forged) is an authentication failure, not a tenant error.
    forged = http.get("/s2s/x", headers={header: "not-a-uuid"}, auth=_auth(secret=PORTAL_SECRET))
    _assert_refused(forged, 401, "hmac_bad_signature")
