"""Live events reach every device of their store, and only of their store."""

from __future__ import annotations

import re

import httpx

from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.backend.smarttab.realtime.conftest import StoreDevices
from tests.support.portal import Tenant, enroll_terminal
from tests.support.realtime import open_stream, post_notice, record_events, store_scope


def test_a_notice_reaches_every_device_of_the_store_and_no_other(
    platform: PlatformThread,
    portal_client: httpx.Client,
    devices: StoreDevices,
    other_tenant: Tenant,
) -> None:
    url = platform.smarttab_url
    foreign = enroll_terminal(portal_client, other_tenant.admin, other_tenant.store_a_id)
    a1_token = devices.a1.fresh_token(portal_client)
    with (
        open_stream(url, a1_token) as a1,
        open_stream(url, devices.a2.fresh_token(portal_client)) as a2,
        open_stream(url, devices.b1.fresh_token(portal_client)) as b1,
        open_stream(url, foreign.fresh_token(portal_client)) as other,
    ):
        posted = post_notice(url, a1_token, "table 4 asks for the bill")
        assert posted["event"] == "store.notice"
        for client in (a1, a2):
            (event,) = client.events(1)
            assert event == {
                "type": "event",
                "seq": posted["seq"],
                "store_id": devices.tenant.store_a_id,
                "event": "store.notice",
                "data": {
                    "text": "table 4 asks for the bill",
                    "from": {"kind": "device", "id": devices.a1.terminal_id, "role": "terminal"},
                },
                "at": event["at"],
                # The trace of the request that posted it (docs/observability.md).
                "traceparent": event["traceparent"],
            }
            assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", event["traceparent"])
        # Store B's device and another PSP's device saw nothing at all.
        assert b1.quiet_for(1.0) == []
        assert other.quiet_for(0.1) == []


def test_events_of_store_b_never_reach_store_a_live_or_replayed(
    platform: PlatformThread,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    tenant = devices.tenant
    scope_a = store_scope(tenant.psp_id, tenant.merchant_id, tenant.store_a_id)
    scope_b = store_scope(tenant.psp_id, tenant.merchant_id, tenant.store_b_id)
    url = platform.smarttab_url
    with (
        open_stream(url, devices.a1.fresh_token(portal_client), last_seq=0) as a1,
        open_stream(url, devices.b1.fresh_token(portal_client), last_seq=0) as b1,
    ):
        b_seqs = record_events(test_settings, scope_b, 3)
        a_seqs = record_events(test_settings, scope_a, 2)
        assert [event["seq"] for event in b1.events(3)] == b_seqs
        a_events = a1.events(2)
        assert [event["seq"] for event in a_events] == a_seqs
        assert {event["store_id"] for event in a_events} == {tenant.store_a_id}
        assert a1.quiet_for(0.5) == []
    # A replay from 0 is store A's log only.
    with open_stream(url, devices.a1.fresh_token(portal_client), last_seq=0) as replay:
        replayed = [m for m in replay.received if m["type"] == "event"]
        assert [event["seq"] for event in replayed] == a_seqs
        assert {event["store_id"] for event in replayed} == {tenant.store_a_id}


def test_a_notice_needs_a_store_scoped_writer(
    platform: PlatformThread, smarttab_client: httpx.Client, tenant: Tenant
) -> None:
    merchant_admin = tenant.user("merchant_admin")
    refused = smarttab_client.post(
        "/v1/stream/notices", json={"text": "hello"}, headers=merchant_admin.headers
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "store_scope_required"
    auditor = tenant.user("auditor")
    denied = smarttab_client.post(
        "/v1/stream/notices", json={"text": "hello"}, headers=auditor.headers
    )
    assert denied.status_code == 403
    assert denied.json()["code"] == "permission_denied"
    anonymous = smarttab_client.post("/v1/stream/notices", json={"text": "hello"})
    assert anonymous.status_code == 401
    too_long = smarttab_client.post(
        "/v1/stream/notices", json={"text": "x" * 501}, headers=tenant.user("cashier").headers
    )
    assert too_long.status_code == 422
