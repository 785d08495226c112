"""Installed packages, their components and intent resolution (``PackageManager``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from terminal_emulator.android.errors import PackageNotFoundError
from terminal_emulator.android.intent import (
    ComponentName,
    Intent,
    IntentFilter,
    is_valid_package_name,
)

if TYPE_CHECKING:
    from terminal_emulator.android.activity import Activity
    from terminal_emulator.android.context import Application
    from terminal_emulator.android.receiver import BroadcastReceiver

FIRST_APPLICATION_UID = 10000


@dataclass(frozen=True)
class ActivityDeclaration:
    """An ``<activity>`` of a manifest. ``name`` may be relative (``.MainActivity``).

    ``exported`` None means Android's old default: exported when it has intent filters.
    """

    name: str
    factory: Callable[[], Activity]
    intent_filters: tuple[IntentFilter, ...] = ()
    exported: bool | None = None
    label: str = ""


@dataclass(frozen=True)
class ReceiverDeclaration:
    """A ``<receiver>`` of a manifest."""

    name: str
    factory: Callable[[], BroadcastReceiver]
    intent_filters: tuple[IntentFilter, ...] = ()
    exported: bool | None = None


@dataclass(frozen=True)
class PackageManifest:
    package: str
    activities: tuple[ActivityDeclaration, ...] = ()
    receivers: tuple[ReceiverDeclaration, ...] = ()
    application: Callable[[], Application] | None = None
    version_code: int = 1
    version_name: str = "1.0"
    label: str = ""
    system: bool = False

    def __post_init__(self) -> None:
        if not is_valid_package_name(self.package):
            raise ValueError(f"invalid package name {self.package!r}")
        names = [d.name for d in self.activities] + [d.name for d in self.receivers]
        full = [ComponentName.of(self.package, name).class_name for name in names]
        if len(set(full)) != len(full):
            raise ValueError(f"{self.package}: two components share a class name")


@dataclass(frozen=True)
class ActivityInfo:
    component: ComponentName
    factory: Callable[[], Activity]
    exported: bool
    intent_filters: tuple[IntentFilter, ...]
    label: str = ""

    @property
    def package(self) -> str:
        return self.component.package


@dataclass(frozen=True)
class ReceiverInfo:
    component: ComponentName
    factory: Callable[[], BroadcastReceiver]
    exported: bool
    intent_filters: tuple[IntentFilter, ...]

    @property
    def package(self) -> str:
        return self.component.package


@dataclass(frozen=True)
class ResolveInfo:
    """A component that matches an intent, with the filter that matched (None: explicit)."""

    info: ActivityInfo | ReceiverInfo
    intent_filter: IntentFilter | None
    priority: int = 0

    @property
    def component(self) -> ComponentName:
        return self.info.component


@dataclass
class InstalledPackage:
    manifest: PackageManifest
    uid: int
    install_order: int
    activities: dict[ComponentName, ActivityInfo] = field(default_factory=dict)
    receivers: dict[ComponentName, ReceiverInfo] = field(default_factory=dict)
    stopped: bool = False

    @property
    def name(self) -> str:
        return self.manifest.package

    @property
    def code_path(self) -> str:
        if self.manifest.system:
            label = self.manifest.label.replace(" ", "") or self.name.rsplit(".", 1)[-1]
            return f"/system/priv-app/{label}/{label}.apk"
        return f"/data/app/{self.name}-1/base.apk"


class PackageManager:
    """Thread-safe registry of installed packages of one device."""

    def __init__(self) -> None:
        self._packages: dict[str, InstalledPackage] = {}
        self._uids: dict[str, int] = {}  # kept across uninstall/reinstall, as Android does
        self._next_uid = FIRST_APPLICATION_UID
        self._install_counter = 0
        self._lock = threading.RLock()

    def install(self, manifest: PackageManifest) -> InstalledPackage:
        """Install or replace ``manifest``'s package. The caller stops a running old version."""
        with self._lock:
            uid = self._uids.get(manifest.package)
            if uid is None:
                uid = self._next_uid
                self._next_uid += 1
                self._uids[manifest.package] = uid
            self._install_counter += 1
            installed = InstalledPackage(manifest, uid, self._install_counter)
            for activity in manifest.activities:
                component = ComponentName.of(manifest.package, activity.name)
                installed.activities[component] = ActivityInfo(
                    component,
                    activity.factory,
                    _exported(activity.exported, activity.intent_filters),
                    activity.intent_filters,
                    activity.label,
                )
            for receiver in manifest.receivers:
                component = ComponentName.of(manifest.package, receiver.name)
                installed.receivers[component] = ReceiverInfo(
                    component,
                    receiver.factory,
                    _exported(receiver.exported, receiver.intent_filters),
                    receiver.intent_filters,
                )
            self._packages[manifest.package] = installed
            return installed

    def uninstall(self, package: str) -> None:
        with self._lock:
            if self._packages.pop(package, None) is None:
                raise PackageNotFoundError(package)

    def is_installed(self, package: str) -> bool:
        with self._lock:
            return package in self._packages

    def get_package(self, package: str) -> InstalledPackage:
        with self._lock:
            try:
                return self._packages[package]
            except KeyError:
                raise PackageNotFoundError(package) from None

    def packages(self) -> list[InstalledPackage]:
        with self._lock:
            return sorted(self._packages.values(), key=lambda p: p.name)

    def uid_of(self, package: str) -> int:
        return self.get_package(package).uid

    # -- stopped state ------------------------------------------------------------------------

    def set_stopped(self, package: str, stopped: bool) -> None:
        with self._lock:
            self.get_package(package).stopped = stopped

    def is_stopped(self, package: str) -> bool:
        with self._lock:
            return self.get_package(package).stopped

    # -- resolution ---------------------------------------------------------------------------

    def activity_info(self, component: ComponentName) -> ActivityInfo | None:
        with self._lock:
            installed = self._packages.get(component.package)
            return installed.activities.get(component) if installed else None

    def receiver_info(self, component: ComponentName) -> ReceiverInfo | None:
        with self._lock:
            installed = self._packages.get(component.package)
            return installed.receivers.get(component) if installed else None

    def query_intent_activities(self, intent: Intent) -> list[ResolveInfo]:
        """Activities for ``intent``: the named one, or those whose filters match (with
        CATEGORY_DEFAULT required, as ``startActivity`` does), best priority first."""
        if intent.component is not None:
            info = self.activity_info(intent.component)
            return [ResolveInfo(info, None)] if info is not None else []
        with self._lock:
            candidates = [
                (installed, info)
                for installed in self._packages.values()
                if intent.package in (None, installed.name)
                for info in installed.activities.values()
            ]
        return _matches(
            ((installed.install_order, info) for installed, info in candidates),
            intent,
            require_default_category=True,
        )

    def resolve_activity(self, intent: Intent) -> ResolveInfo | None:
        found = self.query_intent_activities(intent)
        return found[0] if found else None

    def query_broadcast_receivers(self, intent: Intent) -> list[ResolveInfo]:
        """Manifest receivers for ``intent`` (stopped packages included; the caller filters)."""
        if intent.component is not None:
            info = self.receiver_info(intent.component)
            return [ResolveInfo(info, None)] if info is not None else []
        with self._lock:
            candidates = [
                (installed, info)
                for installed in self._packages.values()
                if intent.package in (None, installed.name)
                for info in installed.receivers.values()
            ]
        return _matches(
            ((installed.install_order, info) for installed, info in candidates),
            intent,
            require_default_category=False,
        )

    # -- pm shell output ----------------------------------------------------------------------

    def list_packages(
        self,
        name_filter: str | None = None,
        *,
        show_path: bool = False,
        system_only: bool = False,
        third_party_only: bool = False,
        show_version_code: bool = False,
        show_uid: bool = False,
    ) -> list[str]:
        """Lines of ``pm list packages [-f] [-s|-3] [--show-versioncode] [-U] [FILTER]``."""
        lines = []
        for installed in self.packages():
            if name_filter and name_filter not in installed.name:
                continue
            if system_only and not installed.manifest.system:
                continue
            if third_party_only and installed.manifest.system:
                continue
            line = "package:"
            if show_path:
                line += f"{installed.code_path}="
            line += installed.name
            if show_version_code:
                line += f" versionCode:{installed.manifest.version_code}"
            if show_uid:
                line += f" uid:{installed.uid}"
            lines.append(line)
        return lines

    def path_lines(self, package: str) -> list[str]:
        """``pm path <package>``."""
        return [f"package:{self.get_package(package).code_path}"]


def _exported(declared: bool | None, filters: tuple[IntentFilter, ...]) -> bool:
    return bool(filters) if declared is None else declared


def _matches(
    candidates: Iterable[tuple[int, ActivityInfo | ReceiverInfo]],
    intent: Intent,
    *,
    require_default_category: bool,
) -> list[ResolveInfo]:
    found: list[tuple[int, int, ResolveInfo]] = []
    for order, info in candidates:
        matching = [
            intent_filter
            for intent_filter in info.intent_filters
            if intent_filter.matches(intent, require_default_category=require_default_category)
        ]
        if matching:
            best = max(matching, key=lambda intent_filter: intent_filter.priority)
            found.append((-best.priority, order, ResolveInfo(info, best, best.priority)))
    # Stable sort: same priority and package keep the manifest's order.
    found.sort(key=lambda item: (item[0], item[1]))
    return [item[2] for item in found]
