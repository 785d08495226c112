"""System properties (``getprop`` / ``setprop``) with Android's rules.

``ro.*`` properties can be set once (at boot), ``persist.*`` ones are written to the device's
state directory and come back after a restart, names and values have Android's limits.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from terminal_emulator.android.errors import SecurityError

# bionic's PROP_VALUE_MAX: 92 bytes including the NUL; ro.* properties may be longer.
PROP_VALUE_MAX = 91
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-:@]+$")


class SystemProperties:
    def __init__(self, persist_file: Path | None = None) -> None:
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()
        self._persist_file = persist_file
        if persist_file is not None and persist_file.exists():
            stored = json.loads(persist_file.read_text(encoding="utf-8"))
            self._values.update({str(k): str(v) for k, v in stored.items()})

    def get(self, name: str, default: str = "") -> str:
        with self._lock:
            return self._values.get(name, default)

    def set(self, name: str, value: str) -> None:
        """``setprop``: refuses a second write to ``ro.*`` like Android's property service."""
        if not _NAME_RE.match(name) or ".." in name or name.startswith(".") or name.endswith("."):
            raise ValueError(f"invalid property name {name!r}")
        if "\n" in value or "\0" in value:
            raise ValueError("property values are one line")
        read_only = name.startswith("ro.")
        if not read_only and len(value.encode()) > PROP_VALUE_MAX:
            raise ValueError(f"property value longer than {PROP_VALUE_MAX} bytes")
        with self._lock:
            if read_only and name in self._values:
                raise SecurityError(f"Failed to set property '{name}': read-only property")
            self._values[name] = value
            if name.startswith("persist."):
                self._save()

    def set_defaults(self, values: Mapping[str, str]) -> None:
        """Boot-time values; persisted values already loaded win over them."""
        for name, value in values.items():
            if name not in self._values:
                self.set(name, value)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._values)

    def items(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._values.items())

    def getprop_output(self, name: str | None = None) -> str:
        """What ``getprop`` prints: ``[name]: [value]`` lines sorted by name, or one value."""
        if name is not None:
            return self.get(name) + "\n"
        return "".join(f"[{key}]: [{value}]\n" for key, value in self.items())

    def _save(self) -> None:
        if self._persist_file is None:
            return
        persisted = {k: v for k, v in self._values.items() if k.startswith("persist.")}
        _atomic_write(self._persist_file, json.dumps(persisted, indent=1, sort_keys=True))


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def default_properties(
    *,
    serial: str,
    model: str,
    manufacturer: str,
    brand: str,
    device: str,
    release: str,
    sdk: int,
    timezone: str,
    locale: str,
    extra: Iterable[tuple[str, str]] = (),
) -> dict[str, str]:
    """The properties a SmartPOS build reports (what host tools read with ``getprop``)."""
    build_id = "SP1A.210812.016"
    values = {
        "ro.serialno": serial,
        "ro.boot.serialno": serial,
        "ro.product.model": model,
        "ro.product.manufacturer": manufacturer,
        "ro.product.brand": brand,
        "ro.product.name": device,
        "ro.product.device": device,
        "ro.product.cpu.abi": "arm64-v8a",
        "ro.product.locale": locale,
        "ro.build.version.release": release,
        "ro.build.version.sdk": str(sdk),
        "ro.build.id": build_id,
        "ro.build.display.id": f"{device}-user {release} {build_id} release-keys",
        "ro.build.type": "user",
        "ro.build.tags": "release-keys",
        "ro.build.fingerprint": f"{brand}/{device}/{device}:{release}/{build_id}/1:user/release-keys",
        "ro.hardware": device,
        "ro.secure": "1",
        "ro.adb.secure": "1",
        "ro.debuggable": "0",
        "persist.sys.timezone": timezone,
        "persist.sys.locale": locale,
        "sys.boot_completed": "0",
    }
    values.update(dict(extra))
    return values
