"""The running platform's log records, formatted as the services format them (JSON lines)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from backend.observability.logs import ContextFilter, JsonFormatter
from backend.observability.middleware import ACCESS_LOGGER


class CapturedLogs:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def access_lines(self, service: str | None = None) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines()
            if line["logger"] == ACCESS_LOGGER and service in (None, line["service"])
        ]

    def access_line(self, request_id: str, *, timeout_s: float = 5.0) -> dict[str, Any]:
        """The access line of one request. It is written once the response has gone out (it
        times the whole exchange), so a client that has its answer may be a moment early."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [line for line in self.access_lines() if line.get("request_id") == request_id]
            if found:
                (line,) = found
                return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no access line for request {request_id}:\n{self.text}")
            time.sleep(0.02)


@contextmanager
def captured_service_logs() -> Iterator[CapturedLogs]:
    """Everything the in-process platform logs meanwhile, access lines included."""
    captured = CapturedLogs()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    access = logging.getLogger(ACCESS_LOGGER)
    previous = access.level, access.disabled
    access.setLevel(logging.INFO)
    # A dictConfig earlier in the session (locust's, in tests/loadtest) disables every logger
    # that existed then; the services' own configure_logging never does.
    access.disabled = False
    root.addHandler(handler)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        access.setLevel(previous[0])
        access.disabled = previous[1]
