"""App processes: thread ids in logs, force-stop semantics, crashes of background work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from terminal_emulator.android import (
    Activity,
    ActivityDeclaration,
    Application,
    Bundle,
    Device,
    Intent,
    LogFilter,
    PackageManifest,
)

APP = "jp.mpac.proc"


class CountingApp(Application):
    """In-memory state (lost on kill) next to stored state (kept)."""

    def on_create(self) -> None:
        self.in_memory: list[str] = []
        self.log.i("CountingApp", "created")


class Worker(Activity):
    def on_create(self, saved_state: Bundle | None) -> None:
        self.log.i("Worker", "main thread")
        self.started = asyncio.Event()
        self.cancelled = False
        self.task = self.launch(self.work(), name="work")

    async def work(self) -> None:
        self.log.i("Worker", "background thread")
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def _manifest() -> PackageManifest:
    return PackageManifest(
        package=APP,
        application=CountingApp,
        activities=(ActivityDeclaration(".Worker", Worker, exported=True),),
    )


def _run(make_device: Callable[..., Device], scenario: Callable[[Device], object]) -> None:
    async def main() -> None:
        device = make_device()
        await device.start()
        device.install(_manifest())
        outcome = scenario(device)
        if asyncio.iscoroutine(outcome):
            await outcome
        await device.shutdown()

    asyncio.run(main())


def test_main_and_background_threads_have_their_tids(make_device: Callable[..., Device]) -> None:
    async def scenario(device: Device) -> None:
        worker = device.am.start_activity(Intent(component=f"{APP}/.Worker")).activity
        assert isinstance(worker, Worker)
        await worker.started.wait()
        entries = device.logcat.select(LogFilter.parse(["Worker", "*:S"]))
        main, background = entries
        assert main.pid == main.tid == worker.pid
        assert background.pid == worker.pid
        assert background.tid != background.pid

    _run(make_device, scenario)


def test_force_stop_cancels_work_and_forgets_memory_but_not_storage(
    make_device: Callable[..., Device],
) -> None:
    async def scenario(device: Device) -> None:
        worker = device.am.start_activity(Intent(component=f"{APP}/.Worker")).activity
        assert isinstance(worker, Worker)
        await worker.started.wait()
        app = worker.application
        assert isinstance(app, CountingApp)
        app.in_memory.append("unsaved")
        worker.get_shared_preferences("settings").put("saved", "yes")
        worker.open_database("db").put("k", "v")
        old_pid = worker.pid
        process = worker.process

        device.am.force_stop(APP)
        await asyncio.sleep(0)
        assert worker.task.cancelled()
        assert worker.cancelled
        assert not process.alive
        assert process.application is None
        assert device.am.activity_stack() == []
        system = device.logcat.dump(buffers=["system"], fmt="tag")
        assert (
            f"I/ActivityManager: Force stopping {APP} appid=10000 user=0: from pid {device.system_pid}"
            in system
        )
        assert (
            f"I/ActivityManager: Killing {old_pid}:{APP}/u0a0 (adj 0): stop {APP} due to from pid {device.system_pid}"
            in system
        )

        again = device.am.start_activity(Intent(component=f"{APP}/.Worker")).activity
        assert isinstance(again, Worker)
        assert again.pid != old_pid
        new_app = again.application
        assert isinstance(new_app, CountingApp)
        assert new_app.in_memory == []
        assert again.get_shared_preferences("settings").get("saved") == "yes"
        assert again.open_database("db").get("k") == "v"

    _run(make_device, scenario)


def test_killed_process_refuses_new_work(make_device: Callable[..., Device]) -> None:
    async def scenario(device: Device) -> None:
        worker = device.am.start_activity(Intent(component=f"{APP}/.Worker")).activity
        assert isinstance(worker, Worker)
        process = worker.process
        device.am.kill(APP)
        assert not device.pm.is_stopped(APP)  # a plain kill does not stop the package

        async def nothing() -> None:
            return None

        with pytest.raises(RuntimeError, match="is dead"):
            process.launch(nothing())
        with pytest.raises(RuntimeError, match="is dead"):
            process.database("db")

    _run(make_device, scenario)


def test_failing_background_work_crashes_the_process(make_device: Callable[..., Device]) -> None:
    async def scenario(device: Device) -> None:
        worker = device.am.start_activity(Intent(component=f"{APP}/.Worker")).activity
        assert isinstance(worker, Worker)

        async def fail() -> None:
            raise KeyError("lost")

        task = worker.launch(fail(), name="payment-thread")
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
        assert device.am.process_of(APP) is None
        crash = device.logcat.dump(buffers=["crash"], fmt="brief")
        assert crash[0].startswith("E/AndroidRuntime(")
        assert crash[0].endswith("FATAL EXCEPTION: payment-thread")
        assert any("KeyError: 'lost'" in line for line in crash)
        assert device.am.activity_stack() == []

    _run(make_device, scenario)


def test_shutdown_kills_everything(make_device: Callable[..., Device]) -> None:
    async def scenario() -> None:
        device = make_device()
        await device.start()
        device.install(_manifest())
        worker = device.am.start_activity(Intent(component=f"{APP}/.Worker")).activity
        assert isinstance(worker, Worker)
        await worker.started.wait()
        await device.shutdown()
        await asyncio.sleep(0)
        assert worker.task.cancelled()
        assert device.am.processes() == []
        assert device.properties.get("sys.boot_completed") == "0"

    asyncio.run(scenario())
