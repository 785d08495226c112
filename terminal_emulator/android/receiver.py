"""Broadcast receivers, ordered-broadcast results and ``goAsync``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from terminal_emulator.android.errors import IllegalStateError

if TYPE_CHECKING:
    from terminal_emulator.android.bundle import Bundle
    from terminal_emulator.android.context import Context, Log
    from terminal_emulator.android.intent import Intent


class Delivery:
    """One receiver's turn in a broadcast: the result it was given and the one it passes on."""

    def __init__(
        self,
        *,
        ordered: bool,
        code: int,
        data: str | None,
        extras: Bundle | None,
        log: Log | None = None,
    ) -> None:
        self.ordered = ordered
        self.code = code
        self.data = data
        self.extras = extras.copy() if extras is not None else None
        self.aborted = False
        self.async_started = False
        self.finished = asyncio.Event()
        self.abandoned = False  # timed out or process died: late changes are ignored
        self._log = log

    def check_result_allowed(self) -> bool:
        """Android logs and ignores result changes during a normal broadcast."""
        if self.ordered:
            return True
        if self._log is not None:
            self._log.e(
                "BroadcastReceiver",
                "BroadcastReceiver trying to return result during a non-ordered broadcast",
            )
        return False


class PendingResult:
    """What ``go_async`` returns: finish it (from any task of the app) to pass the result on."""

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery
        self._finished = False

    @property
    def result_code(self) -> int:
        return self._delivery.code

    @result_code.setter
    def result_code(self, code: int) -> None:
        if self._delivery.check_result_allowed():
            self._delivery.code = code

    @property
    def result_data(self) -> str | None:
        return self._delivery.data

    @result_data.setter
    def result_data(self, data: str | None) -> None:
        if self._delivery.check_result_allowed():
            self._delivery.data = data

    def get_result_extras(self, make_map: bool = False) -> Bundle | None:
        if self._delivery.extras is None and make_map:
            from terminal_emulator.android.bundle import Bundle

            self._delivery.extras = Bundle()
        return self._delivery.extras

    def set_result_extras(self, extras: Bundle | None) -> None:
        if self._delivery.check_result_allowed():
            self._delivery.extras = extras.copy() if extras is not None else None

    def set_result(self, code: int, data: str | None, extras: Bundle | None) -> None:
        if self._delivery.check_result_allowed():
            self._delivery.code = code
            self._delivery.data = data
            self._delivery.extras = extras.copy() if extras is not None else None

    def abort_broadcast(self) -> None:
        if self._delivery.check_result_allowed():
            self._delivery.aborted = True

    @property
    def abandoned(self) -> bool:
        """True when the broadcast moved on without this receiver (timeout, process death)."""
        return self._delivery.abandoned

    def finish(self) -> None:
        if self._finished:
            raise IllegalStateError("Broadcast already finished")
        self._finished = True
        self._delivery.finished.set()


class BroadcastReceiver:
    """Subclass and override ``on_receive``; manifest receivers get a new instance per broadcast.

    ``on_receive`` runs on the main queue and must return quickly. To answer later (an ordered
    broadcast that waits for a payment), call :meth:`go_async`, do the work in a task of the
    app (``context.launch``) and finish the :class:`PendingResult`; the broadcast waits for it
    up to the receiver timeout (10 s foreground, 60 s background), then moves on without it.
    """

    def __init__(self) -> None:
        self._delivery: Delivery | None = None
        self._pending: PendingResult | None = None

    def _begin(self, delivery: Delivery) -> None:
        self._delivery = delivery
        self._pending = None

    def _end(self) -> None:
        self._delivery = None
        self._pending = None

    def _current(self) -> Delivery:
        if self._delivery is None or self._pending is not None:
            raise IllegalStateError(
                "result calls are only valid inside on_receive (after go_async, use the PendingResult)"
            )
        return self._delivery

    def on_receive(self, context: Context, intent: Intent) -> None:
        raise NotImplementedError

    @property
    def is_ordered_broadcast(self) -> bool:
        return self._delivery is not None and self._delivery.ordered

    @property
    def result_code(self) -> int:
        return self._current().code

    @result_code.setter
    def result_code(self, code: int) -> None:
        delivery = self._current()
        if delivery.check_result_allowed():
            delivery.code = code

    @property
    def result_data(self) -> str | None:
        return self._current().data

    @result_data.setter
    def result_data(self, data: str | None) -> None:
        delivery = self._current()
        if delivery.check_result_allowed():
            delivery.data = data

    def get_result_extras(self, make_map: bool = False) -> Bundle | None:
        return PendingResult(self._current()).get_result_extras(make_map)

    def set_result_extras(self, extras: Bundle | None) -> None:
        PendingResult(self._current()).set_result_extras(extras)

    def set_result(self, code: int, data: str | None, extras: Bundle | None) -> None:
        PendingResult(self._current()).set_result(code, data, extras)

    def abort_broadcast(self) -> None:
        PendingResult(self._current()).abort_broadcast()

    def go_async(self) -> PendingResult:
        delivery = self._current()
        delivery.async_started = True
        self._pending = PendingResult(delivery)
        return self._pending
