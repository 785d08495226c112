"""Drivers for the WebView tests: a server-sent events reader, raw HTTP for paths a client
library would tidy up, an SDK folder with known files, and reading a QR code out of an SVG."""

from __future__ import annotations

import json
import re
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ORIGIN = "https://shop.example"  # a merchant page on its own origin
SVG_NS = "{http://www.w3.org/2000/svg}"


# --- server-sent events -----------------------------------------------------------------------


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str
    id: str | None

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


@dataclass(frozen=True)
class SseComment:
    text: str


def read_sse(response: httpx.Response) -> Iterator[SseEvent | SseComment]:
    """Events and comments in the order they arrive, until the server ends the stream."""
    event, event_id, data = "message", None, list[str]()
    for line in response.iter_lines():
        if line == "":
            if data:
                yield SseEvent(event, "\n".join(data), event_id)
            event, event_id, data = "message", None, []
        elif line.startswith(":"):
            yield SseComment(line[1:].strip())
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value


def events_only(items: list[SseEvent | SseComment]) -> list[SseEvent]:
    return [item for item in items if isinstance(item, SseEvent)]


# --- raw HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_get(base_url: str, raw_target: str) -> RawResponse:
    """GET with the request target sent byte for byte (httpx would resolve ``..`` first)."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    assert parts.port is not None
    request = (
        f"GET {raw_target} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)


# --- an SDK folder with known content ---------------------------------------------------------


@dataclass(frozen=True)
class FakeSdkTree:
    """``dist/`` and ``demo/`` with the served names, plus files that must never be served."""

    root: Path
    secret: bytes

    @classmethod
    def create(cls, root: Path) -> FakeSdkTree:
        secret = f"SECRET-{uuid.uuid4().hex}".encode()
        (root / "dist").mkdir()
        (root / "demo").mkdir()
        (root / "dist" / "mpac-pay.mjs").write_text('export const VERSION = "test";\n')
        (root / "dist" / "mpac-pay.js").write_text('window.MpacPay = { VERSION: "test" };\n')
        # mpac-pay.d.ts is left out: a listed name missing on disk is a 404, not a 500.
        (root / "demo" / "index.html").write_text("<!doctype html><title>demo</title>\n")
        # Present next to the served files but on no list: never served.
        (root / "dist" / "secret.txt").write_bytes(secret)
        (root / "demo" / "notes.md").write_bytes(secret)
        (root / "secret.txt").write_bytes(secret)
        (root / "dist" / "link.mjs").symlink_to(root / "secret.txt")
        return cls(root, secret)


# --- QR codes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QrSvg:
    width: int
    height: int
    view_box: str
    modules: set[tuple[int, int]]  # (row, column) of every dark module, quiet zone excluded


def read_qr_svg(text: str, *, border: int = 4) -> QrSvg:
    """The dark modules drawn by the SVG's stroked path (segno draws each row's runs as
    horizontal strokes: ``M``/``m`` move, ``h`` draws a run, in module units)."""
    root = ET.fromstring(text)  # noqa: S314 - our own server's answer
    assert root.tag == f"{SVG_NS}svg", root.tag
    stroked = [path for path in root.iter(f"{SVG_NS}path") if path.get("stroke")]
    assert len(stroked) == 1, text[:300]
    modules: set[tuple[int, int]] = set()
    x = y = 0.0
    for command, numbers in re.findall(r"([MmHhVv])([^MmHhVvZz]*)", stroked[0].get("d", "")):
        values = [float(value) for value in re.findall(r"-?\d+(?:\.\d+)?", numbers)]
        if command == "M":
            x, y = values
        elif command == "m":
            x, y = x + values[0], y + values[1]
        elif command == "h":
            (length,) = values
            for column in range(int(x), int(x + length)):
                modules.add((int(y) - border, column - border))
            x += length
        else:
            raise AssertionError(f"unexpected path command {command}")
    return QrSvg(
        width=int(root.get("width", "0")),
        height=int(root.get("height", "0")),
        view_box=root.get("viewBox", ""),
        modules=modules,
    )


def dark_modules(matrix: Any) -> set[tuple[int, int]]:
    return {
        (row, column)
        for row, values in enumerate(matrix)
        for column, value in enumerate(values)
        if value
    }
