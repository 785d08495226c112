"""The terminal's WebView: pages (a merchant's menu, self-order, checkout) shown by the Business
App, talking to it through the native bridge ``window.MpacNative`` (``docs/terminal-emulator.md``,
"WebView").

``host`` defines :class:`WebViewHost` / :class:`WebViewEngine`; ``fake`` is the default engine
(no browser, for unit tests and terminals that do not need pages); ``chromium`` runs headless
Chromium through Playwright on its own thread (imported only when chosen); ``bridge`` is the
protocol. Nothing here imports Playwright at import time.
"""

from terminal_emulator.webview.bridge import (
    INIT_SCRIPT,
    METHODS,
    NATIVE_METHOD,
    NATIVE_OBJECT,
    BridgeCall,
    BridgeError,
    NativeBridge,
    parse_call,
    parse_result_script,
    result_script,
)
from terminal_emulator.webview.fake import FakeWebViewEngine, FakeWebViewHost
from terminal_emulator.webview.host import (
    JavascriptHandler,
    WebViewEngine,
    WebViewError,
    WebViewHost,
    origin_of,
    without_fragment,
)

__all__ = [
    "INIT_SCRIPT",
    "METHODS",
    "NATIVE_METHOD",
    "NATIVE_OBJECT",
    "BridgeCall",
    "BridgeError",
    "FakeWebViewEngine",
    "FakeWebViewHost",
    "JavascriptHandler",
    "NativeBridge",
    "WebViewEngine",
    "WebViewError",
    "WebViewHost",
    "engine_named",
    "origin_of",
    "parse_call",
    "parse_result_script",
    "result_script",
    "without_fragment",
]


def engine_named(
    name: str, *, executable_path: str | None = None, headless: bool = True
) -> WebViewEngine:
    """``fake`` or ``chromium`` (``executable_path`` default ``/usr/bin/chromium``)."""
    if name == "fake":
        return FakeWebViewEngine()
    if name == "chromium":
        from terminal_emulator.webview.chromium import DEFAULT_CHROMIUM, ChromiumWebViewEngine

        return ChromiumWebViewEngine(
            executable_path=executable_path or DEFAULT_CHROMIUM, headless=headless
        )
    raise ValueError(f"unknown WebView engine {name!r} (fake, chromium)")
