"""Activities: screens with a lifecycle, started by intents, finishing with a result."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from terminal_emulator.android.context import Context
from terminal_emulator.android.errors import IllegalStateError

if TYPE_CHECKING:
    from terminal_emulator.android.activity_manager import ActivityRecord
    from terminal_emulator.android.bundle import Bundle
    from terminal_emulator.android.intent import ComponentName, Intent

# android.app.Activity's result codes.
RESULT_OK = -1
RESULT_CANCELED = 0
RESULT_FIRST_USER = 1


class LifecycleState(Enum):
    INITIALIZING = "initializing"
    CREATED = "created"
    RESUMED = "resumed"
    PAUSED = "paused"
    DESTROYED = "destroyed"


class Activity(Context):
    """Subclass and override the ``on_*`` callbacks.

    Callbacks run on the device's main queue, one at a time, and must not block: long work
    goes to :meth:`launch` (cancelled if the process is killed). ``start_activity``,
    ``finish`` and the like called from a callback take effect after it returns, in order,
    as Android's main looper does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._record: ActivityRecord | None = None

    def _attach(self, record: ActivityRecord) -> None:
        self._record = record

    @property
    def record(self) -> ActivityRecord:
        if self._record is None:
            raise IllegalStateError("activity used before it was attached")
        return self._record

    @property
    def intent(self) -> Intent:
        return self.record.intent

    @property
    def component_name(self) -> ComponentName:
        return self.record.component

    @property
    def calling_package(self) -> str | None:
        """The package that started this activity for a result (None otherwise), as Android's
        ``getCallingPackage``."""
        caller = self.record.result_to
        return caller.package if caller is not None else None

    @property
    def state(self) -> LifecycleState:
        return self.record.state

    @property
    def is_finishing(self) -> bool:
        return self.record.finishing

    def set_result(self, result_code: int, data: Intent | None = None) -> None:
        self.record.result_code = result_code
        self.record.result_data = data.copy() if data is not None else None

    def finish(self) -> None:
        self.activity_manager.finish_activity(self.record)

    def start_activity(self, intent: Intent) -> None:
        self.activity_manager.start_activity(
            intent, caller=self.record, calling_uid=self.uid, calling_package=self.package_name
        )

    def start_activity_for_result(self, intent: Intent, request_code: int) -> None:
        """The result arrives in ``on_activity_result(request_code, …)`` before ``on_resume``.

        If the started activity's process dies first, the result is ``RESULT_CANCELED`` with
        no data, as on Android.
        """
        if request_code < 0:
            raise ValueError("request codes are >= 0 (negative means no result)")
        self.activity_manager.start_activity(
            intent,
            caller=self.record,
            request_code=request_code,
            calling_uid=self.uid,
            calling_package=self.package_name,
        )

    # -- lifecycle callbacks ------------------------------------------------------------------

    def on_create(self, saved_state: Bundle | None) -> None:
        """First callback; ``self.intent`` is the intent that started the activity."""

    def on_resume(self) -> None:
        """The activity is in the foreground."""

    def on_pause(self) -> None:
        """Another activity comes on top, or this one finishes."""

    def on_destroy(self) -> None:
        """Last callback of a finished activity (not called when the process is killed)."""

    def on_activity_result(self, request_code: int, result_code: int, data: Intent | None) -> None:
        """A result of ``start_activity_for_result``."""
