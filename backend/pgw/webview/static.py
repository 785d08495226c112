"""The WebView SDK build and the demo merchant page, served from fixed lists of file names.

Only the names listed here are ever read, each from one known folder: a request path is looked
up in a dict, never joined onto a directory, so no ``..``, encoded slash or symlink trick can
reach another file, and nothing lists a folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from backend.core.errors import NotFound

JAVASCRIPT = "text/javascript; charset=utf-8"  # RFC 9239, for classic scripts and modules
# TypeScript has no registered media type; this is the one tools (Deno, CDNs) recognise, and a
# browser never runs it (nosniff).
TYPESCRIPT = "application/typescript; charset=utf-8"
HTML = "text/html; charset=utf-8"
CSS = "text/css; charset=utf-8"
SVG = "image/svg+xml"

# The demo page may run its own scripts and call pgw (its own origin), nothing else: no inline
# script, eval, plugin, framing or form post elsewhere. Inline styles are allowed for the page's
# markup (styles run no code). The QR code arrives by fetch() with the token and is shown from a
# data: or blob: URL.
DEMO_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


@dataclass(frozen=True)
class StaticFolder:
    subdir: str  # inside the webview_sdk folder
    files: Mapping[str, str]  # name -> Content-Type
    cache_control: str
    html_headers: Mapping[str, str] = field(default_factory=dict)  # added to .html answers


# /sdk/v1/ is versioned by major version only, so a fix keeps the URL: an hour of caching, then
# revalidation by ETag (a cheap 304), rather than "immutable".
SDK_FILES = StaticFolder(
    subdir="dist",
    files={"mpac-pay.mjs": JAVASCRIPT, "mpac-pay.js": JAVASCRIPT, "mpac-pay.d.ts": TYPESCRIPT},
    cache_control="public, max-age=3600",
)
# The demo always revalidates: developers edit it and reload.
DEMO_FILES = StaticFolder(
    subdir="demo",
    files={
        "index.html": HTML,
        "demo.js": JAVASCRIPT,
        "demo.css": CSS,
        "favicon.svg": SVG,
    },
    cache_control="no-cache",
    html_headers={"Content-Security-Policy": DEMO_CSP},
)


def default_root() -> Path:
    """``webview_sdk/`` of the source tree this module runs from."""
    return Path(__file__).resolve().parents[3] / "webview_sdk"


def sdk_root(configured: str) -> Path:
    return Path(configured).expanduser() if configured else default_root()


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str
    headers: Mapping[str, str]


def _not_found(name: str) -> NotFound:
    return NotFound(f"There is no file {name!r} here.", code="file_not_found")


async def load(root: Path, folder: StaticFolder, name: str) -> StaticFile:
    content_type = folder.files.get(name)
    if content_type is None:
        raise _not_found(name)
    try:
        body = await anyio.Path(root / folder.subdir / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise _not_found(name) from exc
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "Cache-Control": folder.cache_control,
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
    }
    if content_type == HTML:
        headers.update(folder.html_headers)
    return StaticFile(body, content_type, etag, headers)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*`` or any listed tag, compared weakly (W/ ignored)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    candidates = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag in candidates
