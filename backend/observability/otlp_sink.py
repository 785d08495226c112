"""A small OTLP/HTTP trace receiver, for developers and tests that have no Jaeger.

``OtlpSink`` listens on ``127.0.0.1:<port>`` and answers ``POST /v1/traces`` the way the
OTLP/HTTP specification asks: binary protobuf (``application/x-protobuf``) or OTLP JSON
(``application/json``), optionally ``gzip``/``deflate`` compressed, answered with an
``ExportTraceServiceResponse`` in the request's encoding. Received spans are kept as plain
``ReceivedSpan`` values::

    with OtlpSink() as sink:
        exporter = OTLPSpanExporter(endpoint=sink.traces_endpoint)
        ...  # spans exported through a BatchSpanProcessor, then force_flush()
        spans = sink.wait_for(lambda spans: len(spans) >= 2, timeout_s=5)
        print(render_trace(spans))

Which endpoint to give an exporter: the sink serves the path ``/v1/traces`` only.

* ``OTEL_EXPORTER_OTLP_ENDPOINT=<sink.endpoint>`` (``http://127.0.0.1:4318``): the base
  endpoint; the exporter appends ``/v1/traces`` itself.
* ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=<sink.traces_endpoint>`` or
  ``OTLPSpanExporter(endpoint=...)``: used verbatim, so it must end in ``/v1/traces``.

``mpac otlp-sink`` (``add_arguments`` and ``cmd_otlp_sink``) runs ``run_sink``: it prints each
trace as a tree once no new span of it has arrived for a second.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ipaddress
import json
import logging
import sys
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import SHUT_RDWR, socket
from typing import Any, TextIO, TypeAlias
from urllib.parse import urlsplit

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

logger = logging.getLogger("mpac.otlp_sink")

DEFAULT_HOST = "127.0.0.1"
# The IANA-registered OTLP/HTTP port: exporters use it when nothing is configured.
DEFAULT_PORT = 4318
TRACES_PATH = "/v1/traces"
# The specification's recommended limit, applied before and after decompression.
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
# Shown by ``render_trace`` after the span name, in this order, when present.
KEY_ATTRIBUTES: tuple[str, ...] = (
    "http.request.method",
    "http.route",
    "url.full",
    "http.response.status_code",
    "error.type",
)

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"
# OTLP JSON writes these ids as hex where the protobuf JSON mapping expects base64.
_HEX_ID_KEYS = frozenset(
    {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
)
_DECOMPRESSION_WBITS = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    # HTTP "deflate" is the zlib format, which is also what the Python exporter sends.
    "deflate": zlib.MAX_WBITS,
}
_GRPC_CODES = {
    HTTPStatus.BAD_REQUEST: code_pb2.INVALID_ARGUMENT,
    HTTPStatus.NOT_FOUND: code_pb2.NOT_FOUND,
    HTTPStatus.METHOD_NOT_ALLOWED: code_pb2.UNIMPLEMENTED,
    HTTPStatus.LENGTH_REQUIRED: code_pb2.INVALID_ARGUMENT,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: code_pb2.RESOURCE_EXHAUSTED,
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: code_pb2.INVALID_ARGUMENT,
    HTTPStatus.INTERNAL_SERVER_ERROR: code_pb2.INTERNAL,
}

AttributeValue: TypeAlias = (
    str | bool | int | float | bytes | list["AttributeValue"] | dict[str, "AttributeValue"] | None
)


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    name: str
    time_ns: int
    attributes: dict[str, AttributeValue]


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One span as the sink received it; ids are lower-case hex."""

    trace_id: str
    span_id: str
    # None for a root span (OTLP sends an empty parent id).
    parent_span_id: str | None
    name: str
    # INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER or UNSPECIFIED.
    kind: str
    # The resource attribute service.name; None when the sender set none.
    service_name: str | None
    start_ns: int
    end_ns: int
    attributes: dict[str, AttributeValue]
    # UNSET, OK or ERROR.
    status_code: str
    status_message: str
    events: tuple[ReceivedEvent, ...]
    scope_name: str
    resource_attributes: dict[str, AttributeValue]

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def is_error(self) -> bool:
        return self.status_code == "ERROR"


SpanListener = Callable[[list[ReceivedSpan]], None]


class OtlpSink:
    """An OTLP/HTTP trace receiver on a background thread; use as a context manager.

    The port is bound on construction (``port=0`` picks a free one, see ``endpoint``);
    ``start()`` (or ``with``) serves it until ``close()``. ``on_spans`` is called with each
    accepted batch from the request's thread; ``store=False`` keeps nothing, for a
    long-running sink whose listener does its own bookkeeping.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        on_spans: SpanListener | None = None,
        store: bool = True,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._on_spans = on_spans
        self._store = store
        self.max_body_bytes = max_body_bytes
        self._changed = threading.Condition()
        self._spans: list[ReceivedSpan] = []
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """The base endpoint, e.g. ``http://127.0.0.1:4318``: OTEL_EXPORTER_OTLP_ENDPOINT."""
        # A wildcard address is where the sink listens, not an address clients can dial.
        host = "127.0.0.1" if ipaddress.ip_address(self.host).is_unspecified else self.host
        return f"http://{host}:{self.port}"

    @property
    def traces_endpoint(self) -> str:
        """``endpoint`` + ``/v1/traces``: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, used verbatim."""
        return self.endpoint + TRACES_PATH

    def start(self) -> OtlpSink:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                # Bounds how long close() waits for the accept loop to notice.
                kwargs={"poll_interval": 0.05},
                name=f"otlp-sink:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.drop_connections()
        self._server.server_close()

    def __enter__(self) -> OtlpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far, in order of arrival."""
        with self._changed:
            return list(self._spans)

    def traces(self) -> dict[str, list[ReceivedSpan]]:
        """Trace id -> its spans by start time; traces ordered by their first span's start."""
        return group_traces(self.spans())

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 10.0
    ) -> list[ReceivedSpan]:
        """Block until ``predicate(spans)`` holds, and return those spans.

        Raises ``TimeoutError`` (listing what did arrive) when it does not within
        ``timeout_s``: exporters send in batches, so a test waits rather than sleeps.
        """
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                snapshot = list(self._spans)
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    received = ", ".join(f"{s.service_name}:{s.name}" for s in snapshot)
                    raise TimeoutError(
                        f"OTLP sink: condition not met within {timeout_s} s; "
                        f"{len(snapshot)} spans received: [{received}]"
                    )
                self._changed.wait(remaining)

    def clear(self) -> None:
        with self._changed:
            self._spans.clear()

    def _accept(self, spans: list[ReceivedSpan]) -> None:
        if self._store:
            with self._changed:
                self._spans.extend(spans)
                self._changed.notify_all()
        if self._on_spans is not None and spans:
            try:
                self._on_spans(spans)
            except Exception:
                # The spans were accepted; a failing listener must not make the exporter retry.
                logger.exception("OTLP sink: span listener failed")


class _Server(ThreadingHTTPServer):
    # A sink a test forgot to close must not keep the interpreter alive; close() still
    # joins the handler threads (block_on_close).
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sink: OtlpSink) -> None:
        self.sink = sink
        self._connections: set[socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    # Registered on the accept thread before the handler thread exists, so close() never
    # misses a connection that is just starting.
    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """End idle keep-alive connections, so server_close() joins their threads at once."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # Already closed by the client: nothing to end.
            with contextlib.suppress(OSError):
                connection.shutdown(SHUT_RDWR)


class _RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str, *, body_unread: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        # The rest of the body would be read as the next request on this connection.
        self.body_unread = body_unread


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as the specification asks of OTLP/HTTP clients and servers.
    protocol_version = "HTTP/1.1"
    # Frees the thread of a connection the exporter abandoned.
    timeout = 60
    server: _Server
    server_version = "mpac-otlp-sink"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("OTLP sink %s: " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        content_type = self.headers.get_content_type()
        respond_as = _JSON if content_type == _JSON else _PROTOBUF
        try:
            if urlsplit(self.path).path != TRACES_PATH:
                raise _RequestError(
                    HTTPStatus.NOT_FOUND,
                    f"no such path {self.path!r}: this sink receives traces at {TRACES_PATH}",
                    body_unread=True,
                )
            if content_type not in (_PROTOBUF, _JSON):
                raise _RequestError(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    f"unsupported Content-Type {content_type!r}; send {_PROTOBUF} or {_JSON}",
                    body_unread=True,
                )
            body = self._read_body()
            request = _decode_request(body, content_type)
            spans, rejected, reason = _spans_of(request)
        except _RequestError as error:
            if error.body_unread:
                self.close_connection = True
            self._send_status(error.status, error.message, respond_as)
            return
        except Exception:
            # A bug of the sink: say so with a status instead of a dropped connection, which
            # the exporter would retry.
            logger.exception("OTLP sink: cannot handle a request")
            self.close_connection = True
            self._send_status(
                HTTPStatus.INTERNAL_SERVER_ERROR, "the sink failed; see its log", respond_as
            )
            return
        self.server.sink._accept(spans)
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = reason
        self._send(HTTPStatus.OK, _encode(response, respond_as), respond_as)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == TRACES_PATH:
            self._send_status(
                HTTPStatus.METHOD_NOT_ALLOWED, "POST spans here", _PROTOBUF, allow="POST"
            )
        else:
            self._send_status(HTTPStatus.NOT_FOUND, f"no such path {self.path!r}", _PROTOBUF)

    def _read_body(self) -> bytes:
        limit = self.server.sink.max_body_bytes
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise _RequestError(
                HTTPStatus.LENGTH_REQUIRED, "Content-Length is required", body_unread=True
            )
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0:
            raise _RequestError(
                HTTPStatus.BAD_REQUEST, f"bad Content-Length {length_header!r}", body_unread=True
            )
        if length > limit:
            raise _RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes exceeds the limit of {limit}",
                body_unread=True,
            )
        body = self.rfile.read(length)
        if len(body) != length:
            raise _RequestError(
                HTTPStatus.BAD_REQUEST, "body shorter than Content-Length", body_unread=True
            )
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding in ("identity", "none", ""):
            return body
        wbits = _DECOMPRESSION_WBITS.get(encoding)
        if wbits is None:
            raise _RequestError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"unsupported Content-Encoding {encoding!r}; send gzip, deflate or none",
            )
        return _decompress(body, encoding, wbits, limit)

    def _send_status(
        self, status: HTTPStatus, message: str, content_type: str, allow: str | None = None
    ) -> None:
        body = status_pb2.Status(code=_GRPC_CODES.get(status, code_pb2.UNKNOWN), message=message)
        if status == HTTPStatus.BAD_REQUEST:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field="body", description=message
            )
            body.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        self._send(status, _encode(body, content_type), content_type, allow=allow)

    def _send(
        self, status: HTTPStatus, body: bytes, content_type: str, allow: str | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if allow is not None:
            self.send_header("Allow", allow)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def _decompress(body: bytes, encoding: str, wbits: int, limit: int) -> bytes:
    decompressor = zlib.decompressobj(wbits)
    try:
        # max_length stops a small compressed bomb from filling memory before the check.
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _RequestError(HTTPStatus.BAD_REQUEST, f"bad {encoding} body: {exc}") from exc
    if len(data) > limit:
        raise _RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"decompressed body exceeds the limit of {limit} bytes",
        )
    if not decompressor.eof:
        raise _RequestError(HTTPStatus.BAD_REQUEST, f"truncated {encoding} body")
    return data


def _decode_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if content_type == _PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise _RequestError(
                HTTPStatus.BAD_REQUEST, f"not an ExportTraceServiceRequest: {exc}"
            ) from exc
        return request
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("the body is not a JSON object")
        _hex_ids_to_base64(document)
        # Unknown fields must be ignored so newer senders keep working (OTLP JSON rules).
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (ValueError, json_format.ParseError) as exc:
        # json.JSONDecodeError, bad hex ids and UnicodeDecodeError are all ValueErrors.
        raise _RequestError(
            HTTPStatus.BAD_REQUEST, f"not an OTLP JSON ExportTraceServiceRequest: {exc}"
        ) from exc
    return request


def _hex_ids_to_base64(node: object) -> None:
    # A generic walk is safe: attribute keys live in {"key": ..., "value": ...} objects, so
    # these names only ever appear as field names of Span and Span.Link.
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _HEX_ID_KEYS and isinstance(value, str):
                try:
                    raw = bytes.fromhex(value)
                except ValueError as exc:
                    raise ValueError(f"{key} {value!r} is not hex") from exc
                node[key] = base64.b64encode(raw).decode("ascii")
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)


def _encode(message: Any, content_type: str) -> bytes:
    if content_type == _JSON:
        return json_format.MessageToJson(message, indent=None).encode()
    data: bytes = message.SerializeToString()
    return data


def _spans_of(request: ExportTraceServiceRequest) -> tuple[list[ReceivedSpan], int, str]:
    """The valid spans of a request, how many were rejected, and why the first was."""
    spans: list[ReceivedSpan] = []
    rejected = 0
    reason = ""
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = resource.get("service.name")
        service_name = service if isinstance(service, str) else None
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                problem = _invalid_ids(span)
                if problem:
                    rejected += 1
                    reason = reason or f"span {span.name!r}: {problem}"
                    continue
                spans.append(_received(span, service_name, scope_spans.scope.name, resource))
    return spans, rejected, reason


def _invalid_ids(span: Span) -> str:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "trace_id must be 16 bytes, not all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "span_id must be 8 bytes, not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "parent_span_id must be empty or 8 bytes"
    return ""


def _received(
    span: Span, service_name: str | None, scope_name: str, resource: dict[str, AttributeValue]
) -> ReceivedSpan:
    return ReceivedSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() if any(span.parent_span_id) else None,
        name=span.name,
        kind=_enum_name(Span.SpanKind.Name, span.kind, "SPAN_KIND_"),
        service_name=service_name,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        attributes=_attributes(span.attributes),
        status_code=_enum_name(Status.StatusCode.Name, span.status.code, "STATUS_CODE_"),
        status_message=span.status.message,
        events=tuple(
            ReceivedEvent(
                name=event.name,
                time_ns=event.time_unix_nano,
                attributes=_attributes(event.attributes),
            )
            for event in span.events
        ),
        scope_name=scope_name,
        resource_attributes=resource,
    )


def _enum_name(name_of: Callable[[int], str], value: int, prefix: str) -> str:
    try:
        return name_of(value).removeprefix(prefix)
    except ValueError:
        # A value from a newer protocol version than the installed opentelemetry-proto.
        return str(value)


def _attributes(key_values: Iterable[KeyValue]) -> dict[str, AttributeValue]:
    return {kv.key: _value(kv.value) for kv in key_values}


def _value(value: AnyValue) -> AttributeValue:
    match value.WhichOneof("value"):
        case "string_value":
            return value.string_value
        case "bool_value":
            return value.bool_value
        case "int_value":
            return value.int_value
        case "double_value":
            return value.double_value
        case "bytes_value":
            return value.bytes_value
        case "array_value":
            return [_value(item) for item in value.array_value.values]
        case "kvlist_value":
            return _attributes(value.kvlist_value.values)
        case "string_value_strindex":
            # An index into a profile's string table; spans have no such table.
            return value.string_value_strindex
        case _:
            return None


def group_traces(spans: Iterable[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    """Trace id -> its spans by start time; traces ordered by their first span's start."""
    traces: dict[str, list[ReceivedSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_ns):
        traces.setdefault(span.trace_id, []).append(span)
    return traces


def render_trace(spans: Iterable[ReceivedSpan]) -> str:
    """The spans as trees, one per trace, children indented under their parents.

    Each line: service, span name, kind, duration, ``KEY_ATTRIBUTES`` and an error status.
    Siblings are in start-time order; a span whose parent is not among ``spans`` is shown as
    a root, so a partial trace still renders.
    """
    blocks = [_render_one(trace) for trace in group_traces(spans).values()]
    return "\n\n".join(blocks)


def _render_one(spans: list[ReceivedSpan]) -> str:
    ids = {span.span_id for span in spans}
    children: dict[str, list[ReceivedSpan]] = {}
    roots: list[ReceivedSpan] = []
    for span in spans:
        if span.parent_span_id is not None and span.parent_span_id in ids:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    start = min(span.start_ns for span in spans)
    end = max(span.end_ns for span in spans)
    lines = [
        f"trace {spans[0].trace_id}  {len(spans)} span{'s' if len(spans) != 1 else ''}"
        f"  {(end - start) / 1e6:.1f} ms"
    ]
    shown: set[int] = set()

    def walk(span: ReceivedSpan, lead: str, branch: str) -> None:
        shown.add(id(span))
        lines.append(lead + branch + _describe(span))
        below = [child for child in children.get(span.span_id, []) if id(child) not in shown]
        continuation = lead + ("   " if branch == "└─ " else "│  " if branch else "")
        for index, child in enumerate(below):
            walk(child, continuation, "└─ " if index == len(below) - 1 else "├─ ")

    for root in roots:
        walk(root, "", "")
    # Spans whose parents form a cycle are reachable from no root; malformed, but shown.
    for span in spans:
        if id(span) not in shown:
            walk(span, "", "")
    return "\n".join(lines)


def _describe(span: ReceivedSpan) -> str:
    parts = [
        span.service_name or "?",
        span.name,
        span.kind,
        f"{span.duration_ms:.1f} ms",
    ]
    parts += [
        f"{key}={_show(span.attributes[key])}" for key in KEY_ATTRIBUTES if key in span.attributes
    ]
    if span.is_error:
        parts.append(f"ERROR: {span.status_message}" if span.status_message else "ERROR")
    return "  ".join(parts)


def _show(value: AttributeValue) -> str:
    return value.hex() if isinstance(value, bytes) else str(value)


class _SettlingTraces:
    """Spans of traces still arriving; a trace is complete once quiet for ``settle_s``."""

    # Remembers printed traces, so late spans are labelled as such; bounded for long runs.
    _PRINTED_MEMORY = 10_000

    def __init__(self, settle_s: float) -> None:
        self._settle_s = settle_s
        self._lock = threading.Lock()
        self._pending: dict[str, list[ReceivedSpan]] = {}
        self._last_arrival: dict[str, float] = {}
        self._printed: OrderedDict[str, None] = OrderedDict()

    def add(self, spans: list[ReceivedSpan]) -> None:
        now = time.monotonic()
        with self._lock:
            for span in spans:
                self._pending.setdefault(span.trace_id, []).append(span)
                self._last_arrival[span.trace_id] = now

    def take_settled(self) -> list[tuple[list[ReceivedSpan], bool]]:
        """Quiet traces, each with whether part of it was printed before."""
        cutoff = time.monotonic() - self._settle_s
        with self._lock:
            ready = [tid for tid, last in self._last_arrival.items() if last <= cutoff]
            return self._take(ready)

    def take_all(self) -> list[tuple[list[ReceivedSpan], bool]]:
        with self._lock:
            return self._take(list(self._pending))

    def _take(self, trace_ids: Sequence[str]) -> list[tuple[list[ReceivedSpan], bool]]:
        taken = []
        for trace_id in trace_ids:
            spans = self._pending.pop(trace_id)
            del self._last_arrival[trace_id]
            taken.append((spans, trace_id in self._printed))
            self._printed[trace_id] = None
            self._printed.move_to_end(trace_id)
            while len(self._printed) > self._PRINTED_MEMORY:
                self._printed.popitem(last=False)
        taken.sort(key=lambda item: min(span.start_ns for span in item[0]))
        return taken


def run_sink(
    port: int,
    output: TextIO,
    *,
    host: str = DEFAULT_HOST,
    settle_s: float = 1.0,
    stop: threading.Event | None = None,
) -> None:
    """Receive traces and print each as a tree to ``output`` once it has settled.

    Runs until ``stop`` is set (or KeyboardInterrupt); traces still settling are printed on
    the way out. Raises OSError when the port cannot be bound.
    """
    if settle_s < 0:
        raise ValueError("settle_s must not be negative")
    settling = _SettlingTraces(settle_s)
    stop = stop or threading.Event()
    poll_s = min(0.2, max(settle_s / 4, 0.01))

    def emit(text: str) -> None:
        output.write(text + "\n")
        output.flush()

    def emit_traces(traces: list[tuple[list[ReceivedSpan], bool]]) -> None:
        for spans, late in traces:
            note = "(more spans of a trace printed before)\n" if late else ""
            emit("\n" + note + render_trace(spans))

    with OtlpSink(host, port, on_spans=settling.add, store=False) as sink:
        emit(
            f"OTLP/HTTP trace sink: POST {sink.traces_endpoint} (protobuf or JSON)\n"
            f"  export OTEL_EXPORTER_OTLP_ENDPOINT={sink.endpoint}\n"
            f"  a trace prints once no span of it has arrived for {settle_s:g} s; "
            "Ctrl-C stops"
        )
        try:
            while not stop.wait(poll_s):
                emit_traces(settling.take_settled())
        finally:
            emit_traces(settling.take_all())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``mpac otlp-sink``."""
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"port to listen on (default {DEFAULT_PORT}, OTLP/HTTP's; 0: any free port)",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"interface to listen on (default {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="print a trace once no span of it arrived for this long (default 1)",
    )


HELP = "receive OTLP/HTTP traces locally and print each trace as a tree"
DESCRIPTION = (
    "A local OTLP/HTTP trace receiver for when there is no Jaeger: point the services at it "
    "with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 and every trace is printed as a "
    "tree (service, span, kind, duration, HTTP method/route/status, errors) once it settles."
)


def cmd_otlp_sink(args: argparse.Namespace) -> int:
    try:
        run_sink(args.port, sys.stdout, host=args.host, settle_s=args.settle)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); nothing more can be shown.
        return 0
    except OSError as exc:
        print(
            f"mpac otlp-sink: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0
