"""Running shell lines against a device in-process, capturing what the host would see."""

from __future__ import annotations

from dataclasses import dataclass

from terminal_emulator.android import Device
from terminal_emulator.shell import DeviceShell, executor_for
from tests.terminal_emulator.sample_apps import FakeGateway, business_manifest, card_manifest


class Capture:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data

    @property
    def text(self) -> str:
        return self.data.decode()


@dataclass
class Output:
    status: int
    out: str
    err: str


async def sh(shell: DeviceShell, line: str) -> Output:
    stdout, stderr = Capture(), Capture()
    status = await shell.run(line, None, stdout, stderr)
    return Output(status, stdout.text, stderr.text)


async def boot_with_samples(device: Device, gateway: FakeGateway | None = None) -> DeviceShell:
    await device.start()
    device.install(business_manifest())
    device.install(card_manifest(gateway or FakeGateway()))
    return executor_for(device)
