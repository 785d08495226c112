"""The HTTP exchanges the drivers made, kept for the failure report.

Every ``httpx.Client`` a driver uses carries :meth:`HttpJournal.hooks`; when a step fails, the
report shows the last exchanges, so QA sees what was asked and what came back. Secrets never get
into the journal: credentials in headers and bodies are replaced by ``[redacted]``, and card data
(PAN, CVV, PIN, track data) is removed before anything is kept.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

REDACTED = "[redacted]"
# Headers that carry credentials or signatures.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "cookie",
        "set-cookie",
        "proxy-authorization",
        "x-mpac-signature",
        "provider-signature",
    }
)
# Headers every request or response has, which say nothing about what went wrong.
NOISE_HEADERS = frozenset(
    {
        "host",
        "accept",
        "accept-encoding",
        "connection",
        "user-agent",
        "content-length",
        "date",
        "server",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "cache-control",
    }
)
# Body fields that hold card data or credentials, at any depth.
SECRET_FIELDS = frozenset(
    {
        "pan",
        "card_number",
        "cvv",
        "cvc",
        "pin",
        "track",
        "track1",
        "track2",
        "track_data",
        "password",
        "new_password",
        "current_password",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "client_assertion",
        "activation_code",
        "secret",
        "private_key",
    }
)
# Anything that still looks like a card number (13-19 digits) is masked to its last four.
_PAN_LIKE = re.compile(r"(?<!\d)\d{9,15}(\d{4})(?!\d)")
MAX_BODY_CHARS = 3000


def mask_card_numbers(text: str) -> str:
    return _PAN_LIKE.sub(lambda match: f"[card ending {match.group(1)}]", text)


def redact(value: Any) -> Any:
    """A copy of a JSON value without credentials or card data."""
    if isinstance(value, dict):
        return {
            key: REDACTED if str(key).lower() in SECRET_FIELDS else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return mask_card_numbers(value)
    return value


def _headers(headers: httpx.Headers) -> dict[str, str]:
    """The telling headers (``x-request-id`` finds the server's log lines), secrets hidden."""
    return {
        name: REDACTED if name.lower() in SECRET_HEADERS else value
        for name, value in headers.items()
        if name.lower() not in NOISE_HEADERS
    }


def _body(content: bytes, content_type: str) -> str:
    if not content:
        return ""
    text = content.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            rendered = json.dumps(redact(json.loads(text)), ensure_ascii=False, indent=1)
        except ValueError:
            rendered = mask_card_numbers(text)
    elif "x-www-form-urlencoded" in content_type:
        pairs = [
            (key, REDACTED if key.lower() in SECRET_FIELDS else value)
            for key, value in parse_qsl(text, keep_blank_values=True)
        ]
        rendered = mask_card_numbers(urlencode(pairs))
    else:
        rendered = mask_card_numbers(text)
    if len(rendered) > MAX_BODY_CHARS:
        rendered = rendered[:MAX_BODY_CHARS] + f"\n… ({len(rendered) - MAX_BODY_CHARS} more)"
    return rendered


@dataclass(frozen=True)
class Exchange:
    """One request and its response (or the error instead of one), already redacted."""

    service: str
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None = None
    response_headers: dict[str, str] | None = None
    response_body: str = ""
    elapsed_ms: int | None = None

    def summary(self) -> str:
        status = self.status if self.status is not None else "no response"
        return f"{self.service}: {self.method} {self.url} -> {status}"

    def render(self) -> str:
        lines = [f"{self.method} {self.url}  ({self.service})"]
        lines += [f"{name}: {value}" for name, value in self.request_headers.items()]
        if self.request_body:
            lines += ["", self.request_body]
        lines.append("")
        if self.status is None:
            lines.append("(no response)")
        else:
            took = f"  ({self.elapsed_ms} ms)" if self.elapsed_ms is not None else ""
            lines.append(f"HTTP {self.status}{took}")
            lines += [f"{name}: {value}" for name, value in (self.response_headers or {}).items()]
            if self.response_body:
                lines += ["", self.response_body]
        return "\n".join(lines)


class HttpJournal:
    """The last ``size`` exchanges of every client given :meth:`hooks` (thread-safe)."""

    def __init__(self, size: int = 20) -> None:
        self._lock = threading.Lock()
        self._exchanges: deque[Exchange] = deque(maxlen=size)

    def hooks(self, service: str) -> dict[str, list[Callable[..., Any]]]:
        """``event_hooks`` for an ``httpx.Client`` talking to ``service``."""

        def on_response(response: httpx.Response) -> None:
            response.read()
            request = response.request
            elapsed = response.elapsed.total_seconds() if _has_elapsed(response) else None
            self.record(
                Exchange(
                    service=service,
                    method=request.method,
                    url=mask_card_numbers(str(request.url)),
                    request_headers=_headers(request.headers),
                    request_body=_body(request.content, request.headers.get("content-type", "")),
                    status=response.status_code,
                    response_headers=_headers(response.headers),
                    response_body=_body(response.content, response.headers.get("content-type", "")),
                    elapsed_ms=round(elapsed * 1000) if elapsed is not None else None,
                )
            )

        return {"response": [on_response]}

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def clear(self) -> None:
        with self._lock:
            self._exchanges.clear()

    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def report(self, *, full: int = 1) -> str | None:
        """The last ``full`` exchanges in full, the ones before as one line each."""
        exchanges = self.exchanges()
        if not exchanges:
            return None
        earlier, last = exchanges[:-full], exchanges[-full:]
        parts = []
        if earlier:
            parts.append("Earlier:\n" + "\n".join(f"  {line}" for line in _collapsed(earlier)))
        parts += [exchange.render() for exchange in last]
        return "\n\n".join(parts)


def _collapsed(exchanges: list[Exchange]) -> list[str]:
    """One line per exchange, consecutive repeats (a step polling) as one line with a count."""
    lines: list[tuple[str, int]] = []
    for exchange in exchanges:
        summary = exchange.summary()
        if lines and lines[-1][0] == summary:
            lines[-1] = (summary, lines[-1][1] + 1)
        else:
            lines.append((summary, 1))
    return [summary if count == 1 else f"{summary}  ({count} times)" for summary, count in lines]


def _has_elapsed(response: httpx.Response) -> bool:
    try:
        response.elapsed  # noqa: B018  (set only once the response was read and closed)
    except RuntimeError:
        return False
    return True
