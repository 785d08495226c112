"""Which devices this computer can reach, like ``adb devices -l``, without an adb server.

Three sources, probed in parallel with short timeouts:

* the local emulator ports 127.0.0.1:5555, 5557, … 5585 (where an adb server looks for
  emulators by itself, and where ``mpac terminal`` puts its ADB endpoints: see
  ``terminal_emulator.adb.default_port``);
* endpoints remembered with :func:`remember` (``mpac adb connect``), kept in
  ``<android user dir>/mpac-bridge-devices.json`` (see :mod:`android_bridge.keys` for that
  directory), plus any serials the caller names;
* USB devices, when adb-shell's USB extra (libusb1) is installed.

A probe is a real ADB handshake: ``device`` when it completes, ``unauthorized`` when the
device does not accept our key within the probe's ``auth_s`` (the key is offered, so a real
device shows its "Allow USB debugging?" prompt, as when ``adb devices`` first sees it),
``offline`` when something answers but does not finish the handshake. Nothing listening: not
listed. Each probe closes its connection again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from android_bridge.errors import (
    BridgeError,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
)
from android_bridge.keys import HostKeys, android_user_dir, load_host_keys
from android_bridge.transport import (
    AdbShellTransport,
    DeviceBanner,
    Timeouts,
    normalize_serial,
    parse_serial,
    usb_available,
)

#: The ports an adb server probes for local emulators (console port + 1: 5555 … 5585).
EMULATOR_ADB_PORTS = tuple(range(5555, 5586, 2))
REMEMBERED_DEVICES_FILE = "mpac-bridge-devices.json"
#: Probing must stay quick: a local port answers in milliseconds; an unauthorized device
#: is given ``auth_s`` to accept the key, no more.
PROBE_TIMEOUTS = Timeouts(transport_s=1.0, read_s=2.0, auth_s=1.0, command_s=5.0)
_MAX_PARALLEL_PROBES = 32
_file_lock = threading.Lock()


_UNSAFE_LISTING_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


def _sanitize(value: str) -> str:
    """adb's ``sanitize(value, false)``: one word of ``[A-Za-z0-9._-]`` whatever the banner says."""
    return _UNSAFE_LISTING_CHARACTERS.sub("_", value)


@dataclass(frozen=True)
class DeviceListing:
    """One line of ``adb devices -l``. ``detail``: why a device is not ``device``."""

    serial: str
    state: str  # "device", "unauthorized", "offline" (or the banner's state: "recovery", …)
    product: str | None = None
    model: str | None = None
    device: str | None = None
    transport_id: int | None = None
    features: frozenset[str] = field(default_factory=frozenset)
    detail: str | None = None

    def line(self) -> str:
        """As ``adb devices -l`` prints it."""
        parts = [f"{self.serial:<22} {self.state}"]
        for label, value in (
            ("product", self.product),
            ("model", self.model),
            ("device", self.device),
            ("transport_id", self.transport_id),
        ):
            if value is not None:
                parts.append(f"{label}:{_sanitize(str(value))}")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "state": self.state,
            "product": self.product,
            "model": self.model,
            "device": self.device,
            "transport_id": self.transport_id,
            "features": sorted(self.features),
            "detail": self.detail,
        }


def _listing(serial: str, banner: DeviceBanner) -> DeviceListing:
    return DeviceListing(
        serial=serial,
        state=banner.state,
        product=banner.product,
        model=banner.model,
        device=banner.device,
        features=banner.features,
    )


def probe(
    serial: str, *, keys: HostKeys | None = None, timeouts: Timeouts = PROBE_TIMEOUTS
) -> DeviceListing | None:
    """One device's state, or None when nothing answers at ``serial``."""
    transport = AdbShellTransport(serial, host_keys=keys)
    try:
        banner = transport.connect(timeouts)
    except DeviceNotFound:
        return None
    except DeviceUnauthorized as error:
        return DeviceListing(transport.serial, "unauthorized", detail=error.hint)
    except DeviceOffline as error:
        return DeviceListing(transport.serial, "offline", detail=error.message)
    finally:
        transport.close()
    return _listing(transport.serial, banner)


def _usb_serials() -> list[str]:
    """Serials of the USB devices with an ADB interface (empty without the USB extra)."""
    if not usb_available():
        return []
    from adb_shell.transport.usb_transport import UsbTransport

    serials = []
    with contextlib.suppress(Exception):  # no libusb backend, no permission to enumerate
        for found in UsbTransport.find_all_adb_devices():
            serial = str(found.serial_number)
            # A bare USB serial that would read as a host gets its explicit prefix.
            serials.append(serial if parse_serial(serial).kind == "usb" else f"usb:{serial}")
    return serials


def list_devices(
    extra_serials: Iterable[str] = (),
    *,
    scan_local_emulator_ports: bool = True,
    include_usb: bool = True,
    include_remembered: bool = True,
    key_path: Path | None = None,
    keys: HostKeys | None = None,
    timeouts: Timeouts = PROBE_TIMEOUTS,
) -> list[DeviceListing]:
    """Every device that answers, like ``adb devices -l``: remembered and ``extra_serials``
    first (in that order), then local emulator ports, then USB; each serial once."""
    candidates: list[str] = []
    if include_remembered:
        candidates.extend(remembered_serials())
    candidates.extend(extra_serials)
    if scan_local_emulator_ports:
        candidates.extend(f"127.0.0.1:{port}" for port in EMULATOR_ADB_PORTS)
    if include_usb:
        candidates.extend(_usb_serials())
    serials = _unique(candidates)
    if not serials:
        return []
    host_keys = keys or load_host_keys(key_path)
    with ThreadPoolExecutor(
        max_workers=min(_MAX_PARALLEL_PROBES, len(serials)), thread_name_prefix="adb-probe"
    ) as pool:
        found = list(
            pool.map(lambda serial: probe(serial, keys=host_keys, timeouts=timeouts), serials)
        )
    return [listing for listing in found if listing is not None]


def _unique(serials: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    unique = []
    for serial in serials:
        try:
            normalized = normalize_serial(serial)
        except ValueError:
            continue
        key = normalized.lower()
        if key not in seen:
            seen.add(key)
            unique.append(normalized)
    return unique


# Remembered endpoints (``mpac adb connect`` / ``disconnect``).


def remembered_devices_path() -> Path:
    return android_user_dir() / REMEMBERED_DEVICES_FILE


def remembered_serials(path: Path | None = None) -> list[str]:
    """The remembered serials, oldest first (an unreadable file counts as empty)."""
    try:
        document = json.loads((path or remembered_devices_path()).read_text())
    except (OSError, ValueError):
        return []
    devices = document.get("devices") if isinstance(document, dict) else None
    if not isinstance(devices, list):
        return []
    return [serial for serial in devices if isinstance(serial, str)]


def _save(serials: Sequence[str], path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps({"version": 1, "devices": list(serials)}, indent=2) + "\n")
    os.replace(staging, path)


def remember(serial: str, path: Path | None = None) -> str:
    """Add ``serial`` (normalized: ``host`` -> ``host:5555``) to the remembered endpoints;
    returns it. Raises BridgeError for something that is not a serial."""
    try:
        normalized = normalize_serial(serial)
    except ValueError as error:
        raise BridgeError(f"{serial!r} is not a device serial ({error})") from None
    target = path or remembered_devices_path()
    with _file_lock:
        serials = remembered_serials(target)
        if normalized.lower() not in (known.lower() for known in serials):
            _save([*serials, normalized], target)
    return normalized


def forget(serial: str, path: Path | None = None) -> bool:
    """Remove ``serial`` from the remembered endpoints; False when it was not there."""
    try:
        normalized = normalize_serial(serial).lower()
    except ValueError:
        normalized = serial.strip().lower()
    target = path or remembered_devices_path()
    with _file_lock:
        serials = remembered_serials(target)
        kept = [known for known in serials if known.lower() != normalized]
        if len(kept) == len(serials):
            return False
        _save(kept, target)
    return True
