"""What can go wrong between a host and a SmartPOS terminal, each failure its own class.

Every error says what happened and what to do about it (``hint``), and carries a stable
``code`` for ``--json`` output and for tests. None of them means "the payment failed": a
payment that was declined is a :class:`~terminal_emulator.contract.TransactionResult`, not an
exception; an exception means the bridge could not learn or could not deliver.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base class. ``serial``: the device concerned (when known)."""

    code = "bridge_error"

    def __init__(self, message: str, *, serial: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.serial = serial
        self.hint = hint

    def __str__(self) -> str:
        where = f"{self.serial}: " if self.serial else ""
        return f"{where}{self.message}" + (f" ({self.hint})" if self.hint else "")

    def to_json(self) -> dict[str, str | None]:
        return {
            "error": self.code,
            "message": self.message,
            "serial": self.serial,
            "hint": self.hint,
        }


class DeviceNotFound(BridgeError):
    """No device answers at that address (connection refused, no such USB device)."""

    code = "device_not_found"


class DeviceUnauthorized(BridgeError):
    """The device did not accept this computer's ADB key (the "Allow USB debugging?" prompt
    was not answered, or the key is not in its ``adb_keys``)."""

    code = "device_unauthorized"


class DeviceOffline(BridgeError):
    """The connection dropped or stopped answering (cable pulled, device rebooted, adbd
    restarted)."""

    code = "device_offline"


class CommandTimeout(BridgeError):
    """A shell command did not finish within its timeout (the device is still connected)."""

    code = "command_timeout"


class AppNotInstalled(BridgeError):
    """The Business App or the Credit Card App is not installed on the device."""

    code = "app_not_installed"

    def __init__(self, package: str, *, serial: str | None = None) -> None:
        super().__init__(
            f"{package} is not installed",
            serial=serial,
            hint=f"install it (adb install …) or check `pm list packages {package}`",
        )
        self.package = package


class IntentRejected(BridgeError):
    """``am`` refused the intent (unknown component, bad argument, security exception);
    ``output`` is what ``am`` printed, ``exit_code`` its status."""

    code = "intent_rejected"

    def __init__(
        self, message: str, *, output: str, exit_code: int | None, serial: str | None = None
    ) -> None:
        super().__init__(message, serial=serial)
        self.output = output
        self.exit_code = exit_code


class MalformedResult(BridgeError):
    """The device answered, but not with a result the contract can read; ``raw`` is the
    text received (card data never appears in results, so it is safe to show)."""

    code = "malformed_result"

    def __init__(self, message: str, *, raw: str, serial: str | None = None) -> None:
        super().__init__(message, serial=serial)
        self.raw = raw


class ResultTimeout(BridgeError):
    """No final result for ``request_id`` before the deadline. The request may still
    complete on the device: ask again with the same request id (``query``), never resend it
    under a new one. ``last_status`` is the last non-final status seen, if any."""

    code = "result_timeout"

    def __init__(
        self,
        message: str,
        *,
        request_id: str,
        last_status: str | None = None,
        serial: str | None = None,
    ) -> None:
        super().__init__(
            message,
            serial=serial,
            hint=f"query it later: mpac adb query --serial {serial or '…'} --request-id {request_id}",
        )
        self.request_id = request_id
        self.last_status = last_status


class ResultUnknown(BridgeError):
    """The device could not be reached to learn the outcome of ``request_id`` (it may have
    gone through). Never reported as a failure: query it when the device is back."""

    code = "result_unknown"

    def __init__(self, message: str, *, request_id: str, serial: str | None = None) -> None:
        super().__init__(
            message,
            serial=serial,
            hint=f"the outcome is unknown, not failed: mpac adb query --serial {serial or '…'} --request-id {request_id}",
        )
        self.request_id = request_id
