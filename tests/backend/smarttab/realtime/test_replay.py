"""Reconnecting with the last seq: exactly the missed events, then live ones, in order, once."""

from __future__ import annotations

import threading
from typing import Any

import asyncpg
import httpx
import pytest
from redis import Redis

from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.backend.smarttab.realtime.conftest import StoreDevices
from tests.helpers import asyncpg_dsn, run
from tests.support.realtime import (
    DeviceStream,
    StreamClient,
    open_stream,
    record_events,
    store_scope,
    wait_for,
)


def _seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["seq"] for event in events]


def _scope_a(devices: StoreDevices) -> Any:
    tenant = devices.tenant
    return store_scope(tenant.psp_id, tenant.merchant_id, tenant.store_a_id)


def test_reconnecting_with_last_seq_replays_exactly_the_missed_events_then_live_ones(
    platform: PlatformThread,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    scope = _scope_a(devices)
    device = DeviceStream(devices.a1, portal_client)
    device.connect(platform.smarttab_url)
    first = record_events(test_settings, scope, 2)
    assert _seqs(device.events(2)) == first
    device.disconnect()

    missed = record_events(test_settings, scope, 3)
    client = device.connect(platform.smarttab_url)
    replayed = [m for m in client.received if m["type"] == "event"]
    assert _seqs(replayed) == missed
    assert client.received[-1] == {
        "type": "resumed",
        "after_seq": first[-1],
        "replayed": 3,
        "last_seq": missed[-1],
    }
    live = record_events(test_settings, scope, 2)
    assert _seqs(device.events(2)) == live
    assert client.quiet_for(0.3) == []
    assert first + missed + live == list(range(1, 8))
    device.disconnect()


@pytest.mark.parametrize("how", ["auth message", "resume message"])
def test_the_position_may_also_come_in_the_auth_or_a_resume_message(
    platform: PlatformThread,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
    how: str,
) -> None:
    seqs = record_events(test_settings, _scope_a(devices), 4)
    token = devices.a2.fresh_token(portal_client)
    if how == "auth message":
        client = StreamClient.connect(platform.smarttab_url, token, via="message", last_seq=1)
    else:
        client = StreamClient.connect(platform.smarttab_url, token)
        assert client.next("hello")["resume_wait_s"] == 2
        client.send({"type": "resume", "last_seq": 1})
    with client:
        resumed = client.next("resumed")
        assert resumed["replayed"] == 3
        assert _seqs([m for m in client.received if m["type"] == "event"]) == seqs[1:]


def test_without_a_position_the_stream_starts_at_the_hello_head_after_the_resume_window(
    fast_smarttab: str,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    scope = _scope_a(devices)
    before = record_events(test_settings, scope, 2)
    with StreamClient.connect(fast_smarttab, devices.a1.fresh_token(portal_client)) as client:
        hello = client.next("hello")
        assert hello["head_seq"] == before[-1]
        assert hello["resume_wait_s"] == 0.5
        # Published after the hello, before streaming starts: replayed, not lost.
        during = record_events(test_settings, scope, 2)
        resumed = client.next("resumed", timeout=3)
        assert resumed["after_seq"] == hello["head_seq"]
        assert _seqs([m for m in client.received if m["type"] == "event"]) == during
        # Too late now: the stream already started.
        client.send({"type": "resume", "last_seq": 0})
        closed = client.expect_close(answer_pings=True)
        assert closed.code == 4400
        assert closed.reason == "protocol error: resume comes once, before streaming starts"


def test_a_resume_when_last_seq_was_already_given_is_a_protocol_error(
    platform: PlatformThread, portal_client: httpx.Client, devices: StoreDevices
) -> None:
    client = open_stream(platform.smarttab_url, devices.a1.fresh_token(portal_client), last_seq=0)
    client.send({"type": "resume", "last_seq": 0})
    assert client.expect_close().code == 4400


def test_replay_and_live_events_racing_yield_every_event_once_in_order(
    platform: PlatformThread,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    """Events keep coming while devices reconnect: the switch from replay to live neither
    drops nor repeats one."""
    scope = _scope_a(devices)
    record_events(test_settings, scope, 5)
    total = 60
    writer_done = threading.Event()

    def writer() -> None:
        try:
            for _ in range(total // 5):
                record_events(test_settings, scope, 5)
        finally:
            writer_done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # Reconnect several times mid-flow, each time from the last seq seen.
        device = DeviceStream(devices.a1, portal_client, last_seq=2)
        seen: list[int] = []
        for _ in range(4):
            client = device.connect(platform.smarttab_url)
            seen += _seqs([m for m in client.received if m["type"] == "event"])
            seen += _seqs(client.quiet_for(0.15))
            device.disconnect()
        client = device.connect(platform.smarttab_url)
        seen += _seqs([m for m in client.received if m["type"] == "event"])
        writer_done.wait(60)
        final = 5 + total
        while not seen or seen[-1] < final:
            seen += _seqs(client.events(1, timeout=10))
        device.disconnect()
    finally:
        thread.join(60)
    assert seen == list(range(3, final + 1))


def test_an_event_committed_but_never_published_is_filled_in_from_the_log(
    platform: PlatformThread,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    """A writer that died between commit and publish: the next live event shows the gap."""
    scope = _scope_a(devices)
    with open_stream(platform.smarttab_url, devices.a1.fresh_token(portal_client)) as client:
        lost = record_events(test_settings, scope, 2, publish=False)
        assert client.quiet_for(0.5) == []
        published = record_events(test_settings, scope, 1)
        assert _seqs(client.events(3)) == lost + published


def _backdate(settings: Settings, store_id: str, through_seq: int, days: int) -> None:
    async def update() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(settings.database_url))
        try:
            await connection.execute(
                "UPDATE smarttab.store_events SET created_at = now() - make_interval(days => $3)"
                " WHERE store_id = $1::uuid AND seq <= $2",
                store_id,
                through_seq,
                days,
            )
        finally:
            await connection.close()

    run(update())


def test_a_position_older_than_the_retention_requires_a_resync(
    platform: PlatformThread,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    scope = _scope_a(devices)
    record_events(test_settings, scope, 5)
    _backdate(test_settings, devices.tenant.store_a_id, 3, days=2)
    token = devices.a1.fresh_token(portal_client)
    with StreamClient.connect(platform.smarttab_url, token, last_seq=1) as client:
        client.next("hello")
        assert client.next("resync_required") == {
            "type": "resync_required",
            "last_seq": 1,
            "oldest_seq": 4,
            "head_seq": 5,
        }
        assert client.next("resumed") == {
            "type": "resumed",
            "after_seq": 1,
            "replayed": 0,
            "last_seq": 5,
        }
        # The stream goes on from the head.
        record_events(test_settings, scope, 1)
        assert _seqs(client.events(1)) == [6]
    # Within the retention, a replay still works.
    with open_stream(platform.smarttab_url, token, last_seq=3) as client:
        assert _seqs([m for m in client.received if m["type"] == "event"]) == [4, 5, 6]


def test_more_missed_events_than_the_replay_limit_requires_a_resync(
    fast_smarttab: str,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    scope = _scope_a(devices)
    record_events(test_settings, scope, 7)
    token = devices.a1.fresh_token(portal_client)
    # The fast server replays at most 5.
    with open_stream(fast_smarttab, token, last_seq=2) as client:
        assert _seqs([m for m in client.received if m["type"] == "event"]) == [3, 4, 5, 6, 7]
    with StreamClient.connect(fast_smarttab, token, last_seq=1) as client:
        client.next("hello")
        assert client.next("resync_required") == {
            "type": "resync_required",
            "last_seq": 1,
            "oldest_seq": 1,
            "head_seq": 7,
        }
        assert client.next("resumed")["last_seq"] == 7
        record_events(test_settings, scope, 1)
        assert _seqs(client.events(1)) == [8]


def test_a_position_beyond_the_head_requires_a_resync(
    platform: PlatformThread,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    record_events(test_settings, _scope_a(devices), 2)
    token = devices.a1.fresh_token(portal_client)
    with StreamClient.connect(platform.smarttab_url, token, last_seq=50) as client:
        client.next("hello")
        resync = client.next("resync_required")
        assert (resync["last_seq"], resync["head_seq"]) == (50, 2)


def test_events_published_while_redis_dropped_the_subscription_are_caught_up(
    platform: PlatformThread,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    """Pub/sub loses what is published while a subscriber is disconnected; after the hub
    reconnects, every socket re-reads the log."""
    scope = _scope_a(devices)
    with open_stream(platform.smarttab_url, devices.a1.fresh_token(portal_client)) as client:
        redis = Redis.from_url(test_settings.redis_url)
        try:
            # Lost in the outage: committed, and its publish went nowhere.
            lost = record_events(test_settings, scope, 1, publish=False)
            killed = redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            assert killed >= 1
            # No later event arrives to reveal the gap: only the reconnect catch-up can.
            assert _seqs(client.events(1, timeout=10)) == lost

            channel = f"smarttab:store:{devices.tenant.store_a_id}".encode()

            def resubscribed() -> bool:
                return channel in redis.pubsub_channels()

            wait_for(resubscribed, what="the hub to resubscribe")
        finally:
            redis.close()
        live = record_events(test_settings, scope, 1)
        assert _seqs(client.events(1)) == live
        assert client.quiet_for(0.2) == []
