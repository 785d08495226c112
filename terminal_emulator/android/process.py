"""App processes: a pid, the app's in-memory objects and its running work.

Killing a process (``am force-stop``, a crash) cancels every task it launched and drops every
object it held; only what it wrote to storage survives. A new process of the same package
gets a new pid and starts from scratch, exactly like an Android app process.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import uuid
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from terminal_emulator.android.storage import AppStorage, KeyValueDatabase, SharedPreferences

if TYPE_CHECKING:
    from terminal_emulator.android.context import Application

T = TypeVar("T")

# The (pid, tid) the running code belongs to, so log lines carry the right thread id. A
# context variable is per task, not global state: many devices in one process stay separate.
current_thread: ContextVar[tuple[int, int] | None] = ContextVar("current_thread", default=None)


class ProcessRecord:
    def __init__(
        self,
        *,
        pid: int,
        package: str,
        uid: int,
        storage: AppStorage,
        crash_handler: Callable[[ProcessRecord, BaseException, str], None],
    ) -> None:
        self.pid = pid
        self.package = package
        self.uid = uid
        self.storage = storage
        self.alive = True
        # Unique per process instance, also across emulator restarts (pids are not): lets
        # stored work tell "mine" from "left behind by a process that died".
        self.instance_id = f"{pid}-{uuid.uuid4().hex[:12]}"
        self.application: Application | None = None
        self.death = asyncio.Event()
        self._crash_handler = crash_handler
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tids = itertools.count(pid + 1)
        self._databases: dict[str, KeyValueDatabase] = {}
        self._preferences: dict[str, SharedPreferences] = {}

    @property
    def name(self) -> str:
        return self.package

    @property
    def user_id_label(self) -> str:
        """``u0a42`` for uid 10042, as ``am`` and logcat name app users."""
        return f"u0a{self.uid - 10000}" if self.uid >= 10000 else str(self.uid)

    def launch(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Run ``coro`` as work of this process, on its own thread id; killed with the process.

        An exception escaping it crashes the process, as an uncaught exception on an Android
        thread does.
        """
        if not self.alive:
            coro.close()
            raise RuntimeError(f"process {self.pid} ({self.package}) is dead")
        tid = next(self._tids)
        context = contextvars.copy_context()
        context.run(current_thread.set, (self.pid, tid))
        task = asyncio.get_running_loop().create_task(
            coro, name=name or f"{self.package}:{tid}", context=context
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or not self.alive:
            return
        error = task.exception()
        if error is not None:
            self._crash_handler(self, error, task.get_name())

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        return frozenset(self._tasks)

    def database(self, name: str) -> KeyValueDatabase:
        self._check_alive()
        if name not in self._databases:
            self._databases[name] = self.storage.open_database(name)
        return self._databases[name]

    def shared_preferences(self, name: str) -> SharedPreferences:
        self._check_alive()
        if name not in self._preferences:
            self._preferences[name] = self.storage.open_shared_preferences(name)
        return self._preferences[name]

    def _check_alive(self) -> None:
        if not self.alive:
            raise RuntimeError(f"process {self.pid} ({self.package}) is dead")

    def kill(self) -> list[asyncio.Task[Any]]:
        """Cancel the process's work and forget its objects; returns the cancelled tasks."""
        if not self.alive:
            return []
        self.alive = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for database in self._databases.values():
            database.close()
        self._databases.clear()
        self._preferences.clear()
        self.application = None
        self.death.set()
        return tasks

    def __repr__(self) -> str:
        state = "alive" if self.alive else "dead"
        return f"<ProcessRecord {self.pid}:{self.package}/{self.user_id_label} {state}>"
