"""Fixtures: a device running the sample apps with its ADB endpoint, on a background loop."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from terminal_emulator.adb import AdbDeviceServer
from terminal_emulator.android import (
    BroadcastReceiver,
    Context,
    Device,
    DeviceConfig,
    Intent,
    IntentFilter,
    PackageManifest,
    ReceiverDeclaration,
)
from terminal_emulator.shell import start_adb_endpoint
from tests.terminal_emulator.adb.conftest import (  # noqa: F401  (fixtures)
    HostKey,
    LoopThread,
    device_loop,
    host_key,
    stranger_key,
)
from tests.terminal_emulator.sample_apps import FakeGateway, business_manifest, card_manifest

ECHO_PACKAGE = "com.example.echo"
ECHO_RECEIVER = f"{ECHO_PACKAGE}/.Echo"


class EchoReceiver(BroadcastReceiver):
    """Answers a broadcast with its extras as JSON: shows exactly what arrived."""

    def on_receive(self, context: Context, intent: Intent) -> None:
        self.set_result(7, intent.extras.dumps(), None)


def echo_manifest() -> PackageManifest:
    return PackageManifest(
        ECHO_PACKAGE,
        receivers=(
            ReceiverDeclaration(
                ".Echo",
                EchoReceiver,
                intent_filters=(IntentFilter.create(["com.example.ECHO"]),),
                exported=True,
            ),
        ),
    )


@dataclass
class Terminal:
    device: Device
    server: AdbDeviceServer
    gateway: FakeGateway
    loop: LoopThread

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture
def terminal(device_loop: LoopThread, tmp_path: Path, host_key: HostKey) -> Iterator[Terminal]:  # noqa: F811
    """A device with the sample apps (and the echo receiver) and its ADB endpoint on a free
    port; only ``host_key`` is in its ``adb_keys``."""
    adb_keys = tmp_path / "adb_keys"
    adb_keys.write_text(host_key.public.to_line() + "\n")

    async def boot() -> Terminal:
        device = Device(DeviceConfig(serial="SHELL-0001", state_dir=tmp_path / "device"))
        gateway = FakeGateway()
        await device.start()
        device.install(business_manifest())
        device.install(card_manifest(gateway))
        device.install(echo_manifest())
        server = await start_adb_endpoint(device, 0, adb_keys)
        return Terminal(device, server, gateway, device_loop)

    terminal = device_loop.call(boot())
    yield terminal
    device_loop.call(terminal.server.stop())
    device_loop.call(terminal.device.shutdown())
