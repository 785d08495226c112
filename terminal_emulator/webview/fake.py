"""The fake WebView: runs no page, records what the app does, and lets a test play the page.

The default engine of ``AppConfig`` (cheap, no browser): a terminal started without
``--webview chromium`` opens WebView activities on it. Tests drive the page's side with
:meth:`FakeWebViewHost.call_native` (what ``window.MpacNative.request(json)`` does) and read the
app's answers with :meth:`FakeWebViewHost.native_results` / :meth:`wait_for_result`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terminal_emulator.webview.bridge import CallId, parse_result_script
from terminal_emulator.webview.host import JavascriptHandler, WebViewError, origin_of

# 1x1 transparent PNG: what the fake "screenshots".
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@dataclass
class FakeWebViewHost:
    engine_name: str = "fake"
    page_title: str = "Fake page"
    # ``on_evaluate(script)`` answers evaluate(); default: an answer script says "delivered"
    # when the shown document has the answer's origin, else None.
    on_evaluate: Callable[[str], Any] | None = None
    fail_load: str | None = None  # load() raises WebViewError with this message
    interfaces: dict[str, dict[str, JavascriptHandler]] = field(default_factory=dict)
    init_scripts: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        self._changed: asyncio.Event | None = None

    # -- WebViewHost -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise WebViewError("the WebView is closed")

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def add_javascript_interface(
        self, name: str, methods: Mapping[str, JavascriptHandler]
    ) -> None:
        self._check_open()
        self.interfaces[name] = dict(methods)

    async def add_init_script(self, script: str) -> None:
        self._check_open()
        self.init_scripts.append(script)

    async def load(self, url: str) -> None:
        self._check_open()
        if self.fail_load is not None:
            raise WebViewError(self.fail_load)
        self.loaded.append(url)
        self._notify()

    async def evaluate(self, script: str) -> Any:
        self._check_open()
        self.evaluated.append(script)
        self._notify()
        if self.on_evaluate is not None:
            return self.on_evaluate(script)
        answer = parse_result_script(script)
        if answer is not None:
            return "delivered" if origin_of(await self.url()) == answer[2] else "wrong-origin"
        return None

    async def title(self) -> str:
        return self.page_title if self.loaded else ""

    async def url(self) -> str:
        return self.loaded[-1] if self.loaded else "about:blank"

    async def screenshot(self, path: Path) -> None:
        self._check_open()

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_PNG)

        await asyncio.to_thread(write)
        self.screenshots.append(path)

    async def close(self) -> None:
        self.closed = True
        self._notify()

    # -- the page's side (tests) -----------------------------------------------------------

    def call_native(
        self,
        message: str | Mapping[str, Any],
        *,
        name: str = "MpacNative",
        method: str = "request",
        page_url: str | None = None,
    ) -> None:
        """What ``window.<name>.<method>(message)`` does in the page (a mapping is sent as
        JSON text); ``page_url`` defaults to the loaded URL."""
        self._check_open()
        handler = self.interfaces.get(name, {}).get(method)
        if handler is None:
            raise WebViewError(f"window.{name}.{method} is not defined")
        text = message if isinstance(message, str) else json.dumps(dict(message))
        handler(text, page_url if page_url is not None else (self.loaded or ["about:blank"])[-1])

    def native_results(self) -> list[tuple[CallId, dict[str, Any]]]:
        """The answers evaluated so far: ``(call id, result JSON)``, in order."""
        results = []
        for script in self.evaluated:
            answer = parse_result_script(script)
            if answer is not None:
                results.append((answer[0], json.loads(answer[1])))
        return results

    def results_for(self, call_id: CallId) -> list[dict[str, Any]]:
        return [result for cid, result in self.native_results() if cid == call_id]

    async def wait_for(self, predicate: Callable[[], Any], timeout_s: float = 10.0) -> Any:
        """Until ``predicate()`` is truthy (checked on every load, evaluate and close)."""
        if self._changed is None:
            self._changed = asyncio.Event()
        changed = self._changed
        async with asyncio.timeout(timeout_s):
            while True:
                changed.clear()
                value = predicate()
                if value:
                    return value
                await changed.wait()

    async def wait_for_result(self, call_id: CallId, timeout_s: float = 10.0) -> dict[str, Any]:
        """The first answer to ``call_id``."""
        results = await self.wait_for(lambda: self.results_for(call_id), timeout_s)
        return dict(results[0])


@dataclass
class FakeWebViewEngine:
    """Makes :class:`FakeWebViewHost` views; ``hosts`` lists them (the last is the newest).
    ``make_host`` lets a test configure each view (title, failures, evaluate answers)."""

    name: str = "fake"
    make_host: Callable[[], FakeWebViewHost] = FakeWebViewHost
    hosts: list[FakeWebViewHost] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        self._opened: asyncio.Event | None = None

    async def open(self) -> FakeWebViewHost:
        self.closed = False
        host = self.make_host()
        self.hosts.append(host)
        if self._opened is not None:
            self._opened.set()
        return host

    async def close(self) -> None:
        """Close every view (the engine may open more later, as a restarted terminal does)."""
        self.closed = True
        for host in self.hosts:
            await host.close()

    async def wait_for_host(self, count: int = 1, timeout_s: float = 10.0) -> FakeWebViewHost:
        """Until ``count`` views have been opened; the last one."""
        if self._opened is None:
            self._opened = asyncio.Event()
        opened = self._opened
        async with asyncio.timeout(timeout_s):
            while len(self.hosts) < count:
                opened.clear()
                await opened.wait()
        return self.hosts[-1]
