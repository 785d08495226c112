"""Exceptions of the runtime, named after their Android counterparts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from terminal_emulator.android.intent import Intent


class AndroidRuntimeError(Exception):
    """Base class of the runtime's errors."""


class ActivityNotFoundError(AndroidRuntimeError):
    """No activity handles the intent (Android's ``ActivityNotFoundException``)."""

    def __init__(self, intent: Intent) -> None:
        self.intent = intent
        super().__init__(f"No Activity found to handle {intent}")


class SecurityError(AndroidRuntimeError):
    """The caller may not reach the component (Android's ``SecurityException``)."""


class PackageNotFoundError(AndroidRuntimeError):
    """Android's ``PackageManager.NameNotFoundException``."""

    def __init__(self, package: str) -> None:
        self.package = package
        super().__init__(f"Unknown package: {package}")


class IllegalStateError(AndroidRuntimeError):
    """A call made at the wrong moment (Android's ``IllegalStateException``)."""


class DeviceNotRunningError(AndroidRuntimeError):
    """The device was not started, or was shut down."""
