"""Devices: independent instances in one process, on one loop or each on its own thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from terminal_emulator.android import (
    Activity,
    ActivityDeclaration,
    Device,
    DeviceConfig,
    DeviceThread,
    Intent,
    PackageManifest,
    PackageNotFoundError,
)

APP = "jp.mpac.app"


def _manifest(version: int = 1) -> PackageManifest:
    return PackageManifest(
        package=APP,
        version_code=version,
        activities=(ActivityDeclaration(".Main", Activity, exported=True),),
    )


def test_many_devices_share_nothing(make_device: Callable[..., Device]) -> None:
    async def scenario() -> None:
        devices = [make_device(f"EMU-{n}") for n in range(3)]
        for device in devices:
            await device.start()
        devices[0].install(_manifest())
        devices[1].install(_manifest())
        first = devices[0].am.start_activity(Intent(component=f"{APP}/.Main"))
        second = devices[1].am.start_activity(Intent(component=f"{APP}/.Main"))
        assert first.activity is not second.activity
        assert devices[2].pm.list_packages() == []
        devices[0].am.force_stop(APP)
        assert devices[1].am.process_of(APP) is not None
        assert devices[0].properties.get("ro.serialno") == "EMU-0"
        assert devices[1].properties.get("ro.serialno") == "EMU-1"
        assert devices[0].logcat.entries() != devices[2].logcat.entries()
        for device in devices:
            await device.shutdown()

    asyncio.run(scenario())


def test_install_update_uninstall_and_clear(make_device: Callable[..., Device]) -> None:
    async def scenario() -> None:
        async with make_device() as device:
            device.install(_manifest())
            started = device.am.start_activity(Intent(component=f"{APP}/.Main"))
            started.activity.get_shared_preferences("s").put("k", "v")  # type: ignore[union-attr]
            device.install(_manifest(version=2))  # an update stops the running version
            assert device.am.process_of(APP) is None
            assert device.pm.get_package(APP).manifest.version_code == 2
            assert device.app_storage(APP).shared_preferences_path("s").exists()
            device.clear_app_data(APP)
            assert not device.app_storage(APP).data_dir.exists()
            device.uninstall(APP)
            assert device.pm.list_packages() == []
            with pytest.raises(PackageNotFoundError):
                device.clear_app_data(APP)

    asyncio.run(scenario())


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid serial"):
        DeviceConfig(serial="has space", state_dir=tmp_path)


def test_device_thread(tmp_path: Path) -> None:
    def factory(n: int) -> Callable[[], Device]:
        return lambda: Device(DeviceConfig(serial=f"THR-{n}", state_dir=tmp_path / str(n)))

    threads = [DeviceThread(factory(n)) for n in range(2)]
    devices = [thread.start() for thread in threads]
    try:
        assert devices[0].loop is not devices[1].loop
        assert threads[0].device is devices[0]

        async def install_and_start(device: Device) -> str:
            device.install(_manifest())
            started = device.am.start_activity(Intent(component=f"{APP}/.Main"))
            return str(started.launch_state)

        assert threads[0].call(install_and_start(devices[0])) == "COLD"
        assert threads[1].submit(install_and_start(devices[1])).result(5) == "COLD"
    finally:
        for thread in threads:
            thread.stop()
    assert not devices[0].running


def test_device_thread_reports_boot_failure(tmp_path: Path) -> None:
    def broken() -> Device:
        raise RuntimeError("no state dir")

    with pytest.raises(RuntimeError, match="no state dir"):
        DeviceThread(broken).start()
