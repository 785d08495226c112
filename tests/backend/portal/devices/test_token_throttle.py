"""POST /oauth2/token slows down failed client assertions, per client and per address.

The limits are lowered here (the portal runs in this process, so the module's knobs are patched
for the duration of a test) and every test sends from its own loopback address, so neither the
session's 127.0.0.1 nor another test's counts get in the way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.backend.portal.auth.support import client_from, problem, random_loopback_address
from tests.backend.portal.devices.db import audit_rows, new_request_id
from tests.support.portal import DeviceKey, EnrolledTerminal, Tenant, enroll_terminal, token_form

TOKEN = "/oauth2/token"
PER_CLIENT = 3
PER_ADDRESS = 6
WINDOW_S = 4


@pytest.fixture(autouse=True)
def tight_limits(monkeypatch: pytest.MonkeyPatch, test_settings: Settings) -> None:
    # The running portal reads its limits from this very object on every token request.
    monkeypatch.setattr(test_settings, "device_token_max_failures_per_client", PER_CLIENT)
    monkeypatch.setattr(test_settings, "device_token_max_failures_per_ip", PER_ADDRESS)
    monkeypatch.setattr(test_settings, "device_token_failure_window_s", WINDOW_S)


@pytest.fixture
def address() -> str:
    return random_loopback_address()


@pytest.fixture
def device(platform: PlatformThread, address: str) -> Iterator[httpx.Client]:
    """A portal client on a loopback address of its own: its failures are its alone."""
    with client_from(platform.portal_url, address) as client:
        yield client


@pytest.fixture
def second_device(platform: PlatformThread) -> Iterator[httpx.Client]:
    with client_from(platform.portal_url, random_loopback_address()) as client:
        yield client


def _post(client: httpx.Client, form: dict[str, str]) -> tuple[httpx.Response, str]:
    request_id = new_request_id()
    return client.post(TOKEN, data=form, headers={"x-request-id": request_id}), request_id


def _good(terminal: EnrolledTerminal) -> dict[str, str]:
    return token_form(terminal.key.assertion(terminal.terminal_id, terminal.token_endpoint))


def _forged(terminal: EnrolledTerminal) -> dict[str, str]:
    """Claims to be the terminal, signed by some other key."""
    return token_form(DeviceKey().assertion(terminal.terminal_id, terminal.token_endpoint))


def _fail(client: httpx.Client, form: dict[str, str], times: int) -> None:
    for _ in range(times):
        response, _ = _post(client, form)
        assert response.status_code == 401, response.text


def _assert_throttled(response: httpx.Response) -> dict[str, Any]:
    body = problem(response, 429, "too_many_attempts")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW_S
    assert body["retry_after_s"] == retry_after
    assert "access_token" not in response.text
    return body


def test_failed_assertions_of_one_client_trip_its_limit_even_for_a_good_assertion(
    device: httpx.Client, enrolled: EnrolledTerminal
) -> None:
    _fail(device, _forged(enrolled), PER_CLIENT)

    throttled, _ = _post(device, _good(enrolled))

    _assert_throttled(throttled)


def test_another_client_at_the_same_address_is_unaffected(
    device: httpx.Client, portal_client: httpx.Client, tenant: Tenant, enrolled: EnrolledTerminal
) -> None:
    neighbour = enroll_terminal(portal_client, tenant.admin, tenant.store_a_id)
    _fail(device, _forged(enrolled), PER_CLIENT)
    _assert_throttled(_post(device, _good(enrolled))[0])

    response, _ = _post(device, _good(neighbour))

    assert response.status_code == 200, response.text


def test_the_same_client_from_another_address_is_still_throttled(
    device: httpx.Client, second_device: httpx.Client, enrolled: EnrolledTerminal
) -> None:
    _fail(device, _forged(enrolled), PER_CLIENT)

    _assert_throttled(_post(second_device, _good(enrolled))[0])


def test_failures_from_one_address_trip_its_limit_whatever_client_they_name(
    device: httpx.Client, second_device: httpx.Client, enrolled: EnrolledTerminal
) -> None:
    # Each failure names another (unknown) client: only the address limit can stop a sprayer.
    for _ in range(PER_ADDRESS):
        stranger = str(uuid.uuid4())
        response, _ = _post(device, token_form(DeviceKey().assertion(stranger, "x")))
        problem(response, 401, "assertion_unknown_client")

    _assert_throttled(_post(device, _good(enrolled))[0])
    # The terminal itself did nothing wrong: from its own address it gets its token.
    assert _post(second_device, _good(enrolled))[0].status_code == 200


def test_an_assertion_that_is_not_even_a_jwt_counts_against_the_address(
    device: httpx.Client, enrolled: EnrolledTerminal
) -> None:
    _fail(device, token_form("not-a-jwt"), PER_ADDRESS)

    _assert_throttled(_post(device, _good(enrolled))[0])


def test_a_good_assertion_works_again_once_the_window_is_over(
    device: httpx.Client, enrolled: EnrolledTerminal
) -> None:
    _fail(device, _forged(enrolled), PER_CLIENT)
    throttled, _ = _post(device, _good(enrolled))
    _assert_throttled(throttled)

    time.sleep(int(throttled.headers["retry-after"]) + 0.5)

    response, _ = _post(device, _good(enrolled))
    assert response.status_code == 200, response.text


def test_successful_requests_never_use_up_the_failure_budget(
    device: httpx.Client, enrolled: EnrolledTerminal
) -> None:
    # A terminal refreshing its token many times over (far more than either limit) ...
    for _ in range(PER_ADDRESS + PER_CLIENT):
        response, _ = _post(device, _good(enrolled))
        assert response.status_code == 200, response.text
    # ... still has its whole failure budget: a few bad assertions (a clock that jumped) do
    # not lock it out.
    _fail(device, _forged(enrolled), PER_CLIENT - 1)

    assert _post(device, _good(enrolled))[0].status_code == 200


def test_throttled_requests_do_not_extend_the_window(
    device: httpx.Client, enrolled: EnrolledTerminal
) -> None:
    _fail(device, _forged(enrolled), PER_CLIENT)
    first, _ = _post(device, _good(enrolled))
    for _ in range(3):
        _assert_throttled(_post(device, _forged(enrolled))[0])

    time.sleep(int(first.headers["retry-after"]) + 0.5)

    assert _post(device, _good(enrolled))[0].status_code == 200


def test_the_trip_is_audited_once_in_the_terminals_tenant(
    device: httpx.Client,
    address: str,
    test_settings: Settings,
    tenant: Tenant,
    enrolled: EnrolledTerminal,
) -> None:
    _fail(device, _forged(enrolled), PER_CLIENT)

    first, first_id = _post(device, _good(enrolled))
    again, again_id = _post(device, _good(enrolled))

    _assert_throttled(first)
    _assert_throttled(again)
    [row] = audit_rows(test_settings, request_id=first_id)
    assert (row["event_type"], row["outcome"], row["reason"]) == (
        "device_token.rate_limited",
        "failure",
        "too_many_failures",
    )
    assert row["detail"]["limit"] == "client"
    assert (row["target_type"], row["target_id"]) == ("terminal", enrolled.terminal_id)
    assert str(row["psp_id"]) == tenant.psp_id
    assert str(row["store_id"]) == tenant.store_a_id
    assert row["client_ip"] == address
    # A flood of throttled requests is not a flood of audit rows: one per window.
    assert audit_rows(test_settings, request_id=again_id) == []


def test_an_address_trip_is_audited_without_a_tenant(
    device: httpx.Client, test_settings: Settings, enrolled: EnrolledTerminal
) -> None:
    _fail(device, token_form("not-a-jwt"), PER_ADDRESS)

    throttled, request_id = _post(device, _good(enrolled))

    _assert_throttled(throttled)
    [row] = audit_rows(test_settings, request_id=request_id)
    assert (row["event_type"], row["reason"]) == ("device_token.rate_limited", "too_many_failures")
    assert row["detail"]["limit"] == "address"
    # Whoever is spraying from the address, the terminal named last is no party to it.
    assert row["psp_id"] is None
    assert row["target_id"] is None
