"""The terminal's trace context: one trace id per request, stable across its attempts."""

from __future__ import annotations

import re

from terminal_emulator.tracing import outgoing_traceparent, request_trace_id, traced_request


def test_every_attempt_of_a_request_shares_its_trace_and_other_requests_do_not() -> None:
    first = request_trace_id("terminal-1", "req-1")

    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert request_trace_id("terminal-1", "req-1") == first
    assert request_trace_id("terminal-1", "req-2") != first
    assert request_trace_id("terminal-2", "req-1") != first


def test_calls_carry_a_traceparent_only_inside_a_request() -> None:
    assert outgoing_traceparent() is None
    trace_id = request_trace_id("terminal-1", "req-1")
    with traced_request(trace_id):
        one, two = outgoing_traceparent(), outgoing_traceparent()
    assert outgoing_traceparent() is None

    for header in (one, two):
        assert header is not None
        assert re.fullmatch(rf"00-{trace_id}-[0-9a-f]{{16}}-01", header)
    assert one != two  # a span id per call
