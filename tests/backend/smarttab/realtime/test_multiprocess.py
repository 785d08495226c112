"""Two smarttab OS processes (``mpac serve --service smarttab``) on one PostgreSQL and Redis:
an event written through one reaches the devices connected to the other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from backend.core.settings import Settings
from tests.backend.smarttab.realtime.conftest import StoreDevices
from tests.support.pgw import service_client
from tests.support.realtime import (
    DeviceStream,
    ServiceProcess,
    open_stream,
    post_notice,
    settings_env,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_a_device_on_process_a_receives_an_event_posted_through_process_b(
    smarttab_processes: tuple[ServiceProcess, ServiceProcess],
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    a, b = smarttab_processes
    assert a.process.pid != b.process.pid
    a2_token = devices.a2.fresh_token(portal_client)
    with (
        open_stream(a.url, devices.a1.fresh_token(portal_client)) as on_a,
        open_stream(b.url, a2_token) as on_b,
        open_stream(a.url, devices.b1.fresh_token(portal_client)) as other_store_on_a,
    ):
        posted = post_notice(b.url, a2_token, "kitchen: order 12 ready")
        for client in (on_a, on_b):
            (event,) = client.events(1)
            assert event["seq"] == posted["seq"]
            assert event["data"]["text"] == "kitchen: order 12 ready"
        assert other_store_on_a.quiet_for(0.5) == []


def test_reconnecting_to_the_other_process_replays_exactly_what_was_missed(
    smarttab_processes: tuple[ServiceProcess, ServiceProcess],
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    a, b = smarttab_processes
    writer = devices.a2.fresh_token(portal_client)
    device = DeviceStream(devices.a1, portal_client)
    device.connect(a.url)
    first = post_notice(a.url, writer, "one")["seq"]
    assert [event["seq"] for event in device.events(1)] == [first]
    device.disconnect()

    missed = [post_notice(b.url, writer, f"missed {n}")["seq"] for n in range(3)]
    client = device.connect(b.url)
    assert [m["seq"] for m in client.received if m["type"] == "event"] == missed
    live = [post_notice(a.url, writer, "live")["seq"], post_notice(b.url, writer, "live")["seq"]]
    assert [event["seq"] for event in device.events(2)] == live
    assert client.quiet_for(0.3) == []
    assert [first, *missed, *live] == list(range(first, first + 6))
    device.disconnect()


def test_each_process_counts_its_own_sockets(
    smarttab_processes: tuple[ServiceProcess, ServiceProcess],
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    a, b = smarttab_processes
    store = devices.tenant.store_a_id

    def stats(process: ServiceProcess) -> dict[str, object]:
        with service_client(test_settings, "smarttab", process.url) as client:
            response = client.get("/internal/v1/stream/stats")
            assert response.status_code == 200, response.text
            return dict(response.json())

    with (
        open_stream(a.url, devices.a1.fresh_token(portal_client)),
        open_stream(a.url, devices.a2.fresh_token(portal_client)),
        open_stream(b.url, devices.a1.fresh_token(portal_client)),
    ):
        on_a, on_b = stats(a), stats(b)
        assert on_a["pid"] == a.process.pid
        assert on_a["connections_per_store"] == {store: 2}  # type: ignore[comparison-overlap]
        assert on_b["connections_per_store"] == {store: 1}  # type: ignore[comparison-overlap]
    wait_for(lambda: stats(a)["connections"] == 0, what="process A to forget its sockets")
    # Unsigned, or signed by another service: refused.
    assert httpx.get(a.url + "/internal/v1/stream/stats").status_code == 401
    with service_client(test_settings, "pgw", a.url) as pgw:
        refused = pgw.get("/internal/v1/stream/stats")
        assert refused.status_code == 403
        assert refused.json()["code"] == "hmac_caller_not_allowed"


def test_mpac_serve_refuses_to_start_without_database_and_redis_urls(
    test_settings: Settings, tmp_path: Path
) -> None:
    env = {k: v for k, v in settings_env(test_settings).items() if k != "MPAC_REDIS_URL"}
    env["MPAC_STATE_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli", "serve", "--service", "smarttab"],
        env={**env, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "set MPAC_REDIS_URL" in result.stderr
    # Nothing was embedded or generated in the state dir.
    assert list(tmp_path.iterdir()) == []
