"""Drivers of the app tests: fire contract intents at a running terminal and read answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from terminal_emulator.android import LogFilter
from terminal_emulator.contract import (
    RESULT_LOG_TAG,
    ContractRequest,
    QueryRequest,
    TransactionResult,
    parse_result_log_line,
    result_from_broadcast_output,
)
from terminal_emulator.terminal import EmulatedTerminal


async def broadcast(
    terminal: EmulatedTerminal, request: ContractRequest
) -> TransactionResult | None:
    """What ``am broadcast`` does, read back as ``result_from_broadcast_output`` reads it."""
    answer = await terminal.device.am.broadcast(request.to_intent(via="broadcast"))
    return result_from_broadcast_output(answer.am_output())


async def query(terminal: EmulatedTerminal, request_id: str) -> TransactionResult:
    result = await broadcast(terminal, QueryRequest(request_id=request_id))
    assert result is not None
    return result


async def via_activity(
    terminal: EmulatedTerminal, request: ContractRequest, timeout_s: float = 30
) -> TransactionResult:
    """``startActivityForResult`` from the Business App's activity; the result it got."""
    main = terminal.business_activity()
    assert main is not None
    before = len(main.results)
    main._send(request)
    await until(lambda: len(main.results) > before, timeout_s, what="activity result")
    return main.results[-1]


async def until(
    predicate: Callable[[], Any], timeout_s: float = 10.0, *, what: str = "condition"
) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def logged_results(terminal: EmulatedTerminal) -> list[TransactionResult]:
    lines = terminal.device.logcat.dump(LogFilter.parse([f"{RESULT_LOG_TAG}:I", "*:S"]))
    return [result for line in lines if (result := parse_result_log_line(line)) is not None]
