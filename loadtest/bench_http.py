"""A lean HTTP/1.1 keep-alive client for the load generator.

The generator shares the machine's CPUs with the servers it measures, so every cycle it spends
is taken from them. httpx costs about a millisecond of CPU per request, which made the load
generator, not the server, the limit of the trivial-endpoint ceiling. This client does only
what the bench needs: keep-alive connections (one per concurrent client), requests with a
body and ``Content-Length`` responses (what uvicorn sends for JSON), nothing else.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_MAX_HEAD = 64 * 1024


class HttpError(Exception):
    """The server's answer could not be read as HTTP/1.1."""


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[Response, bool]:
        """Send one request and read its response; also whether the connection stays open."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            raise HttpError("response head too large")
        lines = head.decode("latin-1").split("\r\n")
        try:
            version, status, *_ = lines[0].split(" ", 2)
            code = int(status)
        except ValueError as exc:
            raise HttpError(f"bad status line {lines[0]!r}") from exc
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:
            body = b""
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        return Response(code, headers, body), keep_alive

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


class LeanClient:
    """Requests to one origin over a pool of keep-alive connections."""

    def __init__(self, base_url: str, *, timeout_s: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"plain http://host:port URLs only, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout_s = timeout_s
        self._host_header = f"{self.host}:{self.port}"
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()

    async def _connection(self) -> _Connection:
        if self._idle:
            return self._idle.pop()
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=_MAX_HEAD * 2)
        connection = _Connection(reader, writer)
        self._open.add(connection)
        return connection

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        lines = [f"{method} {path} HTTP/1.1", f"host: {self._host_header}"]
        if content_type is not None:
            lines.append(f"content-type: {content_type}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(body)}")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        connection = await self._connection()
        try:
            response, keep_alive = await asyncio.wait_for(
                connection.exchange(request), self.timeout_s
            )
        except BaseException:
            self._discard(connection)
            raise
        if keep_alive:
            self._idle.append(connection)
        else:
            self._discard(connection)
        return response

    async def get(self, path: str, *, headers: dict[str, str] | None = None) -> Response:
        return await self.request("GET", path, headers=headers)

    async def post_json(
        self, path: str, payload: Any, *, headers: dict[str, str] | None = None
    ) -> Response:
        return await self.request(
            "POST",
            path,
            headers=headers,
            body=json.dumps(payload).encode(),
            content_type="application/json",
        )

    def _discard(self, connection: _Connection) -> None:
        self._open.discard(connection)
        connection.close()

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()

    async def __aenter__(self) -> LeanClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
