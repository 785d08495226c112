"""Fuzzing mpac-pgw's API with staff tokens, a device token, a payment token and as a service.

One tenant with an enrolled terminal pgw knows serves every run; real payments (captured,
authorized, a QR payment waiting, one already in a settlement batch) give the fuzzer ids that
answer 200 and states that refuse. The payment token runs last but one: ``DELETE
/v1/payment-tokens/current`` (its last operation) revokes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from backend.core.authz import Role
from backend.core.hmac_signing import tenant_headers
from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.fuzz.runner import Credential, HmacRequestsAuth, Target, refreshing, run_fuzz
from tests.support.pgw import (
    PayingTerminal,
    card_payment,
    close_settlement,
    paying_terminal,
    qr_payment,
)
from tests.support.portal import login

USER_TOKEN_MAX_AGE_S = 600.0  # of 15 minutes
DEVICE_TOKEN_MAX_AGE_S = 60.0  # of 90 seconds
PAYMENT_TOKEN_MAX_AGE_S = 240.0  # of 5 minutes
CREDENTIALS = [
    "cashier",
    "store_manager",
    "device",
    "service:smarttab",
    "payment_token",
    "service:portal",
]


@dataclass
class PgwWorld:
    paying: PayingTerminal
    read_ids: dict[str, list[str]]
    write_ids: dict[str, list[str]]
    # Streams of payments that are final end at once; one still waiting would stay open.
    stream_ids: dict[str, list[str]]


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def pgw_world(platform: PlatformThread, test_settings: Settings) -> Iterator[PgwWorld]:
    with (
        httpx.Client(base_url=platform.portal_url, timeout=10) as portal,
        httpx.Client(base_url=platform.pgw_url, timeout=10) as pgw,
    ):
        paying = paying_terminal(test_settings, portal)
        settled = _created(paying.pay(pgw, card_payment(amount=1500)))["id"]
        batch = _created(close_settlement(pgw, paying.headers))["id"]
        captured = _created(paying.pay(pgw, card_payment(amount=2500)))["id"]
        authorized = _created(paying.pay(pgw, card_payment(capture_method="manual")))["id"]
        waiting = _created(paying.pay(pgw, qr_payment()))["id"]
        yield PgwWorld(
            paying,
            read_ids={
                "payment_id": [settled, captured, authorized, waiting],
                "batch_id": [batch],
                "store_id": [paying.tenant.store_a_id],
                "terminal_id": [paying.terminal.terminal_id],
                "merchant_id": [paying.tenant.merchant_id],
            },
            # Directory ids stay out: a sync could switch the tenant's store off for later runs.
            write_ids={"payment_id": [captured, authorized, waiting], "batch_id": [batch]},
            stream_ids={"payment_id": [settled, captured, authorized]},
        )


def _credential(
    name: str, world: PgwWorld, settings: Settings, portal: httpx.Client, pgw: httpx.Client
) -> Credential:
    paying = world.paying
    device = refreshing(
        lambda: paying.terminal.fresh_token(portal), max_age_s=DEVICE_TOKEN_MAX_AGE_S
    )
    if name == "device":
        return Credential(name, device)
    if name == "payment_token":

        def issue() -> str:
            return str(_created(pgw.post("/v1/payment-tokens", json={}, headers=device()))["token"])

        return Credential(name, refreshing(issue, max_age_s=PAYMENT_TOKEN_MAX_AGE_S))
    if name.startswith("service:"):
        caller = name.partition(":")[2]
        scope = tenant_headers(paying.tenant.merchant_id, paying.tenant.store_a_id)
        return Credential(
            name,
            lambda: dict(scope) if caller == "smarttab" else {},
            auth=HmacRequestsAuth(settings, caller),
        )
    email = paying.tenant.user(Role(name)).email
    return Credential(
        name,
        refreshing(
            lambda: str(login(portal, email)["access_token"]), max_age_s=USER_TOKEN_MAX_AGE_S
        ),
    )


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_pgw_api(
    platform: PlatformThread, test_settings: Settings, pgw_world: PgwWorld, credential: str
) -> None:
    with (
        httpx.Client(base_url=platform.portal_url, timeout=10) as portal,
        httpx.Client(base_url=platform.pgw_url, timeout=10) as pgw,
    ):
        run_fuzz(
            Target(
                "pgw",
                platform.pgw_url,
                _credential(credential, pgw_world, test_settings, portal, pgw),
                read_ids=pgw_world.read_ids,
                write_ids=pgw_world.write_ids,
                operation_ids={"GET /v1/payments/{payment_id}/stream": pgw_world.stream_ids},
            )
        )
