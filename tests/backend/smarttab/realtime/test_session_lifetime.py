"""Heartbeats, idle timeout, token expiry and reauth, on the fast server (0.3 s pings, 1.5 s
idle timeout, 1 s clock-skew leeway).

A session lives until its token's exp plus the leeway. The portal never issues device tokens
shorter than 60 s, so the short-lived ones here are the portal's own tokens re-signed with the
portal's own active key (read from its database) with a lifetime of a few seconds: the server
verifies them through the portal's JWKS exactly like real ones.
"""

from __future__ import annotations

import time

import httpx

from backend.core.settings import Settings
from tests.backend.smarttab.realtime.conftest import StoreDevices
from tests.support.realtime import StreamClient, open_stream, short_lived_device_token
from tests.support.tokens import foreign_key, forge, unverified_parts


def test_the_server_pings_and_a_client_that_answers_stays_past_the_idle_timeout(
    fast_smarttab: str, portal_client: httpx.Client, devices: StoreDevices
) -> None:
    with open_stream(fast_smarttab, devices.a1.fresh_token(portal_client)) as client:
        started = time.monotonic()
        pings = 0
        while time.monotonic() - started < 3.0:  # twice the idle timeout
            message = client.next("ping", answer_pings=False, timeout=1.0)
            assert isinstance(message["t"], int)
            client.send({"type": "pong", "t": message["t"]})
            pings += 1
        assert pings >= 6
        assert client.closed is None


def test_a_client_that_sends_nothing_is_closed_with_4408(
    fast_smarttab: str, portal_client: httpx.Client, devices: StoreDevices
) -> None:
    with open_stream(fast_smarttab, devices.a1.fresh_token(portal_client)) as client:
        started = time.monotonic()
        closed = client.expect_close(timeout=5, answer_pings=False)
        assert closed.code == 4408
        assert closed.reason == "idle timeout: nothing received for 1.5 s"
        assert 1.0 < time.monotonic() - started < 3.0
        assert any(message["type"] == "ping" for message in client.received)


def test_any_client_message_counts_as_activity_and_a_client_ping_gets_a_pong(
    fast_smarttab: str, portal_client: httpx.Client, devices: StoreDevices
) -> None:
    with open_stream(fast_smarttab, devices.a1.fresh_token(portal_client)) as client:
        started = time.monotonic()
        while time.monotonic() - started < 2.5:
            client.send({"type": "ping", "t": 42})
            pong = client.next("pong", answer_pings=False)
            assert pong["t"] == 42
            time.sleep(0.5)
        assert client.closed is None


def test_a_session_whose_token_expires_without_reauth_is_closed_with_4401(
    fast_smarttab: str,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    token = short_lived_device_token(test_settings, portal_client, devices.a1, ttl_s=2)
    exp = unverified_parts(token)[1]["exp"]
    with open_stream(fast_smarttab, token) as client:
        assert client.hello is not None
        assert client.hello["expires_at"] == exp
        closed = client.expect_close(timeout=8, answer_pings=True)
        # exp plus the fast server's 1 s leeway; whole seconds in the token, so +-1 s.
        assert time.time() >= exp + 1 - 0.05
        assert time.time() < exp + 3
    assert closed.code == 4401
    assert closed.reason == "token expired: send reauth before the token's exp"


def test_reauth_with_a_fresh_token_extends_the_session(
    fast_smarttab: str,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    token = short_lived_device_token(test_settings, portal_client, devices.a1, ttl_s=2)
    exp = unverified_parts(token)[1]["exp"]
    with open_stream(fast_smarttab, token) as client:
        fresh = devices.a1.fresh_token(portal_client)
        client.send({"type": "reauth", "token": fresh})
        renewed = client.next("reauthenticated")
        assert renewed["expires_at"] == unverified_parts(fresh)[1]["exp"]
        # Well past the first token's end, the session is still open.
        while time.time() < exp + 3:
            assert client.quiet_for(0.5) == []
        assert client.closed is None


def test_reauth_for_another_terminal_is_refused_with_4403(
    fast_smarttab: str, portal_client: httpx.Client, devices: StoreDevices
) -> None:
    with open_stream(fast_smarttab, devices.a1.fresh_token(portal_client)) as client:
        # Same store, another terminal: not this session's identity.
        client.send({"type": "reauth", "token": devices.a2.fresh_token(portal_client)})
        closed = client.expect_close(answer_pings=True)
    assert closed.code == 4403
    assert closed.reason == "reauth must carry a token of the same terminal (or user) and store"


def test_reauth_with_a_forged_token_is_refused_with_4401(
    fast_smarttab: str, portal_client: httpx.Client, devices: StoreDevices
) -> None:
    token = devices.a1.fresh_token(portal_client)
    with open_stream(fast_smarttab, token) as client:
        forged = forge(unverified_parts(token)[1], foreign_key())
        client.send({"type": "reauth", "token": forged})
        closed = client.expect_close(answer_pings=True)
    assert closed.code == 4401
    assert closed.reason.startswith("invalid token (unknown_kid)")


def test_an_expired_token_cannot_reauth(
    fast_smarttab: str,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    with open_stream(fast_smarttab, devices.a1.fresh_token(portal_client)) as client:
        stale = short_lived_device_token(test_settings, portal_client, devices.a1, ttl_s=-10)
        client.send({"type": "reauth", "token": stale})
        closed = client.expect_close(answer_pings=True)
    assert closed.code == 4401
    assert closed.reason == "invalid token (expired): the token has expired"


def test_without_a_header_the_connection_times_out_only_the_auth_not_the_socket(
    fast_smarttab: str, portal_client: httpx.Client, devices: StoreDevices
) -> None:
    """The auth message may come any time within the auth timeout."""
    client = StreamClient.connect(fast_smarttab)
    time.sleep(0.2)
    client.send({"type": "auth", "token": devices.a1.fresh_token(portal_client), "last_seq": 0})
    with client:
        assert client.next("hello")["store_id"] == devices.tenant.store_a_id
