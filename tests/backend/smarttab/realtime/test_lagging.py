"""A device that stops reading is closed with 4409 once its backlog passes the limit; it
reconnects with its last seq and the log replays what it missed."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from backend.core.settings import Settings
from backend.runtime.embedded import derive_settings
from backend.runtime.server import PlatformThread
from tests.backend.smarttab.realtime.conftest import StoreDevices
from tests.helpers import free_ports
from tests.support.realtime import StreamClient, open_stream, record_events, store_scope


@pytest.fixture(scope="module")
def tight_smarttab(platform: PlatformThread, test_settings: Settings) -> Iterator[str]:
    """A smarttab that lets a socket fall at most 3 events behind."""
    (port,) = free_ports(1)
    settings = derive_settings(test_settings, smarttab_port=port, ws_send_queue_limit=3)
    thread = PlatformThread(settings, services=("smarttab",)).start()
    try:
        yield settings.url_of("smarttab")
    finally:
        thread.stop()


def _slow_socket(base_url: str) -> socket.socket:
    """A TCP connection with a tiny receive buffer, so unread frames back up on the server."""
    parts = urlsplit(base_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    return sock


def test_a_device_that_stops_reading_is_closed_with_4409_and_replays_on_reconnect(
    tight_smarttab: str,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    tenant = devices.tenant
    scope = store_scope(tenant.psp_id, tenant.merchant_id, tenant.store_a_id)
    token = devices.a1.fresh_token(portal_client)
    client = StreamClient.connect(
        tight_smarttab,
        token,
        last_seq=0,
        # Uncompressed, and the client library stops reading after one buffered frame.
        options={"sock": _slow_socket(tight_smarttab), "compression": None, "max_queue": 1},
    )
    with client:
        # The client reads nothing while 12 MB of events are written: more than the socket
        # buffers on both ends hold (the kernel lets a loopback send buffer grow to 4 MB).
        seqs = record_events(test_settings, scope, 300, padding=40_000)
        closed = client.expect_close(timeout=20)
        assert closed.code == 4409
        assert closed.reason == "too far behind: reconnect with last_seq to replay what you missed"
        received = [m["seq"] for m in client.received if m["type"] == "event"]
        # What did arrive arrived in order, and it was not everything.
        assert received == list(range(1, len(received) + 1))
        assert len(received) < len(seqs)
    with open_stream(tight_smarttab, token, last_seq=client.last_seq or 0) as again:
        replayed = [m["seq"] for m in again.received if m["type"] == "event"]
        assert received + replayed == seqs
