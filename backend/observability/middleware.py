"""The one ASGI middleware that observes every request: its span, its metrics, its access line."""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.observability.metrics import service_metrics
from backend.observability.tracing import extract_context, tracer

ACCESS_LOGGER = "mpac.access"
access_logger = logging.getLogger(ACCESS_LOGGER)

# Scraped or probed every few seconds: counted, but neither traced nor written to the access log.
QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
# The label of requests that matched no route (scanners): one series, not one per probed path.
UNMATCHED_ROUTE = "<unmatched>"


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


def _tenant_attributes(scope: Scope) -> dict[str, Any]:
    principal = (scope.get("state") or {}).get("principal")
    if principal is None:
        return {}
    tenant = principal.scope
    attributes = {"mpac.principal": principal.kind}
    for name in ("psp_id", "merchant_id", "store_id"):
        value = getattr(tenant, name, None)
        if value is not None:
            attributes[f"mpac.{name}"] = str(value)
    return attributes


class ObservabilityMiddleware:
    """Runs outside the routes and inside the request id, so all three carry the same ids."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self.metrics = service_metrics(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        quiet = path in QUIET_PATHS
        status = 500
        started = time.perf_counter()
        in_flight = self.metrics.http_in_flight.labels(self.service)
        in_flight.inc()

        traceresponse: bytes | None = None

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if traceresponse is not None:
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"traceresponse", traceresponse),
                    ]
            await send(message)

        try:
            if quiet:
                await self.app(scope, receive, send_observed)
                return
            headers = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in scope.get("headers") or []
                if name == b"traceparent" or name == b"tracestate"
            }
            with tracer(self.service).start_as_current_span(
                method,
                context=extract_context(headers),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": path},
            ) as span:
                # W3C Trace Context level 2: the caller learns the trace its request joined
                # (a terminal or a QA report can quote it, like the request id).
                context = span.get_span_context()
                if context.is_valid:
                    traceresponse = (
                        f"00-{context.trace_id:032x}-{context.span_id:016x}-"
                        f"{int(context.trace_flags):02x}"
                    ).encode()
                try:
                    await self.app(scope, receive, send_observed)
                finally:
                    route = _route_template(scope)
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                    request_id = (scope.get("state") or {}).get("request_id")
                    if request_id:
                        span.set_attribute("mpac.request_id", request_id)
                    span.set_attributes(_tenant_attributes(scope))
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    access_logger.info(
                        "%s %s %d %.1f ms",
                        method,
                        path,
                        status,
                        elapsed_ms,
                        extra={
                            "http": {"route": route, "status": status, "ms": round(elapsed_ms, 1)}
                        },
                    )
        finally:
            in_flight.dec()
            route = _route_template(scope)
            self.metrics.http_requests.labels(self.service, method, route, str(status)).inc()
            self.metrics.http_duration.labels(self.service, method, route).observe(
                time.perf_counter() - started
            )
