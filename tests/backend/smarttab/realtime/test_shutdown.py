"""Stopping a smarttab process closes its sockets with 1012 (service restart): devices
reconnect, to another process, with their last seq."""

from __future__ import annotations

import threading

import httpx

from backend.core.settings import Settings
from backend.runtime.embedded import derive_settings
from backend.runtime.server import PlatformThread
from tests.backend.smarttab.realtime.conftest import StoreDevices
from tests.helpers import free_ports
from tests.support.realtime import open_stream


def test_stopping_the_process_closes_open_streams_with_1012(
    platform: PlatformThread,
    test_settings: Settings,
    portal_client: httpx.Client,
    devices: StoreDevices,
) -> None:
    (port,) = free_ports(1)
    settings = derive_settings(test_settings, smarttab_port=port)
    thread = PlatformThread(settings, services=("smarttab",)).start()
    stopper: threading.Thread | None = None
    try:
        client = open_stream(settings.url_of("smarttab"), devices.a1.fresh_token(portal_client))
        stopper = threading.Thread(target=thread.stop)
        stopper.start()
        closed = client.expect_close(timeout=15)
        assert closed.code == 1012
    finally:
        if stopper is None:
            thread.stop()
        else:
            stopper.join(30)
            assert not stopper.is_alive()
