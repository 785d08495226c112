"""The activity manager: processes, the activity stack, results and broadcasts.

Everything here runs on the device's event loop. App callbacks run one at a time on a main
queue (Android's main looper): a callback that starts or finishes an activity only queues
that change, which runs after the callback returns; a call from outside any callback (a test,
the ADB shell) runs the queue to completion before returning, so ``start_activity`` from the
shell returns with the activity created and resumed.

An exception escaping an app callback or an app task crashes its process, as on Android: a
``FATAL EXCEPTION`` goes to the crash log, the process is killed, the activities it showed
are gone and a caller waiting for a result receives ``RESULT_CANCELED`` with no data.
"""

from __future__ import annotations

import asyncio
import itertools
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from terminal_emulator.android.activity import (
    RESULT_CANCELED,
    Activity,
    LifecycleState,
)
from terminal_emulator.android.bundle import Bundle
from terminal_emulator.android.clock import Clock
from terminal_emulator.android.context import Application
from terminal_emulator.android.errors import (
    ActivityNotFoundError,
    DeviceNotRunningError,
    SecurityError,
)
from terminal_emulator.android.intent import (
    FLAG_EXCLUDE_STOPPED_PACKAGES,
    FLAG_INCLUDE_STOPPED_PACKAGES,
    FLAG_RECEIVER_FOREGROUND,
    ComponentName,
    Intent,
    IntentFilter,
)
from terminal_emulator.android.logcat import Logcat, Priority
from terminal_emulator.android.package_manager import (
    ActivityInfo,
    PackageManager,
    ReceiverInfo,
)
from terminal_emulator.android.process import ProcessRecord, current_thread
from terminal_emulator.android.properties import SystemProperties
from terminal_emulator.android.receiver import BroadcastReceiver, Delivery
from terminal_emulator.android.storage import AppStorage

ROOT_UID = 0
SYSTEM_UID = 1000
SHELL_UID = 2000

LaunchState = Literal["COLD", "WARM"]
T = TypeVar("T")


@dataclass(frozen=True)
class ActivityResult:
    request_code: int
    result_code: int
    data: Intent | None


@dataclass(eq=False)
class ActivityRecord:
    """The manager's view of one activity instance (Android's ``ActivityRecord``)."""

    token: int
    info: ActivityInfo
    intent: Intent
    result_to: ActivityRecord | None
    request_code: int
    launched_by_uid: int
    state: LifecycleState = LifecycleState.INITIALIZING
    activity: Activity | None = None
    process: ProcessRecord | None = None
    result_code: int = RESULT_CANCELED
    result_data: Intent | None = None
    pending_results: list[ActivityResult] = field(default_factory=list)
    finishing: bool = False
    dead: bool = False
    launch_state: LaunchState | None = None

    @property
    def component(self) -> ComponentName:
        return self.info.component

    @property
    def package(self) -> str:
        return self.info.package

    def __repr__(self) -> str:
        return f"<ActivityRecord #{self.token} {self.component.flatten_short()} {self.state.value}>"


@dataclass(frozen=True)
class StartResult:
    record: ActivityRecord

    @property
    def component(self) -> ComponentName:
        return self.record.component

    @property
    def launch_state(self) -> LaunchState | None:
        """COLD when the start created the app's process, WARM when it was running."""
        return self.record.launch_state

    @property
    def activity(self) -> Activity | None:
        return self.record.activity


@dataclass
class BroadcastResult:
    """The final result of a broadcast (meaningful for ordered ones)."""

    code: int
    data: str | None = None
    extras: Bundle | None = None
    aborted: bool = False
    receivers: int = 0

    def am_output(self) -> str:
        """The line ``am broadcast`` prints (ActivityManagerShellCommand.IntentReceiver)."""
        line = f"Broadcast completed: result={self.code}"
        if self.data is not None:
            line += f', data="{self.data}"'
        if self.extras is not None:
            line += f", extras: {self.extras.to_android_string()}"
        return line


@dataclass(frozen=True)
class ActivityEvent:
    """What listeners (the UI) hear: ``process_started``, ``process_died``, ``created``,
    ``resumed``, ``paused``, ``destroyed``."""

    kind: str
    package: str
    pid: int | None = None
    component: ComponentName | None = None
    record: ActivityRecord | None = None


@dataclass(eq=False)
class _Registered:
    receiver: BroadcastReceiver
    intent_filter: IntentFilter
    process: ProcessRecord
    seq: int


@dataclass
class _Target:
    priority: int
    package: str
    manifest: ReceiverInfo | None = None
    registered: _Registered | None = None

    @property
    def label(self) -> str:
        if self.manifest is not None:
            return self.manifest.component.flatten_short()
        assert self.registered is not None
        return f"{self.package} (registered {type(self.registered.receiver).__name__})"


class ActivityManager:
    def __init__(
        self,
        *,
        package_manager: PackageManager,
        logcat: Logcat,
        properties: SystemProperties,
        clock: Clock,
        data_root: Path,
        allocate_pid: Callable[[], int],
        system_pid: int,
        broadcast_timeout_s: float = 60.0,
        foreground_broadcast_timeout_s: float = 10.0,
    ) -> None:
        self.package_manager = package_manager
        self.logcat = logcat
        self.properties = properties
        self.clock = clock
        self.data_root = data_root
        self.system_pid = system_pid
        self.broadcast_timeout_s = broadcast_timeout_s
        self.foreground_broadcast_timeout_s = foreground_broadcast_timeout_s
        self._allocate_pid = allocate_pid
        self._loop: asyncio.AbstractEventLoop | None = None
        self._processes: dict[str, ProcessRecord] = {}
        self._stack: list[ActivityRecord] = []  # launched activities, top last
        self._pending: list[ActivityRecord] = []  # started, not launched yet
        self._queue: deque[Callable[[], None]] = deque()
        self._draining = False
        self._tokens = itertools.count(1)
        self._registered: list[_Registered] = []
        self._registration_seq = itertools.count()
        self._process_locks: dict[str, asyncio.Lock] = {}
        self._broadcasts: set[asyncio.Task[BroadcastResult]] = set()
        self._listeners: list[Callable[[ActivityEvent], None]] = []

    # -- device lifecycle ---------------------------------------------------------------------

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # asyncio locks belong to the loop that first used them: a reboot may use another.
        self._process_locks.clear()

    @property
    def running(self) -> bool:
        return self._loop is not None

    def _require_running(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise DeviceNotRunningError("the device is not running (await device.start())")
        return self._loop

    async def shutdown(self) -> None:
        """Power off: every process dies without callbacks; broadcasts in flight are dropped."""
        for record in self._stack + self._pending:
            record.dead = True
            record.state = LifecycleState.DESTROYED
        self._stack.clear()
        self._pending.clear()
        for process in list(self._processes.values()):
            self._kill_package(process.package, why=None)
        tasks = list(self._broadcasts)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = None

    # -- listeners ----------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[ActivityEvent], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[ActivityEvent], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: ActivityEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                # A listener is UI code; its bug must not corrupt the activity stack.
                self._system_log(
                    Priority.ERROR, "ActivityManager", "listener failed\n" + traceback.format_exc()
                )

    def _emit_record(self, kind: str, record: ActivityRecord) -> None:
        pid = record.process.pid if record.process is not None else None
        self._emit(ActivityEvent(kind, record.package, pid, record.component, record))

    # -- introspection ------------------------------------------------------------------------

    def processes(self) -> list[ProcessRecord]:
        return [p for p in self._processes.values() if p.alive]

    def process_of(self, package: str) -> ProcessRecord | None:
        process = self._processes.get(package)
        return process if process is not None and process.alive else None

    def activity_stack(self) -> list[ActivityRecord]:
        """Launched activities, bottom first."""
        return list(self._stack)

    @property
    def top_record(self) -> ActivityRecord | None:
        return self._stack[-1] if self._stack else None

    @property
    def foreground_activity(self) -> Activity | None:
        top = self.top_record
        if top is not None and top.state is LifecycleState.RESUMED:
            return top.activity
        return None

    # -- the main queue -----------------------------------------------------------------------

    def _post(self, operation: Callable[[], None]) -> None:
        self._queue.append(operation)
        if self._draining:
            return
        self._draining = True
        try:
            while self._queue:
                self._queue.popleft()()
            self._settle()
        finally:
            self._draining = False

    def _run_main(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` on the main queue from outside it (a broadcast task) and return
        its value; the queue is drained, as after any outside call."""
        if self._draining:
            raise RuntimeError("_run_main is for callers outside the main queue")
        box: list[T] = []
        self._post(lambda: box.append(operation()))
        return box[0]

    def _settle(self) -> None:
        """Idle invariant: the top activity is resumed (after a crash or kill below it)."""
        while True:
            top = self.top_record
            if top is None or top.finishing or top.state is LifecycleState.RESUMED:
                return
            self._resume(top)
            if self.top_record is top and top.state is not LifecycleState.RESUMED:
                return  # its on_resume crashed and nothing else is left to try

    def _call_app(self, process: ProcessRecord | None, callback: Callable[[], None]) -> bool:
        """Run app code as the process's main thread; False if it crashed or the process died."""
        if process is None or not process.alive:
            return False
        token = current_thread.set((process.pid, process.pid))
        try:
            callback()
        except Exception as error:
            self._crash(process, error, "main")
            return False
        finally:
            current_thread.reset(token)
        return process.alive

    # -- processes ----------------------------------------------------------------------------

    def _ensure_process(self, package: str, hosting: str) -> tuple[ProcessRecord | None, bool]:
        """The package's running process, started (Application created) if needed."""
        process = self.process_of(package)
        if process is not None:
            return process, False
        installed = self.package_manager.get_package(package)
        process = ProcessRecord(
            pid=self._allocate_pid(),
            package=package,
            uid=installed.uid,
            storage=AppStorage(self.data_root, package),
            crash_handler=self._crash,
        )
        self._processes[package] = process
        self._system_log(
            Priority.INFO,
            "ActivityManager",
            f"Start proc {process.pid}:{package}/{process.user_id_label} for {hosting}",
        )
        factory = installed.manifest.application or Application
        application: Application | None = None

        def create() -> None:
            nonlocal application
            application = factory()
            application._attach_context(self, process)
            process.application = application
            application.on_create()

        self._emit(ActivityEvent("process_started", package, process.pid))
        if not self._call_app(process, create):
            return None, True
        return process, True

    def force_stop(self, package: str, *, caller_pid: int | None = None) -> None:
        """``am force-stop``: kill the process, drop its activities, mark the package stopped.

        A stopped package receives no broadcast unless the intent carries
        FLAG_INCLUDE_STOPPED_PACKAGES, until one of its activities is started again.
        """
        installed = self.package_manager.get_package(package)
        reason = f"from pid {caller_pid if caller_pid is not None else self.system_pid}"
        self._system_log(
            Priority.INFO,
            "ActivityManager",
            f"Force stopping {package} appid={installed.uid} user=0: {reason}",
        )
        self._kill_package(package, why=f"stop {package} due to {reason}")
        self.package_manager.set_stopped(package, True)

    def kill(self, package: str) -> None:
        """The process dies (low memory, ``kill``) without the package becoming stopped."""
        self._kill_package(package, why="kill")

    def _crash(self, process: ProcessRecord, error: BaseException, thread: str) -> None:
        if not process.alive:
            return
        trace = "".join(traceback.format_exception(error)).rstrip()
        self.logcat.write(
            Priority.ERROR,
            "AndroidRuntime",
            f"FATAL EXCEPTION: {thread}\nProcess: {process.package}, PID: {process.pid}\n{trace}",
            pid=process.pid,
            uid=process.uid,
            buffer="crash",
        )
        self.logcat.write(
            Priority.INFO,
            "Process",
            f"Sending signal. PID: {process.pid} SIG: 9",
            pid=process.pid,
            uid=process.uid,
        )
        self._kill_package(process.package, why="crash")

    def _kill_package(self, package: str, *, why: str | None) -> None:
        process = self._processes.pop(package, None)
        if process is not None and process.alive:
            if why is not None:
                self._system_log(
                    Priority.INFO,
                    "ActivityManager",
                    f"Killing {process.pid}:{package}/{process.user_id_label} (adj 0): {why}",
                )
            process.kill()
        top_before = self.top_record
        doomed = [r for r in self._stack + self._pending if r.package == package]
        for record in doomed:
            record.dead = True
            record.state = LifecycleState.DESTROYED
            if record in self._stack:
                self._stack.remove(record)
            if record in self._pending:
                self._pending.remove(record)
        for record in doomed:
            caller = record.result_to
            if caller is not None and not caller.dead:
                # Android: the caller of a dead activity gets RESULT_CANCELED and no data.
                caller.pending_results.append(
                    ActivityResult(record.request_code, RESULT_CANCELED, None)
                )
        self._registered = [r for r in self._registered if r.process.package != package]
        if process is not None:
            self._emit(ActivityEvent("process_died", package, process.pid))
        if self._loop is not None and top_before is not None and top_before.dead:
            self._post(self._settle)

    # -- activities ---------------------------------------------------------------------------

    def start_activity(
        self,
        intent: Intent,
        *,
        caller: ActivityRecord | None = None,
        request_code: int = -1,
        calling_uid: int = SHELL_UID,
        calling_package: str | None = None,
    ) -> StartResult:
        """Resolve and start an activity. Raises ActivityNotFoundError or SecurityError at once,
        as ``startActivity`` throws; a result (``request_code >= 0``) goes to ``caller``."""
        self._require_running()
        intent = intent.copy()
        found = self.package_manager.query_intent_activities(intent)
        if not found:
            raise ActivityNotFoundError(intent)
        info = found[0].info
        assert isinstance(info, ActivityInfo)
        if len(found) > 1 and found[1].priority == found[0].priority:
            # A phone would show a chooser; a terminal has none: the first installed wins.
            self._system_log(
                Priority.WARN,
                "ActivityTaskManager",
                f"{len(found)} activities match {intent}; choosing {info.component.flatten_short()}",
            )
        self._check_access(info, calling_uid, f"starting {intent}")
        self._system_log(
            Priority.INFO,
            "ActivityTaskManager",
            f"START u0 {{{intent.to_short_string()}}} from uid {calling_uid}",
        )
        if self.package_manager.is_stopped(info.package):
            self.package_manager.set_stopped(info.package, False)
        record = ActivityRecord(
            token=next(self._tokens),
            info=info,
            intent=intent,
            result_to=caller if request_code >= 0 else None,
            request_code=request_code,
            launched_by_uid=calling_uid,
        )
        self._pending.append(record)
        self._post(lambda: self._launch(record))
        return StartResult(record)

    def _check_access(self, info: ActivityInfo | ReceiverInfo, calling_uid: int, what: str) -> None:
        owner = self.package_manager.uid_of(info.package)
        if info.exported or calling_uid in (ROOT_UID, SYSTEM_UID, owner):
            return
        raise SecurityError(
            f"Permission Denial: {what} from uid {calling_uid} not exported from uid {owner}"
        )

    def _launch(self, record: ActivityRecord) -> None:
        if record.dead:
            return
        previous = self.top_record
        if previous is not None and previous.state is LifecycleState.RESUMED:
            self._pause(previous)
        process, cold = self._ensure_process(
            record.package, f"activity {{{record.component.flatten()}}}"
        )
        if process is None or record.dead:
            return
        record.launch_state = "COLD" if cold else "WARM"
        record.process = process
        activity: Activity | None = None

        def instantiate() -> None:
            nonlocal activity
            activity = record.info.factory()

        if not self._call_app(process, instantiate) or activity is None:
            return
        self._pending.remove(record)
        activity._attach_context(self, process)
        activity._attach(record)
        record.activity = activity
        record.state = LifecycleState.CREATED
        self._stack.append(record)
        created = activity
        if not self._call_app(process, lambda: created.on_create(None)):
            return
        self._emit_record("created", record)
        if record.dead or record.finishing:
            return  # finish() in on_create: the queued finish destroys it without resuming
        self._resume(record)

    def _resume(self, record: ActivityRecord) -> None:
        activity = record.activity
        if activity is None or record.dead:
            return
        while record.pending_results:
            result = record.pending_results.pop(0)
            data = result.data.copy() if result.data is not None else None
            if not self._call_app(
                record.process,
                lambda r=result, d=data: activity.on_activity_result(  # type: ignore[misc]
                    r.request_code, r.result_code, d
                ),
            ):
                return
        record.state = LifecycleState.RESUMED
        if self._call_app(record.process, activity.on_resume):
            self._emit_record("resumed", record)

    def _pause(self, record: ActivityRecord) -> None:
        activity = record.activity
        if activity is None or record.dead:
            return
        record.state = LifecycleState.PAUSED
        if self._call_app(record.process, activity.on_pause):
            self._emit_record("paused", record)

    def finish_activity(self, record: ActivityRecord) -> None:
        if record.finishing or record.dead:
            return
        record.finishing = True
        if self._loop is None:
            return
        self._post(lambda: self._finish(record))

    def _finish(self, record: ActivityRecord) -> None:
        if record.dead or record.state is LifecycleState.DESTROYED or record not in self._stack:
            return
        was_top = record is self.top_record
        if record.state is LifecycleState.RESUMED:
            self._pause(record)
            if record.dead:
                return
        self._stack.remove(record)
        self._deliver_result_of(record)
        if was_top:
            new_top = self.top_record
            if new_top is not None and new_top.state is not LifecycleState.RESUMED:
                self._resume(new_top)
        record.state = LifecycleState.DESTROYED
        activity = record.activity
        if activity is not None and self._call_app(record.process, activity.on_destroy):
            self._emit_record("destroyed", record)

    def _deliver_result_of(self, record: ActivityRecord) -> None:
        caller = record.result_to
        if caller is None:
            return
        if caller.dead or caller.state is LifecycleState.DESTROYED:
            self._system_log(
                Priority.WARN,
                "ActivityTaskManager",
                f"Dropping result of {record.component.flatten_short()}: caller is gone",
            )
            return
        caller.pending_results.append(
            ActivityResult(record.request_code, record.result_code, record.result_data)
        )
        if caller.state is LifecycleState.RESUMED and caller.activity is not None:
            # Already in front (the callee finished from behind it): deliver now.
            activity = caller.activity
            while caller.pending_results and not caller.dead:
                result = caller.pending_results.pop(0)
                self._call_app(
                    caller.process,
                    lambda r=result: activity.on_activity_result(  # type: ignore[misc]
                        r.request_code, r.result_code, r.data
                    ),
                )

    # -- broadcasts ---------------------------------------------------------------------------

    def register_receiver(
        self, process: ProcessRecord, receiver: BroadcastReceiver, intent_filter: IntentFilter
    ) -> None:
        """A receiver registered at run time: lives as long as its process (or until
        unregistered) and never receives explicit (component) broadcasts."""
        if not process.alive:
            raise RuntimeError("a dead process cannot register receivers")
        self._registered.append(
            _Registered(receiver, intent_filter, process, next(self._registration_seq))
        )

    def unregister_receiver(self, receiver: BroadcastReceiver) -> None:
        before = len(self._registered)
        self._registered = [r for r in self._registered if r.receiver is not receiver]
        if len(self._registered) == before:
            raise ValueError(f"Receiver not registered: {receiver!r}")

    def send_broadcast(
        self, intent: Intent, *, calling_uid: int = SHELL_UID, calling_package: str | None = None
    ) -> asyncio.Task[BroadcastResult]:
        return self._start_broadcast(
            intent,
            ordered=False,
            calling_uid=calling_uid,
            result_receiver=None,
            initial=BroadcastResult(RESULT_CANCELED),
        )

    def send_ordered_broadcast(
        self,
        intent: Intent,
        *,
        result_receiver: Callable[[BroadcastResult], None] | None = None,
        initial_code: int = RESULT_CANCELED,
        initial_data: str | None = None,
        initial_extras: Bundle | None = None,
        calling_uid: int = SHELL_UID,
        calling_package: str | None = None,
    ) -> asyncio.Task[BroadcastResult]:
        """Deliver to one receiver at a time (highest priority first), each seeing and able to
        change the result; ``result_receiver`` gets the final result, as with Android's
        ``sendOrderedBroadcast``. The returned task resolves to the same final result."""
        return self._start_broadcast(
            intent,
            ordered=True,
            calling_uid=calling_uid,
            result_receiver=result_receiver,
            initial=BroadcastResult(
                initial_code,
                initial_data,
                initial_extras.copy() if initial_extras is not None else None,
            ),
        )

    async def broadcast(self, intent: Intent, *, calling_uid: int = SHELL_UID) -> BroadcastResult:
        """What ``am broadcast`` does: an ordered broadcast, waiting for its final result."""
        return await self.send_ordered_broadcast(intent, calling_uid=calling_uid)

    def _start_broadcast(
        self,
        intent: Intent,
        *,
        ordered: bool,
        calling_uid: int,
        result_receiver: Callable[[BroadcastResult], None] | None,
        initial: BroadcastResult,
    ) -> asyncio.Task[BroadcastResult]:
        loop = self._require_running()
        intent = intent.copy()
        targets = self._collect_receivers(intent, calling_uid, ordered)
        task = loop.create_task(
            self._dispatch(intent, targets, ordered, result_receiver, initial),
            name=f"broadcast {intent.action}",
        )
        self._broadcasts.add(task)
        task.add_done_callback(self._broadcasts.discard)
        return task

    def _collect_receivers(self, intent: Intent, calling_uid: int, ordered: bool) -> list[_Target]:
        include_stopped = _includes_stopped(intent)
        targets: list[_Target] = []
        for found in self.package_manager.query_broadcast_receivers(intent):
            info = found.info
            assert isinstance(info, ReceiverInfo)
            if self.package_manager.is_stopped(info.package) and not include_stopped:
                continue  # Android skips stopped packages silently
            try:
                self._check_access(info, calling_uid, f"broadcasting {intent}")
            except SecurityError as denial:
                self._system_log(Priority.WARN, "BroadcastQueue", str(denial))
                continue
            targets.append(_Target(found.priority, info.package, manifest=info))
        if intent.component is None:
            for registered in self._registered:
                if not registered.process.alive:
                    continue
                if intent.package not in (None, registered.process.package):
                    continue
                if registered.intent_filter.matches(intent):
                    targets.append(
                        _Target(
                            registered.intent_filter.priority,
                            registered.process.package,
                            registered=registered,
                        )
                    )
        if ordered:
            # Priority first; at equal priority registered receivers before manifest ones.
            targets.sort(key=lambda t: (-t.priority, t.manifest is not None))
        else:
            targets.sort(key=lambda t: t.manifest is not None)
        return targets

    async def _dispatch(
        self,
        intent: Intent,
        targets: list[_Target],
        ordered: bool,
        result_receiver: Callable[[BroadcastResult], None] | None,
        initial: BroadcastResult,
    ) -> BroadcastResult:
        result = initial
        for target in targets:
            if ordered and result.aborted:
                break
            if await self._deliver(intent, target, ordered, result):
                result.receivers += 1
        if result_receiver is not None:
            try:
                result_receiver(result)
            except Exception:
                self._system_log(
                    Priority.ERROR,
                    "BroadcastQueue",
                    "final result receiver failed\n" + traceback.format_exc(),
                )
        return result

    async def _deliver(
        self, intent: Intent, target: _Target, ordered: bool, result: BroadcastResult
    ) -> bool:
        """One receiver's turn; updates ``result`` (ordered). False if it never ran."""
        # One delivery at a time per app process, as Android's broadcast queue does: a
        # receiver holding a broadcast (go_async) delays the next broadcast to that app.
        lock = self._process_locks.setdefault(target.package, asyncio.Lock())
        async with lock:
            if self._loop is None:
                return False
            process: ProcessRecord | None
            receiver: BroadcastReceiver | None
            if target.manifest is not None:
                info = target.manifest
                if not self.package_manager.is_installed(info.package):
                    return False
                if self.package_manager.is_stopped(info.package) and not _includes_stopped(intent):
                    return False  # force-stopped while the broadcast waited for its turn
                process = self._run_main(
                    lambda: self._ensure_process(
                        info.package, f"broadcast {{{info.component.flatten()}}}"
                    )[0]
                )
                if process is None:
                    return False
                made: list[BroadcastReceiver] = []
                alive = process
                self._run_main(lambda: self._call_app(alive, lambda: made.append(info.factory())))
                if not made:
                    return False
                receiver = made[0]
            else:
                assert target.registered is not None
                process = target.registered.process
                receiver = target.registered.receiver
                if not process.alive or target.registered not in self._registered:
                    return False
            application = process.application
            assert application is not None
            delivery = Delivery(
                ordered=ordered,
                code=result.code,
                data=result.data,
                extras=result.extras,
                log=application.log,
            )
            receiver._begin(delivery)
            copy = intent.copy()
            running = process
            chosen = receiver
            received = self._run_main(
                lambda: self._call_app(running, lambda: chosen.on_receive(application, copy))
            )
            if not received:
                receiver._end()
                return False
            if delivery.async_started and not delivery.finished.is_set():
                timeout_s = (
                    self.foreground_broadcast_timeout_s
                    if intent.has_flag(FLAG_RECEIVER_FOREGROUND)
                    else self.broadcast_timeout_s
                )
                finished = await _wait_any(delivery.finished, process.death, timeout_s=timeout_s)
                if not finished or not process.alive:
                    delivery.abandoned = True
                    receiver._end()
                    if process.alive:
                        self._system_log(
                            Priority.WARN,
                            "BroadcastQueue",
                            f"Timeout of broadcast {intent} - receiver={target.label}, "
                            f"finished={timeout_s:g}s",
                        )
                        self._system_log(
                            Priority.ERROR,
                            "ActivityManager",
                            f"ANR in {process.package}\nPID: {process.pid}\n"
                            f"Reason: Broadcast of {intent}",
                        )
                    return True
            receiver._end()
            if ordered:
                result.code = delivery.code
                result.data = delivery.data
                result.extras = delivery.extras
                result.aborted = delivery.aborted
            return True

    async def idle(self) -> None:
        """Wait until no broadcast is in flight and the main queue is empty."""
        while self._broadcasts or self._queue:
            await asyncio.gather(*list(self._broadcasts), return_exceptions=True)
            await asyncio.sleep(0)

    # -- logging ------------------------------------------------------------------------------

    def _system_log(self, priority: Priority, tag: str, message: str) -> None:
        self.logcat.write(
            priority, tag, message, pid=self.system_pid, uid=SYSTEM_UID, buffer="system"
        )


def _includes_stopped(intent: Intent) -> bool:
    return intent.has_flag(FLAG_INCLUDE_STOPPED_PACKAGES) and not intent.has_flag(
        FLAG_EXCLUDE_STOPPED_PACKAGES
    )


async def _wait_any(*events: asyncio.Event, timeout_s: float) -> bool:
    """True when one of ``events`` is set within ``timeout_s``."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(
            waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        return bool(done)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
