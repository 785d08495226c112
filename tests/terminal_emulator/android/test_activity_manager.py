"""Activities: starting, lifecycle order, results, resolution errors, crashes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from terminal_emulator.android import (
    CATEGORY_DEFAULT,
    RESULT_CANCELED,
    RESULT_FIRST_USER,
    RESULT_OK,
    Activity,
    ActivityDeclaration,
    ActivityEvent,
    ActivityNotFoundError,
    Bundle,
    Device,
    DeviceNotRunningError,
    Intent,
    IntentFilter,
    LifecycleState,
    LogFilter,
    PackageManifest,
    SecurityError,
)

APP = "jp.mpac.test"
OTHER = "jp.mpac.other"


class Recorder(Activity):
    """Writes each callback to a shared list."""

    def __init__(self, events: list[str], name: str) -> None:
        super().__init__()
        self.events = events
        self.name = name
        self.results: list[tuple[int, int, Intent | None]] = []

    def on_create(self, saved_state: Bundle | None) -> None:
        self.events.append(f"{self.name}.create")

    def on_resume(self) -> None:
        self.events.append(f"{self.name}.resume")

    def on_pause(self) -> None:
        self.events.append(f"{self.name}.pause")

    def on_destroy(self) -> None:
        self.events.append(f"{self.name}.destroy")

    def on_activity_result(self, request_code: int, result_code: int, data: Intent | None) -> None:
        self.events.append(f"{self.name}.result({request_code},{result_code})")
        self.results.append((request_code, result_code, data))


class Finisher(Recorder):
    """Sets a result and finishes at once (like a translucent query activity)."""

    def on_create(self, saved_state: Bundle | None) -> None:
        super().on_create(saved_state)
        data = Intent()
        data.extras.put_string("echo", self.intent.extras.get_string("echo") or "")
        self.set_result(RESULT_OK, data)
        self.finish()


class Crasher(Recorder):
    def on_create(self, saved_state: Bundle | None) -> None:
        super().on_create(saved_state)
        raise RuntimeError("boom in on_create")


def _install(device: Device, events: list[str]) -> None:
    device.install(
        PackageManifest(
            package=APP,
            activities=(
                ActivityDeclaration(".A", lambda: Recorder(events, "A"), exported=True),
                ActivityDeclaration(".B", lambda: Recorder(events, "B"), exported=True),
                ActivityDeclaration(".Private", lambda: Recorder(events, "P"), exported=False),
            ),
        )
    )
    device.install(
        PackageManifest(
            package=OTHER,
            activities=(
                ActivityDeclaration(
                    ".Finisher",
                    lambda: Finisher(events, "F"),
                    intent_filters=(
                        IntentFilter.create(["jp.mpac.ECHO"], categories=[CATEGORY_DEFAULT]),
                    ),
                ),
                ActivityDeclaration(".Crasher", lambda: Crasher(events, "C"), exported=True),
            ),
        )
    )


def _start(device: Device, component: str) -> Recorder:
    activity = device.am.start_activity(Intent(component=component)).activity
    assert isinstance(activity, Recorder)
    return activity


def run(
    make_device: Callable[..., Device], scenario: Callable[[Device, list[str]], object]
) -> None:
    async def main() -> None:
        device = make_device()
        await device.start()
        events: list[str] = []
        _install(device, events)
        outcome = scenario(device, events)
        if asyncio.iscoroutine(outcome):
            await outcome
        await device.shutdown()

    asyncio.run(main())


def test_lifecycle_order_and_results(make_device: Callable[..., Device]) -> None:
    def scenario(device: Device, events: list[str]) -> None:
        a = _start(device, f"{APP}/.A")
        b_start = device.am.start_activity(
            Intent(component=f"{APP}/.B"), caller=a.record, request_code=5
        )
        b = b_start.activity
        assert isinstance(b, Recorder)
        assert events == ["A.create", "A.resume", "A.pause", "B.create", "B.resume"]
        assert b_start.launch_state == "WARM"
        assert b.calling_package == APP

        events.clear()
        data = Intent()
        data.extras.put_long("amount", 1200)
        b.set_result(RESULT_FIRST_USER + 2, data)
        b.finish()
        assert events == ["B.pause", "A.result(5,3)", "A.resume", "B.destroy"]
        assert a.results[0][2] == data
        assert b.state is LifecycleState.DESTROYED
        assert device.am.foreground_activity is a

    run(make_device, scenario)


def test_finish_without_result_is_canceled(make_device: Callable[..., Device]) -> None:
    def scenario(device: Device, events: list[str]) -> None:
        a = _start(device, f"{APP}/.A")
        a.start_activity_for_result(Intent(component=f"{APP}/.B"), 1)
        top = device.am.foreground_activity
        assert isinstance(top, Recorder)
        top.finish()
        assert a.results == [(1, RESULT_CANCELED, None)]

    run(make_device, scenario)


def test_finish_in_on_create_never_resumes(make_device: Callable[..., Device]) -> None:
    def scenario(device: Device, events: list[str]) -> None:
        a = _start(device, f"{APP}/.A")
        intent = Intent("jp.mpac.ECHO")  # implicit: resolved through the filter with DEFAULT
        intent.extras.put_string("echo", "ラーメン")
        a.start_activity_for_result(intent, 9)
        assert events == [
            "A.create",
            "A.resume",
            "A.pause",
            "F.create",
            "A.result(9,-1)",
            "A.resume",
            "F.destroy",
        ]
        _, _, data = a.results[0]
        assert data is not None
        assert data.extras.get_string("echo") == "ラーメン"

    run(make_device, scenario)


def test_calls_from_a_callback_run_after_it(make_device: Callable[..., Device]) -> None:
    def scenario(device: Device, events: list[str]) -> None:
        device.install(
            PackageManifest(
                package="jp.mpac.tramp",
                activities=(
                    ActivityDeclaration(".T", lambda: Trampoline(events, "T"), exported=True),
                    ActivityDeclaration(".B", lambda: Recorder(events, "B"), exported=True),
                ),
            )
        )
        device.am.start_activity(Intent(component="jp.mpac.tramp/.T"))
        assert events == ["T.create", "T queued B", "T.resume", "T.pause", "B.create", "B.resume"]

    run(make_device, scenario)


class Trampoline(Recorder):
    def on_create(self, saved_state: Bundle | None) -> None:
        super().on_create(saved_state)
        self.start_activity(Intent(component="jp.mpac.tramp/.B"))
        self.events.append("T queued B")


def test_resolution_errors(make_device: Callable[..., Device]) -> None:
    def scenario(device: Device, events: list[str]) -> None:
        with pytest.raises(
            ActivityNotFoundError, match=r"No Activity found to handle Intent \{ act=nothing \}"
        ):
            device.am.start_activity(Intent("nothing"))
        with pytest.raises(ActivityNotFoundError):
            device.am.start_activity(Intent(component=f"{APP}/.Missing"))
        with pytest.raises(
            SecurityError,
            match=r"Permission Denial: starting Intent .* from uid 2000 not exported from uid 10000",
        ):
            device.am.start_activity(Intent(component=f"{APP}/.Private"))
        # the app itself may start its private activity
        a = _start(device, f"{APP}/.A")
        a.start_activity(Intent(component=f"{APP}/.Private"))
        assert events[-2:] == ["P.create", "P.resume"]
        # another app may not
        device.install(
            PackageManifest(
                package="jp.mpac.third",
                activities=(
                    ActivityDeclaration(".X", lambda: Recorder(events, "X"), exported=True),
                ),
            )
        )
        third = _start(device, "jp.mpac.third/.X")
        with pytest.raises(SecurityError, match="from uid 10002 not exported from uid 10000"):
            third.start_activity(Intent(component=f"{APP}/.Private"))

    run(make_device, scenario)


def test_crash_in_on_create(make_device: Callable[..., Device]) -> None:
    def scenario(device: Device, events: list[str]) -> None:
        a = _start(device, f"{APP}/.A")
        a.start_activity_for_result(Intent(component=f"{OTHER}/.Crasher"), 3)
        assert a.results == [(3, RESULT_CANCELED, None)]
        assert device.am.foreground_activity is a
        assert device.am.process_of(OTHER) is None
        crash = device.logcat.dump(LogFilter.parse(["AndroidRuntime:E", "*:S"]), buffers=["crash"])
        assert crash[0].endswith("E AndroidRuntime: FATAL EXCEPTION: main")
        assert crash[1].endswith(f"E AndroidRuntime: Process: {OTHER}, PID: {_pid_in(crash[1])}")
        assert any("RuntimeError: boom in on_create" in line for line in crash)
        # the package is not "stopped" by a crash
        assert not device.pm.is_stopped(OTHER)

    run(make_device, scenario)


def _pid_in(line: str) -> str:
    return line.rsplit("PID: ", 1)[1]


def test_start_logs_and_launch_state(make_device: Callable[..., Device]) -> None:
    def scenario(device: Device, events: list[str]) -> None:
        first = device.am.start_activity(Intent(component=f"{APP}/.A"))
        second = device.am.start_activity(Intent(component=f"{APP}/.B"))
        assert (first.launch_state, second.launch_state) == ("COLD", "WARM")
        system = device.logcat.dump(buffers=["system"], fmt="tag")
        assert f"I/ActivityTaskManager: START u0 {{cmp={APP}/.A}} from uid 2000" in system
        process = device.am.process_of(APP)
        assert process is not None
        assert (
            f"I/ActivityManager: Start proc {process.pid}:{APP}/u0a0 for activity {{{APP}/{APP}.A}}"
            in system
        )

    run(make_device, scenario)


def test_listeners_hear_lifecycle_events(make_device: Callable[..., Device]) -> None:
    def scenario(device: Device, events: list[str]) -> None:
        heard: list[ActivityEvent] = []
        device.am.add_listener(heard.append)

        def broken(event: ActivityEvent) -> None:
            raise ZeroDivisionError

        device.am.add_listener(broken)  # a broken listener does not break the device
        a = _start(device, f"{APP}/.A")
        a.finish()
        device.am.force_stop(APP)
        kinds = [event.kind for event in heard]
        assert kinds == [
            "process_started",
            "created",
            "resumed",
            "paused",
            "destroyed",
            "process_died",
        ]
        assert any("listener failed" in line for line in device.logcat.dump(buffers=["system"]))

    run(make_device, scenario)


def test_not_running(make_device: Callable[..., Device]) -> None:
    device = make_device()
    with pytest.raises(DeviceNotRunningError):
        device.am.start_activity(Intent(component=f"{APP}/.A"))
