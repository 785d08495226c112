"""Who may open ``/v1/stream``: device tokens and store-level users, in the header or first
message; anything else is closed with 4401 (or 4403) and a reason a person can read."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from backend.core.authz import Role
from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.backend.smarttab.realtime.conftest import StoreDevices
from tests.support.portal import Tenant
from tests.support.realtime import StreamClient, open_stream
from tests.support.tokens import (
    foreign_key,
    forge,
    portal_signing_key,
    tamper_claims,
    unverified_parts,
)


def test_a_device_token_in_the_header_opens_the_stream_of_its_store(
    platform: PlatformThread, portal_client: httpx.Client, devices: StoreDevices
) -> None:
    token = devices.a1.fresh_token(portal_client)
    with StreamClient.connect(platform.smarttab_url, token) as client:
        hello = client.next("hello")
        assert hello["store_id"] == devices.tenant.store_a_id
        assert hello["principal"] == {
            "kind": "device",
            "id": devices.a1.terminal_id,
            "role": "terminal",
            "terminal_id": devices.a1.terminal_id,
        }
        assert hello["head_seq"] >= 0
        assert hello["expires_at"] == unverified_parts(token)[1]["exp"]
        assert hello["heartbeat_interval_s"] == 15
        assert hello["idle_timeout_s"] == 45
        assert hello["resume_wait_s"] == 2
        assert client.resume(None)["last_seq"] == hello["head_seq"]


def test_a_client_without_headers_authenticates_with_its_first_message(
    platform: PlatformThread, portal_client: httpx.Client, devices: StoreDevices
) -> None:
    token = devices.b1.fresh_token(portal_client)
    with StreamClient.connect(platform.smarttab_url, token, via="message", last_seq=0) as client:
        hello = client.next("hello")
        assert hello["store_id"] == devices.tenant.store_b_id
        # last_seq came with the auth message: no resume window, streaming starts at once.
        assert hello["resume_wait_s"] is None
        assert client.next("resumed") == {
            "type": "resumed",
            "after_seq": 0,
            "replayed": 0,
            "last_seq": 0,
        }


@pytest.mark.parametrize("role", [Role.CASHIER, Role.STORE_MANAGER])
def test_store_level_users_may_stream_their_store(
    platform: PlatformThread, tenant: Tenant, role: Role
) -> None:
    user = tenant.user(role)
    with open_stream(platform.smarttab_url, user.access_token) as client:
        assert client.hello is not None
        assert client.hello["store_id"] == tenant.store_a_id
        assert client.hello["principal"]["kind"] == "user"
        assert client.hello["principal"]["role"] == role.value


@pytest.mark.parametrize("role", [Role.PSP_ADMIN, Role.MERCHANT_ADMIN, Role.AUDITOR])
def test_users_above_the_store_level_are_refused_with_4403(
    platform: PlatformThread, tenant: Tenant, role: Role
) -> None:
    client = StreamClient.connect(platform.smarttab_url, tenant.user(role).access_token)
    closed = client.expect_close()
    assert closed.code == 4403
    assert "per store" in closed.reason


def _bad_tokens(settings: Settings, good: str) -> dict[str, tuple[str, str]]:
    """name -> (token, words the close reason must contain)."""
    header, claims = unverified_parts(good)
    portal_key = portal_signing_key(settings)
    now = int(time.time())
    return {
        "garbage": ("not-a-jwt", "malformed"),
        "foreign key": (forge(claims, foreign_key()), "unknown_kid"),
        "tampered claims": (
            tamper_claims(good, store_id=str(uuid.uuid4())),
            "bad_signature",
        ),
        "expired": (
            forge({**claims, "iat": now - 600, "nbf": now - 600, "exp": now - 300}, portal_key),
            "expired",
        ),
        "alg none": (forge(claims, None, alg="none", headers={"kid": header["kid"]}), "algorithm"),
        "wrong audience": (forge({**claims, "aud": "elsewhere"}, portal_key), "wrong_audience"),
        "refresh-like token_use": (
            forge({**claims, "token_use": "refresh"}, portal_key),
            "wrong_token_use",
        ),
    }


@pytest.mark.parametrize("via", ["header", "message"])
def test_forged_expired_or_malformed_tokens_are_closed_with_4401_and_a_reason(
    platform: PlatformThread,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
    via: str,
) -> None:
    good = devices.a1.fresh_token(portal_client)
    for name, (token, words) in _bad_tokens(test_settings, good).items():
        client = StreamClient.connect(platform.smarttab_url, token, via=via)
        closed = client.expect_close()
        assert closed.code == 4401, name
        assert closed.reason.startswith("invalid token"), (name, closed.reason)
        assert words in closed.reason, (name, closed.reason)
        assert not any(message["type"] == "hello" for message in client.received), name


def test_a_header_that_is_not_bearer_is_refused(
    platform: PlatformThread, portal_client: httpx.Client, devices: StoreDevices
) -> None:
    token = devices.a1.fresh_token(portal_client)
    client = StreamClient.connect(
        platform.smarttab_url, headers={"authorization": f"Basic {token}"}
    )
    closed = client.expect_close()
    assert closed == type(closed)(4401, "send 'Authorization: Bearer <token>'")


def test_no_token_at_all_is_closed_after_the_auth_timeout(fast_smarttab: str) -> None:
    client = StreamClient.connect(fast_smarttab)
    started = time.monotonic()
    closed = client.expect_close(timeout=5)
    assert closed.code == 4401
    assert closed.reason == "authentication required: no auth within 0.5 s"
    assert 0.4 < time.monotonic() - started < 3


@pytest.mark.parametrize(
    "first",
    [{"type": "resume", "last_seq": 0}, {"type": "pong"}, {"kind": "auth"}, "not json"],
)
def test_a_first_message_that_is_not_auth_is_refused(
    platform: PlatformThread, first: object
) -> None:
    client = StreamClient.connect(platform.smarttab_url)
    if isinstance(first, str):
        client.send_raw(first)
    else:
        client.send(first)  # type: ignore[arg-type]
    closed = client.expect_close()
    assert closed.code == 4401
    assert closed.reason.startswith("authentication required")


def test_protocol_violations_after_auth_close_with_4400(
    platform: PlatformThread, portal_client: httpx.Client, devices: StoreDevices
) -> None:
    cases: list[tuple[object, str]] = [
        ("{not json", "protocol error: the frame is not valid JSON"),
        ({"type": "subscribe"}, "protocol error: unknown or missing message type"),
        ({"type": "resume", "last_seq": -1}, "protocol error: last_seq"),
        ({"type": "pong", "extra": 1}, "protocol error: extra"),
        ({"type": "auth", "token": "x"}, "protocol error: already authenticated"),
        ([1, 2], "protocol error: a message is a JSON object"),
        (b"\x00binary", "protocol error: send JSON text frames"),
    ]
    for frame, reason in cases:
        client = StreamClient.connect(platform.smarttab_url, devices.a1.fresh_token(portal_client))
        client.next("hello")
        if isinstance(frame, str | bytes):
            client.send_raw(frame)
        else:
            client.send(frame)  # type: ignore[arg-type]
        closed = client.expect_close()
        assert closed.code == 4400, frame
        assert closed.reason.startswith(reason), (frame, closed.reason)


def test_a_bad_last_seq_in_the_url_is_a_protocol_error(
    platform: PlatformThread, portal_client: httpx.Client, devices: StoreDevices
) -> None:
    token = devices.a1.fresh_token(portal_client)
    for value in ("abc", "-1", "1.5", "99999999999999999999"):
        client = StreamClient.connect(platform.smarttab_url, token, query=value)
        closed = client.expect_close()
        assert closed.code == 4400, value
        assert closed.reason == "protocol error: last_seq must be a non-negative integer"
