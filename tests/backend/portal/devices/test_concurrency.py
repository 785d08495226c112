"""Racing devices: one activation code enrolls one key, one assertion buys one token."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx

from backend.core.settings import Settings
from tests.backend.portal.devices.db import terminal_row
from tests.support.portal import DeviceKey, EnrolledTerminal, token_form

if TYPE_CHECKING:
    from tests.backend.portal.devices.conftest import RegisteredTerminal

RACERS = 8


def race(portal: httpx.Client, path: str, requests: list[dict[str, Any]]) -> list[httpx.Response]:
    """Send every request at once, each from its own connection."""
    start = threading.Barrier(len(requests))

    def send(kwargs: dict[str, Any]) -> httpx.Response:
        with httpx.Client(base_url=portal.base_url, timeout=10) as client:
            start.wait()
            return client.post(path, **kwargs)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def outcomes(responses: list[httpx.Response]) -> Counter[tuple[int, str]]:
    return Counter((r.status_code, r.json().get("code", "")) for r in responses)


def test_concurrent_enrollments_with_one_code_enroll_exactly_one_key(
    portal_client: httpx.Client, test_settings: Settings, registered: RegisteredTerminal
) -> None:
    keys = [DeviceKey() for _ in range(RACERS)]
    bodies = [
        {
            "activation_code": registered.activation_code,
            "public_jwk": key.public_jwk(),
            "serial": registered.serial,
        }
        for key in keys
    ]

    responses = race(portal_client, "/v1/devices/enroll", [{"json": body} for body in bodies])

    assert outcomes(responses) == Counter({(200, ""): 1, (400, "activation_code_used"): RACERS - 1})
    (winner,) = [r for r in responses if r.status_code == 200]
    stored = terminal_row(test_settings, registered.terminal_id)["key_thumbprint"]
    assert stored == winner.json()["key_thumbprint"]


def test_concurrent_uses_of_one_assertion_buy_exactly_one_token(
    portal_client: httpx.Client, enrolled: EnrolledTerminal
) -> None:
    form = token_form(enrolled.key.assertion(enrolled.terminal_id, enrolled.token_endpoint))

    responses = race(portal_client, "/oauth2/token", [{"data": form}] * RACERS)

    assert outcomes(responses) == Counter({(200, ""): 1, (401, "assertion_replayed"): RACERS - 1})
