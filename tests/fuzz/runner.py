"""The API fuzzer: schemathesis cases from a running service's OpenAPI, sent with one credential.

For every operation of the service's ``/openapi.json`` it draws cases from three schemathesis
strategies (``APIOperation.as_strategy``, driven by Hypothesis ``@given``): valid data, invalid
data (negative mode), and valid data whose path ids are real objects of the caller's tenant (so
``200`` bodies are validated too, not only ``404``s). Each case is sent over HTTP with the
credential's headers (or HMAC signature) and checked:

- ``not_a_server_error``: no 5xx (a 500 is a defect, ``docs/errors.md``);
- ``status_code_conformance``, ``content_type_conformance``, ``response_schema_conformance``,
  ``response_headers_conformance``: the answer is one the OpenAPI documents, body included;
- ``negative_data_rejection``: a case schemathesis made invalid is refused (4xx);
- ``problem_details``: every 4xx/5xx is ``application/problem+json`` with ``status`` and ``code``.

Failures are collected (not raised inside Hypothesis), so one run reports every distinct failure
with a ``curl`` line that reproduces it. The run is deterministic (``derandomize``, or the seed
``MPAC_FUZZ_SEED``) and bounded: ``MPAC_FUZZ_EXAMPLES`` (default :data:`DEFAULT_EXAMPLES`)
examples per operation and strategy kind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.errors import FailureGroup

from backend.core.errors import PROBLEM_CONTENT_TYPE
from backend.core.hmac_signing import (
    KEY_ID_HEADER,
    MERCHANT_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_VERSION,
    STORE_HEADER,
    TIMESTAMP_HEADER,
    canonical_request,
    compute_signature,
    new_nonce,
    parse_s2s_keys,
)
from backend.core.settings import Settings

DEFAULT_EXAMPLES = 4
REQUEST_TIMEOUT_S = 15.0
# MPAC_FUZZ_VERBOSE=1 prints every answer (operation, status, problem code).
VERBOSE = bool(os.environ.get("MPAC_FUZZ_VERBOSE"))
METHOD_ORDER = {"get": 0, "head": 1, "options": 2, "post": 3, "put": 4, "patch": 5, "delete": 6}


def examples_per_operation() -> int:
    """``MPAC_FUZZ_EXAMPLES``: how deep to go (CI keeps the default; raise it locally)."""
    return max(1, int(os.environ.get("MPAC_FUZZ_EXAMPLES", DEFAULT_EXAMPLES)))


def fuzz_seed() -> int | None:
    """``MPAC_FUZZ_SEED``: other cases than the default derandomized ones, reproducibly."""
    value = os.environ.get("MPAC_FUZZ_SEED")
    return int(value) if value else None


# --- checks -----------------------------------------------------------------------------------


def problem_details(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every error answer is RFC 9457 problem details with a stable ``code`` (docs/errors.md)."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM_CONTENT_TYPE, (
        f"{response.status_code} answered as {content_type!r}, not {PROBLEM_CONTENT_TYPE}"
    )
    body = response.json()
    assert isinstance(body, dict), "a problem body is a JSON object"
    assert body.get("status") == response.status_code, "problem 'status' differs from the answer"
    assert isinstance(body.get("code"), str), "problem without a 'code'"
    assert body["code"], "problem with an empty 'code'"


def _checks() -> list[Any]:
    from schemathesis import checks

    return [
        checks.not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_schema_conformance,
        checks.response_headers_conformance,
        problem_details,
        checks.negative_data_rejection,
    ]


# --- credentials ------------------------------------------------------------------------------


class HmacRequestsAuth(requests.auth.AuthBase):
    """Signs a ``requests`` request as a platform service (``docs/s2s-auth.md``).

    The canonical request is built from the bytes ``requests`` sends (path and query as encoded
    on the wire), which is what pgw and smarttab verify.
    """

    def __init__(self, settings: Settings, caller: str) -> None:
        key = parse_s2s_keys(settings.s2s_keys).signing_key(caller)
        self.key_id = f"{key.caller}:{key.kid}"
        self.secret = key.secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(request.url or "")
        body = request.body or b""
        timestamp = str(int(time.time()))
        nonce = new_nonce()
        canonical = canonical_request(
            method=request.method or "GET",
            raw_path=url.path.encode("latin-1"),
            raw_query=url.query,
            timestamp=timestamp,
            nonce=nonce,
            merchant_id=request.headers.get(MERCHANT_HEADER, ""),
            store_id=request.headers.get(STORE_HEADER, ""),
            body=body.encode() if isinstance(body, str) else body,
        )
        signature = compute_signature(self.secret, canonical)
        request.headers[KEY_ID_HEADER] = self.key_id
        request.headers[TIMESTAMP_HEADER] = timestamp
        request.headers[NONCE_HEADER] = nonce
        request.headers[SIGNATURE_HEADER] = f"{SIGNATURE_VERSION}={signature}"
        return request


@dataclass
class Credential:
    """A kind of caller: ``headers()`` is asked before every request (tokens are refreshed)."""

    name: str
    headers: Callable[[], dict[str, str]] = dict
    auth: requests.auth.AuthBase | None = None


def refreshing(issue: Callable[[], str], *, max_age_s: float) -> Callable[[], dict[str, str]]:
    """Bearer headers from ``issue()``, asked again when the token is older than ``max_age_s``."""
    state: dict[str, Any] = {"token": None, "at": 0.0}

    def headers() -> dict[str, str]:
        if state["token"] is None or time.monotonic() - state["at"] > max_age_s:
            state["token"], state["at"] = issue(), time.monotonic()
        return {"authorization": f"Bearer {state['token']}"}

    return headers


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Target:
    """What one fuzz run covers: a service, one credential, the real ids it may use."""

    service: str
    base_url: str
    credential: Credential
    # Path parameter name -> real ids (of the caller's tenant) for GET operations.
    read_ids: dict[str, list[Any]] = field(default_factory=dict)
    # The same for every other method; ids of objects nothing else in the run relies on.
    write_ids: dict[str, list[Any]] = field(default_factory=dict)
    # Operation label ("GET /v1/x/{id}") -> its own pools, instead of the two above.
    operation_ids: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    # Called with each case and the credential's headers before it is sent (e.g. to send
    # smarttab's If-Match of a real tab's current version).
    prepare: Callable[[schemathesis.Case, dict[str, str]], None] | None = None
    # Called after each answer (e.g. put back what a control route changed).
    after: Callable[[schemathesis.Case, schemathesis.Response], None] | None = None


@dataclass
class FuzzResult:
    target: str
    operations: int = 0
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        spread = " ".join(f"{code}:{n}" for code, n in sorted(self.statuses.items()))
        return (
            f"fuzz {self.target}: {self.operations} operations, {self.requests} requests, "
            f"{len(self.failures)} failures in {self.seconds:.1f} s ({spread})"
        )

    def report(self) -> str:
        return "\n\n".join(
            f"=== {label}: {title}\n{message}" for (label, title), message in self.failures.items()
        )


def load_schema(base_url: str) -> Any:
    """The service's own ``/openapi.json``, as served, for schemathesis."""
    response = httpx.get(f"{base_url}/openapi.json", timeout=REQUEST_TIMEOUT_S)
    response.raise_for_status()
    # An explicit, empty config: a developer's schemathesis.toml must not change the CI run.
    return schemathesis.openapi.from_dict(response.json(), config=schemathesis.Config())


def _strategies(operation: Any, target: Target) -> list[Any]:
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    names = [parameter.name for parameter in operation.path_parameters]
    pool = target.operation_ids.get(_label(operation)) or (
        target.read_ids if operation.method.lower() == "get" else target.write_ids
    )
    if names and all(pool.get(name) for name in names):
        real = st.fixed_dictionaries({name: st.sampled_from(pool[name]) for name in names})
        strategies.append(
            real.flatmap(
                lambda ids: operation.as_strategy(GenerationMode.POSITIVE, path_parameters=ids)
            )
        )
    return strategies


def _label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def _ordered(operations: Iterable[Any]) -> list[Any]:
    # Reads first, then writes; DELETEs last (a revoked payment token ends that caller's run).
    return sorted(operations, key=lambda op: (METHOD_ORDER.get(op.method.lower(), 9), op.path))


def fuzz(target: Target, schema: Any | None = None, *, examples: int | None = None) -> FuzzResult:
    schema = schema or load_schema(target.base_url)
    examples = examples or examples_per_operation()
    result = FuzzResult(f"{target.service}[{target.credential.name}]")
    checks = _checks()
    session = requests.Session()
    if target.credential.auth is not None:
        session.auth = target.credential.auth
    started = time.monotonic()
    operations = [op.ok() for op in schema.get_all_operations()]
    for operation in _ordered(operations):
        result.operations += 1
        _fuzz_operation(target, operation, _label(operation), result, session, checks, examples)
    result.seconds = time.monotonic() - started
    session.close()
    return result


def _fuzz_operation(
    target: Target,
    operation: Any,
    label: str,
    result: FuzzResult,
    session: requests.Session,
    checks: list[Any],
    examples: int,
) -> None:
    strategies = _strategies(operation, target)
    chosen_seed = fuzz_seed()

    @settings(
        max_examples=examples * len(strategies),
        derandomize=chosen_seed is None,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(*strategies))
    def send(case: schemathesis.Case) -> None:
        headers = target.credential.headers()
        if target.prepare is not None:
            target.prepare(case, headers)
        try:
            response = case.call(
                base_url=target.base_url,
                session=session,
                headers=headers,
                timeout=REQUEST_TIMEOUT_S,
            )
        except requests.RequestException as exc:
            result.requests += 1
            _record(result, label, f"no answer: {type(exc).__name__}", f"{exc}\n{case!r}")
            return
        result.requests += 1
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        if target.after is not None:
            target.after(case, response)
        if VERBOSE:
            problem = response.headers.get("content-type", [""])[0] == PROBLEM_CONTENT_TYPE
            code = response.json().get("code") if problem else ""
            print(f"  {result.target} {label} -> {response.status_code} {code}")
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                _record(result, label, failure.title, str(group))

    if chosen_seed is not None:
        send = seed(chosen_seed)(send)
    send()


def _record(result: FuzzResult, label: str, title: str, message: str) -> None:
    """Keeps the first example of each distinct (operation, failure)."""
    result.failures.setdefault((label, title), message)


# Every run of this pytest session, for the terminal summary (tests/fuzz/conftest.py).
RESULTS: list[FuzzResult] = []


def run_fuzz(target: Target) -> FuzzResult:
    """Fuzz ``target``, record its counts, fail listing every distinct failure."""
    result = fuzz(target)
    RESULTS.append(result)
    print(result.summary())
    assert not result.failures, f"{result.summary()}\n\n{result.report()}"
    return result
