"""API fuzzing of every service's OpenAPI with each kind of credential (docs/testing-fuzz.md).

Each test fuzzes one service with one credential (``runner.run_fuzz``); the terminal
summary prints one line per run and the totals (requests, failures).
"""

from __future__ import annotations

import pytest

from tests.fuzz.runner import RESULTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    terminalreporter.section("API fuzzing")
    for result in RESULTS:
        terminalreporter.write_line(result.summary())
    requests = sum(result.requests for result in RESULTS)
    failures = sum(len(result.failures) for result in RESULTS)
    seconds = sum(result.seconds for result in RESULTS)
    terminalreporter.write_line(
        f"fuzz total: {len(RESULTS)} runs, {requests} requests, {failures} failures "
        f"in {seconds:.1f} s"
    )
