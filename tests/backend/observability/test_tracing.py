"""One trace across processes: a terminal pays a tab part; smarttab -> pgw -> provider, and the
WebSocket push of the result, all in one trace exported over OTLP/HTTP to a real receiver.

Every service runs as its own ``mpac serve`` process (as deployed), exporting on its own; the
spans meet in the sink by trace id, which only happens if ``traceparent`` crossed each hop:
the HMAC-signed call, the provider call and the push to the device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.core.settings import Settings
from backend.observability.otlp_sink import OtlpSink, ReceivedSpan, render_trace
from backend.observability.tracing import otlp_traces_endpoint
from loadtest.bench_platform import BenchPlatform, bench_platform
from tests.support.pgw import PayingTerminal, paying_terminal
from tests.support.realtime import open_stream
from tests.support.smarttab import Tabs, card, item

PAY_ROUTE = "/v1/tabs/{tab_id}/parts/{number}/pay"


@pytest.fixture(scope="module")
def sink() -> Iterator[OtlpSink]:
    with OtlpSink() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def traced_platform(test_settings: Settings, sink: OtlpSink) -> Iterator[BenchPlatform]:
    """The four services as processes on the session's database, exporting to ``sink``."""
    with bench_platform(
        database_url=test_settings.database_url,
        redis_url=test_settings.redis_url,
        settings_overrides={
            "otlp_endpoint": sink.endpoint,
            # The session's keys: both platforms share one database and its encrypted columns.
            "field_encryption_keys": test_settings.field_encryption_keys,
            "s2s_keys": test_settings.s2s_keys,
            "outbox_relay_interval_s": 0.1,
            "password_hash_time_cost": 1,
            "password_hash_memory_kib": 8192,
        },
    ) as platform:
        yield platform


@pytest.fixture
def terminal(traced_platform: BenchPlatform) -> Iterator[PayingTerminal]:
    with httpx.Client(base_url=traced_platform.url_of("portal"), timeout=30) as portal:
        yield paying_terminal(traced_platform.settings, portal)


def _one(spans: list[ReceivedSpan], **where: object) -> ReceivedSpan:
    found = [
        span
        for span in spans
        if all(
            getattr(span, key) == value if hasattr(span, key) else span.attributes.get(key) == value
            for key, value in where.items()
        )
    ]
    assert len(found) == 1, f"{where}: {[(s.service_name, s.name) for s in spans]}"
    return found[0]


def test_a_tab_payment_is_one_trace_from_smarttab_through_pgw_to_the_device(
    traced_platform: BenchPlatform, terminal: PayingTerminal, sink: OtlpSink
) -> None:
    smarttab_url = traced_platform.url_of("smarttab")
    with (
        httpx.Client(base_url=smarttab_url, timeout=30) as smarttab,
        httpx.Client(base_url=traced_platform.url_of("portal"), timeout=30) as portal,
        open_stream(smarttab_url, terminal.terminal.fresh_token(portal)) as device,
    ):
        tabs = Tabs(smarttab, terminal.headers)
        tab = tabs.split_ok(tabs.tab_with(item("Ramen", 1200)), mode="equal", count=1)
        paid = tabs.pay(tab, 1, card())
        assert paid.status_code == 200, paid.text
        pushed = [event for event in device.events(6, timeout=10) if "traceparent" in event]

    def payment_trace(spans: list[ReceivedSpan]) -> bool:
        roots = [s for s in spans if s.attributes.get("http.route") == PAY_ROUTE]
        if not roots:
            return False
        trace = [s for s in spans if s.trace_id == roots[0].trace_id]
        services = {s.service_name for s in trace}
        pushes = [s for s in trace if s.kind == "PRODUCER"]
        return {"mpac-smarttab", "mpac-pgw", "mpac-provider"} <= services and bool(pushes)

    spans = sink.wait_for(payment_trace, timeout_s=20)
    root = _one(spans, **{"http.route": PAY_ROUTE})
    trace = [span for span in spans if span.trace_id == root.trace_id]
    print("\n" + render_trace(trace))
    artifacts = os.environ.get("MPAC_ARTIFACTS_DIR")
    if artifacts:
        (Path(artifacts) / "traces").mkdir(parents=True, exist_ok=True)
        (Path(artifacts) / "traces" / "tab-payment.txt").write_text(render_trace(trace))

    # smarttab's handler is the root: the device sent no traceparent.
    assert root.service_name == "mpac-smarttab"
    assert root.kind == "SERVER"
    assert root.parent_span_id is None
    assert root.attributes["mpac.store_id"] == terminal.tenant.store_a_id
    # Its signed call to pgw, and pgw's handling of it as that call's child.
    call = _one(trace, service_name="mpac-smarttab", kind="CLIENT", **{"peer.service": "mpac-pgw"})
    assert call.parent_span_id == root.span_id
    handled = _one(trace, service_name="mpac-pgw", kind="SERVER", **{"http.route": "/v1/payments"})
    assert handled.parent_span_id == call.span_id
    assert handled.attributes["http.response.status_code"] == 201
    # pgw -> provider, in the same trace.
    provider_calls = [s for s in trace if s.service_name == "mpac-pgw" and s.kind == "CLIENT"]
    provider_spans = [s for s in trace if s.service_name == "mpac-provider" and s.kind == "SERVER"]
    assert provider_calls
    assert provider_spans
    assert {s.parent_span_id for s in provider_spans} <= {s.span_id for s in provider_calls}
    # The push of the tab's change to the store's devices continues the trace ...
    pushes = [s for s in trace if s.kind == "PRODUCER"]
    assert {s.service_name for s in pushes} == {"mpac-smarttab"}
    assert {s.attributes["mpac.recipients"] for s in pushes} == {1}
    # ... and the device received that event with the trace context (each earlier change of the
    # tab, made by requests of its own, came with the trace of its own request).
    of_payment = [e for e in pushed if e["traceparent"].split("-")[1] == root.trace_id]
    assert of_payment
    assert [e["seq"] for e in of_payment] == sorted(s.attributes["mpac.event_seq"] for s in pushes)
    assert all(e["seq"] < of_payment[0]["seq"] for e in pushed if e not in of_payment)


def test_export_is_off_unless_an_endpoint_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(otlp_endpoint="")

    assert otlp_traces_endpoint(settings) == ""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert otlp_traces_endpoint(settings) == "http://collector:4318/v1/traces"
    # The signal-specific variable is used as given, as the OTLP exporter does.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://tempo:4318/otlp/v1/traces")
    assert otlp_traces_endpoint(settings) == "http://tempo:4318/otlp/v1/traces"
    # MPAC_OTLP_ENDPOINT wins over both.
    mine = Settings(otlp_endpoint="http://127.0.0.1:4318")
    assert otlp_traces_endpoint(mine) == "http://127.0.0.1:4318/v1/traces"
