"""Discovery, like ``adb devices -l``: real handshakes against emulated devices, in parallel,
quick even when a device does not accept the key."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from android_bridge.discovery import (
    EMULATOR_ADB_PORTS,
    DeviceListing,
    forget,
    list_devices,
    probe,
    remember,
    remembered_devices_path,
    remembered_serials,
)
from android_bridge.errors import BridgeError
from android_bridge.keys import HostKeys, load_host_keys
from android_bridge.transport import Timeouts
from terminal_emulator.adb import AdbDeviceServer, AdbKeyStore
from terminal_emulator.terminal import EmulatedTerminal
from tests.android_bridge.conftest import serial_of
from tests.helpers import free_ports
from tests.terminal_emulator.adb.conftest import HostKey, StartDevice

PROBE = Timeouts(transport_s=1.0, read_s=1.0, auth_s=0.5, command_s=2.0)


@pytest.fixture(autouse=True)
def android_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Remembered devices and keys of these tests live in a temporary directory."""
    home = tmp_path / "android-home"
    monkeypatch.setenv("ANDROID_USER_HOME", str(home))
    monkeypatch.delenv("ADB_VENDOR_KEYS", raising=False)
    return home


@pytest.fixture
def our_keys(host_key: HostKey) -> HostKeys:
    return load_host_keys(host_key.path, environ={})


def _only(listings: list[DeviceListing], serials: set[str]) -> dict[str, DeviceListing]:
    return {listing.serial: listing for listing in listings if listing.serial in serials}


def test_an_allowed_terminal_is_a_device_a_stranger_unauthorized_a_dead_port_absent(
    adb_terminal: EmulatedTerminal,
    start_device: StartDevice,
    our_keys: HostKeys,
    stranger_key: HostKey,
) -> None:
    terminal = serial_of(adb_terminal)
    refuses_us = start_device(keystore=AdbKeyStore([stranger_key.public])).serial
    (dead_port,) = free_ports(1)
    dead = f"127.0.0.1:{dead_port}"

    started = time.monotonic()
    listings = list_devices(
        [terminal, refuses_us, dead],
        scan_local_emulator_ports=False,
        include_usb=False,
        keys=our_keys,
        timeouts=PROBE,
    )
    elapsed = time.monotonic() - started

    found = _only(listings, {terminal, refuses_us, dead})
    assert set(found) == {terminal, refuses_us}
    assert found[terminal].state == "device"
    assert (found[terminal].product, found[terminal].model, found[terminal].device) == (
        "mpac_smartpos",
        "MPAC SmartPOS",
        "mpac_smartpos",
    )
    assert "shell_v2" in found[terminal].features
    assert found[refuses_us].state == "unauthorized"
    assert our_keys.fingerprint in (found[refuses_us].detail or "")
    # In parallel, and the unauthorized one costs auth_s, not more.
    assert elapsed < PROBE.auth_s + 1.0
    assert found[terminal].line() == (
        f"{terminal:<22} device product:mpac_smartpos model:MPAC_SmartPOS device:mpac_smartpos"
    )

    # The same terminal, seen from a computer it does not know.
    strangers = load_host_keys(stranger_key.path, environ={})
    (seen_by_stranger,) = list_devices(
        [terminal],
        scan_local_emulator_ports=False,
        include_usb=False,
        keys=strangers,
        timeouts=PROBE,
    )
    assert seen_by_stranger.state == "unauthorized"


def test_something_that_is_not_adb_is_offline(our_keys: HostKeys) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        serial = f"127.0.0.1:{silent.getsockname()[1]}"
        listing = probe(serial, keys=our_keys, timeouts=Timeouts(transport_s=1.0, read_s=0.3))
    assert listing is not None
    assert listing.state == "offline"
    assert listing.detail


def test_remembered_endpoints_are_listed(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, our_keys: HostKeys
) -> None:
    server = start_device(keystore=allowed_keystore)
    remember(server.serial)

    listings = list_devices(
        scan_local_emulator_ports=False, include_usb=False, keys=our_keys, timeouts=PROBE
    )

    assert [(listing.serial, listing.state) for listing in listings] == [(server.serial, "device")]
    assert (
        list_devices(
            scan_local_emulator_ports=False,
            include_usb=False,
            include_remembered=False,
            keys=our_keys,
            timeouts=PROBE,
        )
        == []
    )


def test_local_emulator_ports_are_scanned(
    start_device_at: Callable[..., AdbDeviceServer],
    allowed_keystore: AdbKeyStore,
    our_keys: HostKeys,
) -> None:
    for port in reversed(EMULATOR_ADB_PORTS):
        try:
            server = start_device_at(port, keystore=allowed_keystore)
        except OSError:
            continue  # taken on this machine: try the next one
        break
    else:
        pytest.skip("every local emulator port is taken")

    started = time.monotonic()
    listings = list_devices(include_usb=False, keys=our_keys, timeouts=PROBE)

    assert _only(listings, {server.serial})[server.serial].state == "device"
    assert time.monotonic() - started < 3.0
    assert server.port in EMULATOR_ADB_PORTS


def test_each_device_is_listed_once(
    start_device: StartDevice, allowed_keystore: AdbKeyStore, our_keys: HostKeys
) -> None:
    server = start_device(keystore=allowed_keystore)
    remember(server.serial)
    listings = list_devices(
        [server.serial, f" {server.serial} "],
        scan_local_emulator_ports=False,
        include_usb=False,
        keys=our_keys,
        timeouts=PROBE,
    )
    assert [listing.serial for listing in listings] == [server.serial]


def test_remember_and_forget_keep_a_small_json_file(android_home: Path) -> None:
    path = remembered_devices_path()
    assert path == android_home / "mpac-bridge-devices.json"
    assert remembered_serials() == []

    assert remember("192.168.1.20") == "192.168.1.20:5555"
    assert remember("192.168.1.20:5555") == "192.168.1.20:5555"  # once only
    assert remember("emulator-5556") == "127.0.0.1:5557"
    assert remembered_serials() == ["192.168.1.20:5555", "127.0.0.1:5557"]
    assert json.loads(path.read_text())["devices"] == remembered_serials()

    assert forget("192.168.1.20") is True
    assert forget("192.168.1.20") is False
    assert remembered_serials() == ["127.0.0.1:5557"]
    with pytest.raises(BridgeError):
        remember("host:")


def test_an_unreadable_file_remembers_nothing(android_home: Path) -> None:
    android_home.mkdir(parents=True)
    remembered_devices_path().write_text("{not json")
    assert remembered_serials() == []
    remembered_devices_path().write_text('{"devices": "not a list"}')
    assert remembered_serials() == []
    assert remember("10.0.0.9") == "10.0.0.9:5555"
    assert remembered_serials() == ["10.0.0.9:5555"]


def test_the_listing_line_sanitizes_banner_values_as_adb_does() -> None:
    """``adb devices -l`` replaces what is not ``[A-Za-z0-9._-]`` with ``_`` (adb's
    ``sanitize``), so scripts that split the line on spaces keep working."""
    listing = DeviceListing(
        serial="127.0.0.1:5555",
        state="device",
        product="mpac_smartpos",
        model="MPAC SmartPOS",
        device="mpac:pos/1",
    )
    assert listing.line().split()[2:] == [
        "product:mpac_smartpos",
        "model:MPAC_SmartPOS",
        "device:mpac_pos_1",
    ]
