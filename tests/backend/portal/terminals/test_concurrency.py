"""Racing requests: uniqueness holds, and a loser gets a clean problem, not a server error."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from backend.core.settings import Settings
from tests.backend.portal.devices.db import fetch
from tests.support.portal import Tenant, unique

RACERS = 8


def test_concurrent_registrations_of_one_serial_create_one_terminal(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    serial = unique("SN").upper()
    start = threading.Barrier(RACERS)

    def register(_: int) -> tuple[int, str]:
        with httpx.Client(base_url=portal_client.base_url, timeout=10) as client:
            start.wait()
            response = client.post(
                "/v1/terminals",
                headers=tenant.admin.headers,
                json={"store_id": tenant.store_a_id, "serial": serial, "name": "Till"},
            )
        return response.status_code, response.json().get("code", "")

    with ThreadPoolExecutor(RACERS) as pool:
        outcomes = Counter(pool.map(register, range(RACERS)))

    assert outcomes == Counter({(201, ""): 1, (409, "serial_taken"): RACERS - 1})
    rows = fetch(test_settings, "SELECT id FROM portal.terminals WHERE serial = :s", s=serial)
    assert len(rows) == 1
