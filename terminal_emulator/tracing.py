"""W3C trace context from the terminal: one trace per contract request, from the device on.

Each request the Credit Card App handles gets a trace id derived from the terminal and the
request id, so a retry of the same request (a lost answer, a force-stop and QUERY) joins the same
trace; the id is written to logcat next to the request id, and every call the request makes to
the backend carries it in ``traceparent``. A QA engineer holding a terminal's logcat can thus
open the backend's trace and log lines of the sale (docs/observability.md).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_NAMESPACE = uuid.UUID("6f1f4a2e-3c55-4b0e-9a55-6d7063000001")
_trace_id: ContextVar[str | None] = ContextVar("mpac_terminal_trace_id", default=None)


def request_trace_id(terminal_id: str, request_id: str) -> str:
    """32 lower-case hex digits, the same for every attempt of one request on one terminal."""
    return uuid.uuid5(_NAMESPACE, f"{terminal_id}:{request_id}").hex


@contextmanager
def traced_request(trace_id: str) -> Iterator[None]:
    """Calls to the backend made inside carry ``trace_id`` (in this task and those it starts)."""
    token = _trace_id.set(trace_id)
    try:
        yield
    finally:
        _trace_id.reset(token)


def outgoing_traceparent() -> str | None:
    """A ``traceparent`` for one outgoing call (a new span id each), or None outside a request."""
    trace_id = _trace_id.get()
    if trace_id is None:
        return None
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"
