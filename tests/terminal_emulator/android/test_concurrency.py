"""Timeouts and cancellation of long operations."""

from __future__ import annotations

import asyncio

import pytest

from terminal_emulator.android.concurrency import (
    CancellationSignal,
    OperationCanceled,
    OperationTimeout,
    run_with_timeout,
)


async def _value(delay: float, value: str = "done") -> str:
    await asyncio.sleep(delay)
    return value


def test_returns_in_time() -> None:
    assert asyncio.run(run_with_timeout(_value(0), timeout_s=1)) == "done"
    assert (
        asyncio.run(run_with_timeout(_value(0), timeout_s=None, cancel=CancellationSignal()))
        == "done"
    )


def test_timeout_cancels_the_work() -> None:
    async def scenario() -> None:
        cancelled = asyncio.Event()

        async def slow() -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        with pytest.raises(OperationTimeout, match=r"timed out after 0\.01 s") as caught:
            await run_with_timeout(slow(), timeout_s=0.01)
        assert isinstance(caught.value, TimeoutError)
        assert cancelled.is_set()

    asyncio.run(scenario())


def test_cancel_signal() -> None:
    async def scenario() -> None:
        signal = CancellationSignal()
        heard: list[str] = []
        signal.set_on_cancel_listener(lambda: heard.append("listener"))
        asyncio.get_running_loop().call_later(0.01, signal.cancel, "customer tapped cancel")
        with pytest.raises(OperationCanceled, match="customer tapped cancel"):
            await run_with_timeout(_value(10), timeout_s=5, cancel=signal)
        signal.cancel("again")  # one-shot
        assert heard == ["listener"]
        assert signal.reason == "customer tapped cancel"
        signal.set_on_cancel_listener(lambda: heard.append("late"))  # runs at once
        assert heard == ["listener", "late"]
        with pytest.raises(OperationCanceled):
            signal.throw_if_canceled()
        await signal.wait()  # already canceled: returns
        with pytest.raises(OperationCanceled):
            await run_with_timeout(_value(0), timeout_s=1, cancel=signal)

    asyncio.run(scenario())


def test_errors_of_the_work_propagate() -> None:
    async def fail() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        asyncio.run(run_with_timeout(fail(), timeout_s=1, cancel=CancellationSignal()))


def test_caller_cancellation_reaches_the_work() -> None:
    async def scenario() -> None:
        cancelled = asyncio.Event()

        async def slow() -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        outer = asyncio.ensure_future(
            run_with_timeout(slow(), timeout_s=5, cancel=CancellationSignal())
        )
        await asyncio.sleep(0.01)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        assert cancelled.is_set()

    asyncio.run(scenario())
