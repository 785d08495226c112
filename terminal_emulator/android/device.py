"""One emulated Android device: properties, logcat, packages, activity manager, storage.

A ``Device`` holds no global state, so any number of them live in one Python process, either
sharing one event loop (many headless terminals for load tests) or each on its own loop in
its own thread (:class:`DeviceThread`, for a UI or an ADB endpoint that must not be blocked
by another device).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import itertools
import re
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from terminal_emulator.android.activity_manager import ActivityManager
from terminal_emulator.android.clock import Clock, SystemClock
from terminal_emulator.android.errors import DeviceNotRunningError
from terminal_emulator.android.logcat import Logcat, Priority
from terminal_emulator.android.package_manager import (
    InstalledPackage,
    PackageManager,
    PackageManifest,
)
from terminal_emulator.android.properties import SystemProperties, default_properties
from terminal_emulator.android.storage import AppStorage

T = TypeVar("T")
_SERIAL_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class DeviceConfig:
    """What makes one terminal: its serial, its state directory and its build.

    ``state_dir`` holds everything that survives a restart (app data, ``persist.*``
    properties); two devices must not share one.
    """

    serial: str
    state_dir: Path
    model: str = "MPAC SmartPOS"
    manufacturer: str = "MPAC"
    brand: str = "mpac"
    device: str = "mpac_smartpos"
    android_release: str = "12"
    sdk: int = 31
    timezone: str = "Asia/Tokyo"
    locale: str = "ja-JP"
    extra_properties: Mapping[str, str] = field(default_factory=dict)
    logcat_capacity: int = 5000
    broadcast_timeout_s: float = 60.0
    foreground_broadcast_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not _SERIAL_RE.match(self.serial):
            raise ValueError(f"invalid serial {self.serial!r}: 1-64 of A-Z a-z 0-9 . _ : -")


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


class Device:
    def __init__(self, config: DeviceConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.state_dir = config.state_dir
        self.data_root = config.state_dir / "data" / "data"
        self.properties = SystemProperties(
            config.state_dir / "property" / "persistent_properties.json"
        )
        self.properties.set_defaults(
            default_properties(
                serial=config.serial,
                model=config.model,
                manufacturer=config.manufacturer,
                brand=config.brand,
                device=config.device,
                release=config.android_release,
                sdk=config.sdk,
                timezone=config.timezone,
                locale=config.locale,
                extra=config.extra_properties.items(),
            )
        )
        self.logcat = Logcat(
            clock=self.clock,
            timezone=_zone(self.properties.get("persist.sys.timezone", config.timezone)),
            capacity=config.logcat_capacity,
        )
        self._pids = itertools.count(1000, 7)  # plausible, increasing, never reused
        self.system_pid = next(self._pids)
        self.package_manager = PackageManager()
        self.activity_manager = ActivityManager(
            package_manager=self.package_manager,
            logcat=self.logcat,
            properties=self.properties,
            clock=self.clock,
            data_root=self.data_root,
            allocate_pid=self.allocate_pid,
            system_pid=self.system_pid,
            broadcast_timeout_s=config.broadcast_timeout_s,
            foreground_broadcast_timeout_s=config.foreground_broadcast_timeout_s,
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def serial(self) -> str:
        return self.config.serial

    # Short names, as on the device's shell.
    @property
    def am(self) -> ActivityManager:
        return self.activity_manager

    @property
    def pm(self) -> PackageManager:
        return self.package_manager

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise DeviceNotRunningError(f"device {self.serial} is not running")
        return self._loop

    @property
    def running(self) -> bool:
        return self._loop is not None

    def allocate_pid(self) -> int:
        return next(self._pids)

    async def start(self) -> None:
        """Boot on the running event loop; packages may be installed before or after."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self.activity_manager.attach_loop(self._loop)
        self.properties.set("sys.boot_completed", "1")
        self.logcat.write(
            Priority.INFO,
            "SystemServer",
            f"Boot completed: {self.config.model} serial={self.serial}",
            pid=self.system_pid,
            uid=1000,
            buffer="system",
        )

    async def shutdown(self) -> None:
        """Power off: processes die (their storage stays in ``state_dir``)."""
        if self._loop is None:
            return
        await self.activity_manager.shutdown()
        self.properties.set("sys.boot_completed", "0")
        self._loop = None

    async def __aenter__(self) -> Device:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def install(self, manifest: PackageManifest) -> InstalledPackage:
        """Install (or update: the running old version is stopped first) a package."""
        if self.package_manager.is_installed(manifest.package) and self.running:
            self.activity_manager.force_stop(manifest.package)
        installed = self.package_manager.install(manifest)
        self.logcat.write(
            Priority.INFO,
            "PackageManager",
            f"Installed {manifest.package} versionCode={manifest.version_code} uid={installed.uid}",
            pid=self.system_pid,
            uid=1000,
            buffer="system",
        )
        return installed

    def uninstall(self, package: str, *, keep_data: bool = False) -> None:
        if self.running:
            self.activity_manager.force_stop(package)
        self.package_manager.uninstall(package)
        if not keep_data:
            self.app_storage(package).clear()

    def clear_app_data(self, package: str) -> None:
        """``pm clear``: stop the app and delete everything it stored."""
        self.package_manager.get_package(package)
        if self.running:
            self.activity_manager.force_stop(package)
        self.app_storage(package).clear()

    def app_storage(self, package: str) -> AppStorage:
        return AppStorage(self.data_root, package)

    async def idle(self) -> None:
        await self.activity_manager.idle()

    def __repr__(self) -> str:
        return f"<Device {self.serial} {'running' if self.running else 'off'}>"


class DeviceThread:
    """A device on its own event loop in its own thread; other threads submit coroutines.

    The device's objects belong to that loop: call them only through :meth:`call` /
    :meth:`submit` (or from code already running on it).
    """

    def __init__(self, factory: Callable[[], Device]) -> None:
        self._factory = factory
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._device: Device | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="device", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._device = self._factory()
            self._loop.run_until_complete(self._device.start())
        except BaseException as error:  # reported to start(); the thread ends
            self._error = error
            self._loop.close()
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def start(self, timeout_s: float = 10.0) -> Device:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("device did not boot in time")
        if self._error is not None:
            raise self._error
        assert self._device is not None
        self._thread.name = f"device-{self._device.serial}"
        return self._device

    @property
    def device(self) -> Device:
        if self._device is None:
            raise DeviceNotRunningError("DeviceThread not started")
        return self._device

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = 30.0) -> T:
        return self.submit(coro).result(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self._thread.is_alive():
            return
        if self._device is not None:
            self.call(self._device.shutdown(), timeout_s)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
