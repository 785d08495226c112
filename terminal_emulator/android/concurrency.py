"""Timeouts and cancellation for long operations (waiting for a card, calling the gateway).

Three ways an operation ends early, each with its own exception so callers can map it to a
contract result without guessing:

- its deadline passes → :class:`OperationTimeout` (a ``TimeoutError``);
- someone cancels it through a :class:`CancellationSignal` (the customer taps Cancel) →
  :class:`OperationCanceled`;
- its process is killed (``am force-stop``) → ``asyncio.CancelledError``, which app code must
  let through: the process is gone and nobody is left to handle a result.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class OperationCanceled(Exception):
    """Raised by :func:`run_with_timeout` and :meth:`CancellationSignal.throw_if_canceled`."""

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(reason or "operation canceled")


class OperationTimeout(TimeoutError):
    """The operation's deadline passed."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(f"operation timed out after {timeout_s:g} s")


class CancellationSignal:
    """Android's ``CancellationSignal``: one-shot, listeners run once, waitable from asyncio."""

    def __init__(self) -> None:
        self._canceled = False
        self._reason: str | None = None
        self._listeners: list[Callable[[], None]] = []
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def is_canceled(self) -> bool:
        return self._canceled

    @property
    def reason(self) -> str | None:
        return self._reason

    def cancel(self, reason: str | None = None) -> None:
        if self._canceled:
            return
        self._canceled = True
        self._reason = reason
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def set_on_cancel_listener(self, listener: Callable[[], None]) -> None:
        """Runs ``listener`` on cancel, or at once when already canceled."""
        if self._canceled:
            listener()
        else:
            self._listeners.append(listener)

    def throw_if_canceled(self) -> None:
        if self._canceled:
            raise OperationCanceled(self._reason)

    async def wait(self) -> None:
        if self._canceled:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


async def run_with_timeout(
    awaitable: Awaitable[T],
    *,
    timeout_s: float | None,
    cancel: CancellationSignal | None = None,
) -> T:
    """Await ``awaitable`` within ``timeout_s`` (None: no deadline), abandoning it on ``cancel``.

    The inner work is cancelled and awaited before :class:`OperationTimeout` or
    :class:`OperationCanceled` is raised, so nothing of it keeps running afterwards. If the
    caller itself is cancelled (its process was killed), the inner work is cancelled too and
    ``CancelledError`` propagates.
    """
    if cancel is not None and cancel.is_canceled:
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never started: no "was never awaited" warning
        raise OperationCanceled(cancel.reason)
    work: asyncio.Future[T] = asyncio.ensure_future(awaitable)
    waiting: list[asyncio.Future[Any]] = [work]
    if cancel is not None:
        waiting.append(asyncio.ensure_future(cancel.wait()))
    try:
        done, _ = await asyncio.wait(
            waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    except BaseException:
        await _abandon(waiting)
        raise
    if work in done:
        await _abandon(waiting[1:])
        return work.result()
    await _abandon(waiting)
    if cancel is not None and cancel.is_canceled:
        raise OperationCanceled(cancel.reason)
    assert timeout_s is not None
    raise OperationTimeout(timeout_s)


async def _abandon(futures: list[asyncio.Future[Any]]) -> None:
    """Cancel and await ``futures``; their outcome (failure or cancellation) is dropped."""
    for future in futures:
        future.cancel()
    if futures:
        await asyncio.gather(*futures, return_exceptions=True)
