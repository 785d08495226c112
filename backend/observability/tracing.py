"""OpenTelemetry tracing: a span per request, per outbound call and per WebSocket push.

Every service records spans whether or not they are exported, so log lines always carry a trace
id and the W3C ``traceparent`` header always goes out on calls to other services (HMAC-signed
ones included: the header is not part of the signed canonical request, so a proxy or agent that
rewrites it cannot break a signature) and on smarttab's WebSocket events. Export is off by
default; ``MPAC_OTLP_ENDPOINT`` (or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) sends them over OTLP/HTTP to a collector, Jaeger, Tempo,
or ``mpac otlp-sink``.

Each service has its own tracer provider (``mpac up`` runs four services in one process, and a
span's resource says which service made it).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping, MutableMapping
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from backend.core.settings import Settings

TRACEPARENT = "traceparent"
_propagator = TraceContextTextMapPropagator()
_lock = threading.Lock()
_providers: dict[str, tuple[str, TracerProvider]] = {}


def otlp_traces_endpoint(settings: Settings) -> str:
    """Where spans are exported (empty: nowhere), following the OTLP exporter's conventions."""
    if settings.otlp_endpoint:
        return settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    specific = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
    if specific:
        return specific
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    return base.rstrip("/") + "/v1/traces" if base else ""


def configure_tracing(service: str, settings: Settings) -> TracerProvider:
    """The tracer provider of ``service`` in this process, exporting as ``settings`` say."""
    endpoint = otlp_traces_endpoint(settings)
    with _lock:
        current = _providers.get(service)
        if current is not None and current[0] == endpoint:
            return current[1]
        provider = TracerProvider(
            resource=Resource.create(
                {
                    "service.name": f"mpac-{service}",
                    "service.namespace": "mpac",
                    "service.instance.id": f"{os.getpid()}-{uuid.uuid4().hex[:8]}",
                }
            ),
            sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
        )
        if endpoint:
            # Imported here: the exporter pulls in protobuf and requests, which a service that
            # exports nothing never needs.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=500)
            )
        if current is not None:
            current[1].force_flush()
        _providers[service] = (endpoint, provider)
        return provider


def tracer(service: str) -> Tracer:
    """``service``'s tracer (a no-op one until :func:`configure_tracing` ran for it)."""
    current = _providers.get(service)
    if current is None:
        return trace.NoOpTracer()
    return current[1].get_tracer("mpac")


def flush_traces(service: str, timeout_ms: int = 5000) -> None:
    current = _providers.get(service)
    if current is not None:
        current[1].force_flush(timeout_ms)


def extract_context(headers: Mapping[str, str]) -> Context:
    """The caller's trace context from a ``traceparent`` header (an empty one without it)."""
    return _propagator.extract(headers)


def inject_context(carrier: MutableMapping[str, str], context: Context | None = None) -> None:
    """Write the current (or given) span's ``traceparent`` into ``carrier``."""
    _propagator.inject(carrier, context=context)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    inject_context(carrier)
    return carrier.get(TRACEPARENT)


class TracingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that wraps each call in a CLIENT span and sends its ``traceparent``.

    It sits below httpx's auth flow, so an HMAC-signed request is signed before the header is
    added, as the signature scheme intends (docs/s2s-auth.md: traceparent is not signed).
    """

    def __init__(
        self,
        service: str,
        *,
        peer: str | None = None,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.service = service
        self.peer = peer
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attributes: dict[str, Any] = {
            "http.request.method": request.method,
            "url.path": request.url.path,
            "server.address": request.url.host,
            "server.port": request.url.port or (443 if request.url.scheme == "https" else 80),
        }
        if self.peer:
            attributes["peer.service"] = f"mpac-{self.peer}"
        with tracer(self.service).start_as_current_span(
            f"{request.method} {request.url.path}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=True,
        ) as span:
            inject_context(request.headers)
            response = await self.inner.handle_async_request(request)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()
