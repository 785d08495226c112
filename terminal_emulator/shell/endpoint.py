"""``start_adb_endpoint``: a device's adbd, wired to its shell and its ``adb_keys``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terminal_emulator.adb import (
    AdbDeviceServer,
    AdbKeyStore,
    AdbPublicKey,
    DeviceIdentity,
    ShellExecutor,
)
from terminal_emulator.android import Device
from terminal_emulator.shell.executor import device_of, executor_for

_BANNER_UNSAFE = re.compile(r"[;=\x00-\x1f\x7f]")


def identity_of(device: Device) -> DeviceIdentity:
    """The CNXN banner from the device's ``ro.product.name/model/device`` properties."""
    defaults = DeviceIdentity()

    def prop(name: str, fallback: str) -> str:
        value = _BANNER_UNSAFE.sub("_", device.properties.get(name, ""))
        return value or fallback

    return DeviceIdentity(
        product_name=prop("ro.product.name", defaults.product_name),
        product_model=prop("ro.product.model", defaults.product_model),
        product_device=prop("ro.product.device", defaults.product_device),
    )


async def start_adb_endpoint(
    device_or_terminal: Any,
    port: int,
    keystore_path: Path | None,
    identity: DeviceIdentity | None = None,
    *,
    host: str = "127.0.0.1",
    allow_new_keys: bool = False,
    on_unknown_key: Callable[[AdbPublicKey], None] | None = None,
    executor: ShellExecutor | None = None,
) -> AdbDeviceServer:
    """Start the device's ADB endpoint on ``host:port`` (0: a free port) in the running loop.

    ``keystore_path`` is the device's ``adb_keys`` allowlist (created when keys are allowed);
    None turns authentication off (tests only). ``identity`` defaults to the device's
    ``ro.product.*`` properties. Stop it with ``await server.stop()``.
    """
    device = device_of(device_or_terminal)
    keystore = (
        AdbKeyStore.load(keystore_path, allow_new_keys=allow_new_keys)
        if keystore_path is not None
        else None
    )
    server = AdbDeviceServer(
        host,
        port,
        executor=executor or executor_for(device_or_terminal),
        keystore=keystore,
        identity=identity or identity_of(device),
        on_unknown_key=on_unknown_key,
    )
    await server.start()
    return server
