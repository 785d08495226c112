"""The OTLP/HTTP trace sink over real HTTP, fed by the real OpenTelemetry SDK and exporter."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from backend.observability.otlp_sink import (
    OtlpSink,
    ReceivedSpan,
    add_arguments,
    cmd_otlp_sink,
    render_trace,
    run_sink,
)

pytestmark = pytest.mark.timeout(60)

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}

# An OTLP JSON request as a non-Python sender writes it: hex ids (any case), integer enums,
# 64-bit integers as strings, and a field this receiver does not know.
OTLP_JSON = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "mpac-portal"}}]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "curl-by-hand"},
                    "spans": [
                        {
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "spanId": "EEE19B7EC3C1B174",
                            "parentSpanId": "",
                            "name": "GET /v1/merchants",
                            "kind": 2,
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "attributes": [
                                {"key": "http.request.method", "value": {"stringValue": "GET"}},
                                {
                                    "key": "http.response.status_code",
                                    "value": {"intValue": "503"},
                                },
                                {"key": "retry", "value": {"boolValue": True}},
                                {
                                    "key": "shards",
                                    "value": {
                                        "arrayValue": {
                                            "values": [{"intValue": 1}, {"doubleValue": 2.5}]
                                        }
                                    },
                                },
                            ],
                            "events": [
                                {
                                    "timeUnixNano": "1544712660500000000",
                                    "name": "pool exhausted",
                                    "attributes": [
                                        {"key": "pool.size", "value": {"intValue": "10"}}
                                    ],
                                }
                            ],
                            "status": {"code": 2, "message": "database busy"},
                            "someFieldFromTheFuture": {"x": 1},
                        }
                    ],
                }
            ],
        }
    ]
}


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    with OtlpSink() as running:
        yield running


def _provider(service: str, exporter: OTLPSpanExporter) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _sends(sink: OtlpSink, compression: Compression = Compression.NoCompression) -> None:
    """One CLIENT span of "mpac-smarttab", exported and flushed."""
    provider = _provider(
        "mpac-smarttab", OTLPSpanExporter(endpoint=sink.traces_endpoint, compression=compression)
    )
    try:
        with provider.get_tracer("test").start_as_current_span("POST", kind=SpanKind.CLIENT):
            pass
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()


def test_a_trace_across_two_services_arrives_as_one_tree(sink: OtlpSink) -> None:
    propagator = TraceContextTextMapPropagator()
    smarttab = _provider("mpac-smarttab", OTLPSpanExporter(endpoint=sink.endpoint + "/v1/traces"))
    pgw = _provider("mpac-pgw", OTLPSpanExporter(endpoint=sink.endpoint + "/v1/traces"))
    try:
        smarttab_tracer = smarttab.get_tracer("mpac.smarttab")
        pgw_tracer = pgw.get_tracer("mpac.pgw")
        with (
            smarttab_tracer.start_as_current_span(
                "POST /v1/tabs/{tab_id}/payments",
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": "POST",
                    "http.route": "/v1/tabs/{tab_id}/payments",
                    "http.response.status_code": 502,
                },
            ) as request_span,
            smarttab_tracer.start_as_current_span(
                "POST", kind=SpanKind.CLIENT, attributes={"http.request.method": "POST"}
            ) as call_span,
        ):
            # The HTTP hop: headers out of smarttab, into pgw.
            headers: dict[str, str] = {}
            propagator.inject(headers, context=set_span_in_context(call_span))
            assert "traceparent" in headers
            with pgw_tracer.start_as_current_span(
                "POST /v1/payments",
                context=propagator.extract(headers),
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": "POST",
                    "http.route": "/v1/payments",
                    "http.response.status_code": 500,
                },
            ) as pgw_span:
                pgw_span.set_status(StatusCode.ERROR, "acquirer timeout")
                pgw_span.add_event("acquirer.retry", {"attempt": 2})
        assert pgw.force_flush(10_000)
        assert smarttab.force_flush(10_000)
    finally:
        pgw.shutdown()
        smarttab.shutdown()

    spans = sink.wait_for(lambda spans: len(spans) == 3)
    traces = sink.traces()
    assert len(traces) == 1
    (trace_id, trace) = next(iter(traces.items()))
    assert trace_id == format(request_span.get_span_context().trace_id, "032x")
    by_name = {span.name: span for span in trace}
    root = by_name["POST /v1/tabs/{tab_id}/payments"]
    call = by_name["POST"]
    served = by_name["POST /v1/payments"]

    assert root.parent_span_id is None
    assert root.service_name == "mpac-smarttab"
    assert root.kind == "SERVER"
    assert root.attributes["http.response.status_code"] == 502
    assert call.parent_span_id == root.span_id
    assert call.kind == "CLIENT"
    assert served.parent_span_id == call.span_id
    assert served.span_id == format(pgw_span.get_span_context().span_id, "016x")
    assert served.service_name == "mpac-pgw"
    assert served.scope_name == "mpac.pgw"
    assert served.status_code == "ERROR"
    assert served.status_message == "acquirer timeout"
    assert [(e.name, e.attributes) for e in served.events] == [("acquirer.retry", {"attempt": 2})]
    assert served.resource_attributes["telemetry.sdk.language"] == "python"
    assert root.start_ns <= call.start_ns <= served.start_ns <= served.end_ns <= root.end_ns
    assert sorted(spans, key=lambda s: s.start_ns) == trace

    lines = render_trace(spans).splitlines()
    assert lines[0].startswith(f"trace {trace_id}  3 spans  ")
    assert lines[1].startswith("mpac-smarttab  POST /v1/tabs/{tab_id}/payments  SERVER  ")
    assert "http.route=/v1/tabs/{tab_id}/payments" in lines[1]
    assert "http.response.status_code=502" in lines[1]
    assert lines[2].startswith("└─ mpac-smarttab  POST  CLIENT  ")
    assert lines[3].startswith("   └─ mpac-pgw  POST /v1/payments  SERVER  ")
    assert lines[3].endswith("http.response.status_code=500  ERROR: acquirer timeout")
    assert len(lines) == 4


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.Deflate])
def test_compressed_exports_are_accepted(sink: OtlpSink, compression: Compression) -> None:
    _sends(sink, compression)

    (span,) = sink.wait_for(lambda spans: len(spans) == 1)
    assert (span.service_name, span.name, span.kind) == ("mpac-smarttab", "POST", "CLIENT")


def test_a_gzipped_body_is_decompressed(sink: OtlpSink) -> None:
    body = gzip.compress(json.dumps(OTLP_JSON).encode())

    response = httpx.post(
        sink.traces_endpoint, content=body, headers={**JSON, "Content-Encoding": "gzip"}
    )

    assert response.status_code == 200
    assert [span.name for span in sink.spans()] == ["GET /v1/merchants"]


def test_otlp_json_is_accepted_and_answered_in_json(sink: OtlpSink) -> None:
    response = httpx.post(sink.traces_endpoint, json=OTLP_JSON)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {}
    (span,) = sink.spans()
    assert span.trace_id == "5b8efff798038103d269b633813fc60c"
    assert span.span_id == "eee19b7ec3c1b174"
    assert span.parent_span_id is None
    assert (span.service_name, span.kind, span.scope_name) == (
        "mpac-portal",
        "SERVER",
        "curl-by-hand",
    )
    assert span.duration_ms == 1000.0
    assert span.attributes == {
        "http.request.method": "GET",
        "http.response.status_code": 503,
        "retry": True,
        "shards": [1, 2.5],
    }
    assert (span.status_code, span.status_message) == ("ERROR", "database busy")
    (event,) = span.events
    assert (event.name, event.time_ns, event.attributes) == (
        "pool exhausted",
        1544712660500000000,
        {"pool.size": 10},
    )


def test_protobuf_is_answered_in_protobuf(sink: OtlpSink) -> None:
    request = ExportTraceServiceRequest()
    json_format.ParseDict(
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "no ids"}]}]}]}, request
    )

    response = httpx.post(
        sink.traces_endpoint, content=request.SerializeToString(), headers=PROTOBUF
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    # A span without ids is rejected alone: partial success, which the exporter must not retry.
    assert answer.partial_success.rejected_spans == 1
    assert "trace_id" in answer.partial_success.error_message
    assert sink.spans() == []


def test_an_empty_request_succeeds(sink: OtlpSink) -> None:
    response = httpx.post(sink.traces_endpoint, content=b"", headers=PROTOBUF)

    assert response.status_code == 200
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (PROTOBUF, b"not a protobuf"),
        (JSON, b"{not json"),
        (JSON, b'["a list"]'),
        (JSON, json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]})),
        ({**PROTOBUF, "Content-Encoding": "gzip"}, b"not gzip"),
        ({**PROTOBUF, "Content-Encoding": "gzip"}, gzip.compress(b"x" * 100)[:20]),
    ],
    ids=["protobuf", "json", "json-list", "json-hex-id", "gzip", "truncated-gzip"],
)
def test_a_bad_body_is_400_with_a_status(
    sink: OtlpSink, headers: dict[str, str], body: bytes | str
) -> None:
    response = httpx.post(sink.traces_endpoint, content=body, headers=headers)

    assert response.status_code == 400
    status = status_pb2.Status()
    if headers["Content-Type"] == "application/json":
        assert response.headers["Content-Type"] == "application/json"
        json_format.Parse(response.text, status)
    else:
        assert response.headers["Content-Type"] == "application/x-protobuf"
        status.ParseFromString(response.content)
    assert status.message
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert sink.spans() == []


def test_another_path_is_404_and_the_connection_stays_usable(sink: OtlpSink) -> None:
    with httpx.Client() as client:
        missing = client.post(
            sink.endpoint + "/v1/metrics", content=b"\x00" * 1000, headers=PROTOBUF
        )
        # The unread body must not leak into the next request on a kept-alive connection.
        accepted = client.post(sink.traces_endpoint, json=OTLP_JSON)
        get = client.get(sink.traces_endpoint)

    assert missing.status_code == 404
    assert "/v1/traces" in status_pb2.Status.FromString(missing.content).message
    assert accepted.status_code == 200
    assert (get.status_code, get.headers["Allow"]) == (405, "POST")


def test_unsupported_media_is_415(sink: OtlpSink) -> None:
    plain = httpx.post(
        sink.traces_endpoint, content=b"spans", headers={"Content-Type": "text/plain"}
    )
    brotli = httpx.post(sink.traces_endpoint, json=OTLP_JSON, headers={"Content-Encoding": "br"})

    assert plain.status_code == 415
    assert brotli.status_code == 415


def test_bodies_over_the_limit_are_413_before_and_after_decompression() -> None:
    with OtlpSink(max_body_bytes=1000) as sink:
        large = httpx.post(sink.traces_endpoint, content=b"\x00" * 1001, headers=PROTOBUF)
        bomb = httpx.post(
            sink.traces_endpoint,
            content=gzip.compress(b"\x00" * 100_000),
            headers={**PROTOBUF, "Content-Encoding": "gzip"},
        )

    assert large.status_code == 413
    assert bomb.status_code == 413


def test_wait_for_times_out_saying_what_arrived(sink: OtlpSink) -> None:
    _sends(sink)
    sink.wait_for(lambda spans: len(spans) == 1)

    with pytest.raises(TimeoutError, match=r"1 spans received: \[mpac-smarttab:POST\]"):
        sink.wait_for(lambda spans: len(spans) == 2, timeout_s=0.2)
    sink.clear()
    assert sink.spans() == []


def _span(
    span_id: str,
    parent: str | None,
    name: str,
    start_ms: float,
    end_ms: float,
    *,
    service: str = "mpac-smarttab",
    trace_id: str = "ab" * 16,
    status: str = "UNSET",
) -> ReceivedSpan:
    return ReceivedSpan(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind="INTERNAL",
        service_name=service,
        start_ns=int(start_ms * 1e6),
        end_ns=int(end_ms * 1e6),
        attributes={},
        status_code=status,
        status_message="",
        events=(),
        scope_name="test",
        resource_attributes={},
    )


def test_render_trace_orders_siblings_by_start_and_shows_orphans_as_roots() -> None:
    spans = [
        _span("0000000000000003", "0000000000000001", "second child", 5, 9),
        _span("0000000000000001", None, "root", 0, 10),
        _span("0000000000000002", "0000000000000001", "first child", 1, 4, status="ERROR"),
        _span("0000000000000004", "0000000000000002", "grandchild", 2, 3, service="mpac-pgw"),
        # Its parent was never exported (or is still on its way).
        _span("0000000000000005", "00000000000000ff", "orphan", 6, 7),
        _span("0000000000000006", None, "other trace", 0, 1, trace_id="cd" * 16),
    ]

    assert render_trace(spans) == "\n".join(
        [
            f"trace {'ab' * 16}  5 spans  10.0 ms",
            "mpac-smarttab  root  INTERNAL  10.0 ms",
            "├─ mpac-smarttab  first child  INTERNAL  3.0 ms  ERROR",
            "│  └─ mpac-pgw  grandchild  INTERNAL  1.0 ms",
            "└─ mpac-smarttab  second child  INTERNAL  4.0 ms",
            "mpac-smarttab  orphan  INTERNAL  1.0 ms",
            "",
            f"trace {'cd' * 16}  1 span  1.0 ms",
            "mpac-smarttab  other trace  INTERNAL  1.0 ms",
        ]
    )
    assert render_trace([]) == ""


def test_run_sink_prints_a_trace_once_it_settled() -> None:
    output = io.StringIO()
    stop = threading.Event()
    runner = threading.Thread(
        target=run_sink, args=(0, output), kwargs={"settle_s": 0.3, "stop": stop}
    )
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while "OTEL_EXPORTER_OTLP_ENDPOINT=" not in output.getvalue():
            assert time.monotonic() < deadline, output.getvalue()
            time.sleep(0.02)
        endpoint = output.getvalue().split("OTEL_EXPORTER_OTLP_ENDPOINT=")[1].split()[0]

        response = httpx.post(endpoint + "/v1/traces", json=OTLP_JSON)
        assert response.status_code == 200
        while "GET /v1/merchants" not in output.getvalue():
            assert time.monotonic() < deadline, output.getvalue()
            time.sleep(0.02)
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    tree = output.getvalue().split("\n\n", 1)[1]
    assert tree == (
        "trace 5b8efff798038103d269b633813fc60c  1 span  1000.0 ms\n"
        "mpac-portal  GET /v1/merchants  SERVER  1000.0 ms  http.request.method=GET  "
        "http.response.status_code=503  ERROR: database busy\n"
    )


def test_the_command_reports_a_port_in_use(
    sink: OtlpSink, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--port", str(sink.port)])

    assert cmd_otlp_sink(args) == 1
    assert f"cannot listen on 127.0.0.1:{sink.port}" in capsys.readouterr().err
