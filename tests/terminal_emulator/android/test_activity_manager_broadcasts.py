"""Broadcasts: ordered result passing, abort, final receiver, go_async and its timeout,
registered receivers, stopped packages, export rules, crashes, one-at-a-time per app."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from terminal_emulator.android import (
    FLAG_INCLUDE_STOPPED_PACKAGES,
    FLAG_RECEIVER_FOREGROUND,
    Activity,
    ActivityDeclaration,
    BroadcastReceiver,
    BroadcastResult,
    Bundle,
    Context,
    Device,
    Intent,
    IntentFilter,
    LogFilter,
    PackageManifest,
    ReceiverDeclaration,
)

PING = "jp.mpac.test.PING"


class Step(BroadcastReceiver):
    """Appends its name to the result data and counts up the result code."""

    def __init__(self, name: str, seen: list[str], *, abort: bool = False) -> None:
        super().__init__()
        self.name = name
        self.seen = seen
        self.abort = abort

    def on_receive(self, context: Context, intent: Intent) -> None:
        self.seen.append(f"{self.name}:{self.result_code}:{self.result_data}")
        self.result_code = self.result_code + 1
        self.result_data = (self.result_data or "") + self.name
        extras = self.get_result_extras(make_map=True)
        assert extras is not None
        extras.put_string(self.name, context.package_name)
        if self.abort:
            self.abort_broadcast()


class Slow(BroadcastReceiver):
    """Holds the broadcast with go_async until ``release`` is set."""

    def __init__(self, release: asyncio.Event) -> None:
        super().__init__()
        self.release = release

    def on_receive(self, context: Context, intent: Intent) -> None:
        pending = self.go_async()

        async def later() -> None:
            await self.release.wait()
            pending.set_result(42, "slow done", Bundle().put_boolean("late", True))
            pending.finish()

        context.launch(later())


class Crashing(BroadcastReceiver):
    def on_receive(self, context: Context, intent: Intent) -> None:
        raise ValueError("receiver bug")


def _receiver_app(
    package: str,
    factory: Callable[[], BroadcastReceiver],
    *,
    priority: int = 0,
    exported: bool | None = None,
) -> PackageManifest:
    return PackageManifest(
        package=package,
        receivers=(
            ReceiverDeclaration(
                ".R",
                factory,
                intent_filters=(IntentFilter.create([PING], priority=priority),),
                exported=exported,
            ),
        ),
        activities=(ActivityDeclaration(".Main", Activity, exported=True),),
    )


def run(
    make_device: Callable[..., Device], scenario: Callable[[Device], Coroutine[Any, Any, None]]
) -> None:
    async def main() -> None:
        device = make_device(broadcast_timeout_s=0.2, foreground_broadcast_timeout_s=0.1)
        await device.start()
        await scenario(device)
        await device.shutdown()

    asyncio.run(main())


def test_ordered_broadcast_passes_results_by_priority(make_device: Callable[..., Device]) -> None:
    async def scenario(device: Device) -> None:
        seen: list[str] = []
        device.install(_receiver_app("jp.mpac.low", lambda: Step("L", seen), priority=-5))
        device.install(_receiver_app("jp.mpac.high", lambda: Step("H", seen), priority=100))
        device.install(_receiver_app("jp.mpac.mid", lambda: Step("M", seen)))
        finals: list[BroadcastResult] = []
        result = await device.am.send_ordered_broadcast(
            Intent(PING), result_receiver=finals.append, initial_code=10, initial_data="start:"
        )
        assert seen == ["H:10:start:", "M:11:start:H", "L:12:start:HM"]
        assert (result.code, result.data, result.receivers) == (13, "start:HML", 3)
        assert result.extras is not None
        assert result.extras.to_android_string() == (
            "Bundle[{H=jp.mpac.high, L=jp.mpac.low, M=jp.mpac.mid}]"
        )
        assert finals == [result]
        assert result.am_output() == (
            'Broadcast completed: result=13, data="start:HML", extras: '
            "Bundle[{H=jp.mpac.high, L=jp.mpac.low, M=jp.mpac.mid}]"
        )

    run(make_device, scenario)


def test_abort_stops_the_chain_but_the_final_receiver_still_hears(
    make_device: Callable[..., Device],
) -> None:
    async def scenario(device: Device) -> None:
        seen: list[str] = []
        device.install(
            _receiver_app("jp.mpac.first", lambda: Step("A", seen, abort=True), priority=1)
        )
        device.install(_receiver_app("jp.mpac.second", lambda: Step("B", seen)))
        finals: list[BroadcastResult] = []
        result = await device.am.send_ordered_broadcast(Intent(PING), result_receiver=finals.append)
        assert seen == ["A:0:None"]
        assert result.aborted
        assert finals[0].data == "A"

    run(make_device, scenario)


def test_am_broadcast_with_no_receiver(make_device: Callable[..., Device]) -> None:
    async def scenario(device: Device) -> None:
        result = await device.am.broadcast(Intent("jp.mpac.NOBODY"))
        assert result.am_output() == "Broadcast completed: result=0"
        assert result.receivers == 0

    run(make_device, scenario)


def test_normal_broadcast_reaches_all_and_refuses_results(
    make_device: Callable[..., Device],
) -> None:
    async def scenario(device: Device) -> None:
        seen: list[str] = []
        device.install(_receiver_app("jp.mpac.one", lambda: Step("1", seen)))
        device.install(_receiver_app("jp.mpac.two", lambda: Step("2", seen)))
        result = await device.am.send_broadcast(Intent(PING))
        assert sorted(seen) == ["1:0:None", "2:0:None"]  # each sees the initial result
        assert (result.code, result.data) == (0, None)
        errors = device.logcat.dump(LogFilter.parse(["BroadcastReceiver:E", "*:S"]))
        assert any(
            "trying to return result during a non-ordered broadcast" in line for line in errors
        )

    run(make_device, scenario)


def test_registered_receivers(make_device: Callable[..., Device]) -> None:
    async def scenario(device: Device) -> None:
        seen: list[str] = []
        device.install(
            PackageManifest(
                package="jp.mpac.dyn",
                activities=(ActivityDeclaration(".Main", Activity, exported=True),),
            )
        )
        activity = device.am.start_activity(Intent(component="jp.mpac.dyn/.Main")).activity
        assert activity is not None
        receiver = Step("D", seen)
        activity.register_receiver(receiver, IntentFilter.create([PING], priority=5))
        device.install(_receiver_app("jp.mpac.man", lambda: Step("M", seen), priority=5))

        result = await device.am.broadcast(Intent(PING))
        # equal priority: the registered receiver goes first
        assert seen == ["D:0:None", "M:1:D"]
        assert result.data == "DM"
        # explicit broadcasts never reach registered receivers
        seen.clear()
        await device.am.broadcast(Intent(PING, component="jp.mpac.man/.R"))
        assert seen == ["M:0:None"]
        # gone with the process
        seen.clear()
        device.am.force_stop("jp.mpac.dyn")
        await device.am.broadcast(Intent(PING))
        assert seen == ["M:0:None"]
        activity2 = device.am.start_activity(Intent(component="jp.mpac.dyn/.Main")).activity
        assert activity2 is not None
        receiver2 = Step("E", seen)
        activity2.register_receiver(receiver2, IntentFilter.create([PING]))
        activity2.unregister_receiver(receiver2)

    run(make_device, scenario)


def test_go_async_holds_the_broadcast_until_finished(make_device: Callable[..., Device]) -> None:
    async def scenario(device: Device) -> None:
        release = asyncio.Event()
        seen: list[str] = []
        device.install(_receiver_app("jp.mpac.slow", lambda: Slow(release), priority=1))
        device.install(_receiver_app("jp.mpac.after", lambda: Step("A", seen)))
        task = device.am.send_ordered_broadcast(Intent(PING))
        await asyncio.sleep(0.05)
        assert not task.done()
        assert seen == []
        release.set()
        result = await task
        assert seen == ["A:42:slow done"]
        assert result.extras is not None
        assert result.extras.get_boolean("late")

    run(make_device, scenario)


def test_go_async_timeout_moves_on_and_reports_anr(make_device: Callable[..., Device]) -> None:
    async def scenario(device: Device) -> None:
        seen: list[str] = []
        device.install(_receiver_app("jp.mpac.slow", lambda: Slow(asyncio.Event()), priority=1))
        device.install(_receiver_app("jp.mpac.after", lambda: Step("A", seen)))
        result = await asyncio.wait_for(
            device.am.broadcast(Intent(PING, flags=FLAG_RECEIVER_FOREGROUND)), 2
        )
        assert seen == ["A:0:None"]  # the slow receiver's late answer is dropped
        assert result.data == "A"
        system = device.logcat.dump(buffers=["system"], fmt="tag")
        assert any(
            "W/BroadcastQueue: Timeout of broadcast" in line and "finished=0.1s" in line
            for line in system
        )
        assert "E/ActivityManager: ANR in jp.mpac.slow" in system

    run(make_device, scenario)


def test_process_killed_while_holding_moves_on(make_device: Callable[..., Device]) -> None:
    async def scenario(device: Device) -> None:
        seen: list[str] = []
        device.install(_receiver_app("jp.mpac.slow", lambda: Slow(asyncio.Event()), priority=1))
        device.install(_receiver_app("jp.mpac.after", lambda: Step("A", seen)))
        task = device.am.broadcast(Intent(PING))
        pending = asyncio.ensure_future(task)
        await asyncio.sleep(0.01)
        device.am.force_stop("jp.mpac.slow")
        result = await asyncio.wait_for(pending, 1)
        assert seen == ["A:0:None"]
        assert result.code == 1

    run(make_device, scenario)


def test_stopped_packages_need_the_include_flag(make_device: Callable[..., Device]) -> None:
    async def scenario(device: Device) -> None:
        seen: list[str] = []
        device.install(_receiver_app("jp.mpac.app", lambda: Step("S", seen)))
        device.am.force_stop("jp.mpac.app")
        assert (await device.am.broadcast(Intent(PING))).receivers == 0
        assert seen == []
        assert (
            await device.am.broadcast(Intent(PING, flags=FLAG_INCLUDE_STOPPED_PACKAGES))
        ).receivers == 1
        assert device.pm.is_stopped("jp.mpac.app")  # a broadcast does not un-stop it
        device.am.start_activity(Intent(component="jp.mpac.app/.Main"))
        assert not device.pm.is_stopped("jp.mpac.app")
        assert (await device.am.broadcast(Intent(PING))).receivers == 1

    run(make_device, scenario)


def test_non_exported_receiver_is_skipped_for_the_shell(make_device: Callable[..., Device]) -> None:
    async def scenario(device: Device) -> None:
        seen: list[str] = []
        device.install(_receiver_app("jp.mpac.private", lambda: Step("P", seen), exported=False))
        result = await device.am.broadcast(Intent(PING, component="jp.mpac.private/.R"))
        assert result.receivers == 0
        assert any(
            "Permission Denial: broadcasting Intent" in line
            for line in device.logcat.dump(buffers=["system"])
        )

    run(make_device, scenario)


def test_receiver_crash_kills_its_app_and_the_broadcast_goes_on(
    make_device: Callable[..., Device],
) -> None:
    async def scenario(device: Device) -> None:
        seen: list[str] = []
        device.install(_receiver_app("jp.mpac.bad", Crashing, priority=1))
        device.install(_receiver_app("jp.mpac.good", lambda: Step("G", seen)))
        result = await device.am.broadcast(Intent(PING))
        assert seen == ["G:0:None"]
        assert result.receivers == 1
        assert device.am.process_of("jp.mpac.bad") is None
        crash = device.logcat.dump(buffers=["crash"])
        assert any("ValueError: receiver bug" in line for line in crash)

    run(make_device, scenario)


def test_one_broadcast_at_a_time_per_app(make_device: Callable[..., Device]) -> None:
    async def scenario(device: Device) -> None:
        release = asyncio.Event()
        device.install(_receiver_app("jp.mpac.slow", lambda: Slow(release)))
        first = device.am.broadcast(Intent(PING))
        second = device.am.broadcast(Intent(PING))
        first_task = asyncio.ensure_future(first)
        second_task = asyncio.ensure_future(second)
        await asyncio.sleep(0.05)
        assert not first_task.done()
        assert not second_task.done()  # waits behind the held one
        release.set()
        assert (await first_task).code == 42
        assert (await second_task).code == 42

    run(make_device, scenario)
