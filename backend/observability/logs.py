"""Structured logs: one JSON object per line, carrying who and what every line is about.

Every record gets the service that wrote it, the request it belongs to (``request_id``, the
``X-Request-ID`` answered to the caller), the trace and span ids of OpenTelemetry (the same ids a
trace backend shows, so a log line leads to its trace and back) and the tenant the request acts
for (psp, merchant, store), bound once authentication succeeds. Card data never reaches the
output: a card number in a message, an argument or an exception is masked to its last four
digits, and fields named like card data (pan, cvv, pin, track data) are replaced whole.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import traceback
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.core.request_context import current_request_id


@dataclass(frozen=True)
class LogTenant:
    psp_id: uuid.UUID | None
    merchant_id: uuid.UUID | None
    store_id: uuid.UUID | None
    # Who acts: "user", "device", "service" or "payment_token" (never a token or a name).
    principal_kind: str | None = None


_service: ContextVar[str] = ContextVar("mpac_log_service", default="-")
_tenant: ContextVar[LogTenant | None] = ContextVar("mpac_log_tenant", default=None)


def set_log_service(service: str) -> None:
    """Tag log records written from the current context (and tasks it starts) with ``service``."""
    _service.set(service)


def current_log_service() -> str:
    return _service.get()


class ServiceLogContext:
    """ASGI wrapper tagging every record logged while handling a request with its service."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _service.set(self.service)
        try:
            await self.app(scope, receive, send)
        finally:
            _service.reset(token)


def bind_log_tenant(tenant: LogTenant) -> None:
    """Tag the rest of the current request's log records with the tenant it acts for."""
    _tenant.set(tenant)


# --- card data ---------------------------------------------------------------------------------

# 13-19 digits in a row, or grouped as printed on a card (4-4-4-4[-3], Amex 4-6-5) by one
# kind of separator; groups are exact, so a number followed by " 422" is not taken for more.
_PAN_CANDIDATE = re.compile(
    r"(?<![\w-])(?:\d{13,19}"
    r"|\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?"
    r"|\d{4}([ -])\d{6}\2\d{5})(?![\w-])"
)
# Field names whose whole value is card data, whatever it looks like.
_SECRET_FIELD = re.compile(r"^(pan|card_?number|cvv|cvc|cvv2|pin|pin_?block|track[12]?)$", re.I)
MASKED = "[masked]"


def _mask_candidate(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_card_data(text: str) -> str:
    """``text`` with every card number masked but its last four digits.

    Any run of 13-19 digits counts, Luhn or not: a mistyped card number is still card data,
    and the numbers it also catches (epoch milliseconds) are never needed in a log.
    """
    return _PAN_CANDIDATE.sub(_mask_candidate, text)


def mask_fields(value: Any) -> Any:
    """A copy of a JSON-like value with card-data fields masked whole and PANs masked in text."""
    if isinstance(value, Mapping):
        return {
            key: MASKED if _SECRET_FIELD.match(str(key)) else mask_fields(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_fields(item) for item in value]
    if isinstance(value, str):
        return mask_card_data(value)
    return value


# --- formatting --------------------------------------------------------------------------------

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged too.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "service",
    "taskName",
}


class ContextFilter(logging.Filter):
    """Copies the request context (service, request, trace, tenant) onto every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "service"):
            record.service = _service.get()
        record.request_id = getattr(record, "request_id", None) or current_request_id()
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        tenant = _tenant.get()
        if tenant is not None:
            record.tenant = tenant
        return True


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; keys are stable (docs/observability.md lists them)."""

    def format(self, record: logging.LogRecord) -> str:
        message = mask_card_data(record.getMessage())
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "service": getattr(record, "service", "-"),
            "logger": record.name,
            "msg": message,
            "request_id": getattr(record, "request_id", None),
            "trace_id": getattr(record, "trace_id", None),
            "span_id": getattr(record, "span_id", None),
        }
        tenant: LogTenant | None = getattr(record, "tenant", None)
        if tenant is not None:
            entry["psp_id"] = _text(tenant.psp_id)
            entry["merchant_id"] = _text(tenant.merchant_id)
            entry["store_id"] = _text(tenant.store_id)
            entry["principal"] = tenant.principal_kind
        extra = {
            key: value
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRIBUTES
            and key not in entry
            and key not in ("tenant", "request_id", "trace_id", "span_id")
        }
        if extra:
            entry["extra"] = mask_fields(_jsonable(extra))
        if record.exc_info:
            entry["exception"] = mask_card_data(
                "".join(traceback.format_exception(*record.exc_info))
            )
        return json.dumps({k: v for k, v in entry.items() if v is not None}, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class TextFormatter(logging.Formatter):
    """The readable line for a developer's terminal, with the same masking as the JSON one."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s.%(msecs)03d %(levelname)-7s [%(service)s] %(name)s: %(message)s",
            "%Y-%m-%d %H:%M:%S",
        )

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id:
            line += f" (request {request_id})"
        return mask_card_data(line)
