"""What app code sees of the device: ``Context``, ``Log`` and ``Application``."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from terminal_emulator.android.errors import IllegalStateError
from terminal_emulator.android.logcat import Logcat, Priority
from terminal_emulator.android.process import ProcessRecord, current_thread
from terminal_emulator.android.storage import KeyValueDatabase, SharedPreferences

if TYPE_CHECKING:
    from terminal_emulator.android.activity_manager import ActivityManager, BroadcastResult
    from terminal_emulator.android.bundle import Bundle
    from terminal_emulator.android.intent import Intent, IntentFilter
    from terminal_emulator.android.receiver import BroadcastReceiver

T = TypeVar("T")


class Log:
    """``android.util.Log`` for one process: lines carry its pid and the calling thread's tid."""

    def __init__(self, logcat: Logcat, pid: int, uid: int) -> None:
        self._logcat = logcat
        self.pid = pid
        self.uid = uid

    def println(self, priority: Priority, tag: str, message: str, *, buffer: str = "main") -> None:
        thread = current_thread.get()
        tid = thread[1] if thread is not None and thread[0] == self.pid else self.pid
        self._logcat.write(
            priority, tag, message, pid=self.pid, tid=tid, uid=self.uid, buffer=buffer
        )

    def v(self, tag: str, message: str) -> None:
        self.println(Priority.VERBOSE, tag, message)

    def d(self, tag: str, message: str) -> None:
        self.println(Priority.DEBUG, tag, message)

    def i(self, tag: str, message: str) -> None:
        self.println(Priority.INFO, tag, message)

    def w(self, tag: str, message: str) -> None:
        self.println(Priority.WARN, tag, message)

    def e(self, tag: str, message: str) -> None:
        self.println(Priority.ERROR, tag, message)

    def wtf(self, tag: str, message: str) -> None:
        self.println(Priority.FATAL, tag, message)


class Context:
    """An app's handle on the device; ``Activity`` and ``Application`` are contexts."""

    def __init__(self) -> None:
        self._am: ActivityManager | None = None
        self._process: ProcessRecord | None = None
        self._log: Log | None = None

    def _attach_context(self, am: ActivityManager, process: ProcessRecord) -> None:
        self._am = am
        self._process = process
        self._log = Log(am.logcat, process.pid, process.uid)

    @property
    def activity_manager(self) -> ActivityManager:
        if self._am is None:
            raise IllegalStateError("context used before it was attached")
        return self._am

    @property
    def process(self) -> ProcessRecord:
        if self._process is None:
            raise IllegalStateError("context used before it was attached")
        return self._process

    @property
    def package_name(self) -> str:
        return self.process.package

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def uid(self) -> int:
        return self.process.uid

    @property
    def log(self) -> Log:
        if self._log is None:
            raise IllegalStateError("context used before it was attached")
        return self._log

    @property
    def application(self) -> Application:
        application = self.process.application
        if application is None:
            raise IllegalStateError("the process is dead")
        return application

    def now(self) -> dt.datetime:
        return self.activity_manager.clock.now()

    def get_system_property(self, name: str, default: str = "") -> str:
        return self.activity_manager.properties.get(name, default)

    # -- intents ------------------------------------------------------------------------------

    def start_activity(self, intent: Intent) -> None:
        self.activity_manager.start_activity(
            intent, calling_uid=self.uid, calling_package=self.package_name
        )

    def send_broadcast(self, intent: Intent) -> asyncio.Task[BroadcastResult]:
        return self.activity_manager.send_broadcast(
            intent, calling_uid=self.uid, calling_package=self.package_name
        )

    def send_ordered_broadcast(
        self,
        intent: Intent,
        *,
        result_receiver: Callable[[BroadcastResult], None] | None = None,
        initial_code: int = 0,
        initial_data: str | None = None,
        initial_extras: Bundle | None = None,
    ) -> asyncio.Task[BroadcastResult]:
        return self.activity_manager.send_ordered_broadcast(
            intent,
            result_receiver=result_receiver,
            initial_code=initial_code,
            initial_data=initial_data,
            initial_extras=initial_extras,
            calling_uid=self.uid,
            calling_package=self.package_name,
        )

    def register_receiver(self, receiver: BroadcastReceiver, intent_filter: IntentFilter) -> None:
        self.activity_manager.register_receiver(self.process, receiver, intent_filter)

    def unregister_receiver(self, receiver: BroadcastReceiver) -> None:
        self.activity_manager.unregister_receiver(receiver)

    # -- storage and work ---------------------------------------------------------------------

    def open_database(self, name: str) -> KeyValueDatabase:
        """The app's key-value database ``name`` (one handle per process, closed on death)."""
        return self.process.database(name)

    def get_shared_preferences(self, name: str) -> SharedPreferences:
        return self.process.shared_preferences(name)

    @property
    def files_dir(self) -> Path:
        return self.process.storage.files_dir

    def launch(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Background work of the app's process; cancelled when the process dies."""
        return self.process.launch(coro, name=name)


class Application(Context):
    """One per process, created before any of its components; override ``on_create``."""

    def on_create(self) -> None:
        """Called once when the process starts."""
