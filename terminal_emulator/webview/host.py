"""The terminal's WebView as the Business App uses it: an interface and what adapters share.

A :class:`WebViewEngine` makes :class:`WebViewHost` instances (one per open page); the engine
is chosen by configuration (``AppConfig.webview``): the fake (``terminal_emulator.webview.fake``,
the default, records everything and runs no page) or headless Chromium through Playwright
(``terminal_emulator.webview.chromium``, launched only when a page is first opened).

Every method is a coroutine called on the device's event loop; an adapter that does its work
elsewhere (Chromium runs on its own thread) hands it over and awaits it without blocking that
loop. A JavaScript interface handler is called back on the loop that added it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

# ``handler(argument, page_url)``: a page called ``window.<name>.<method>(argument)``; the
# argument is the string the page passed (``String(x)``), ``page_url`` the URL of the
# document that called (Android's WebView does not tell; the bridge uses it to refuse pages of
# another origin).
JavascriptHandler = Callable[[str, str], None]


class WebViewError(Exception):
    """The page could not be loaded, a script failed, or the engine is unavailable."""


class WebViewHost(Protocol):
    """One WebView: a page that can be loaded, scripted and closed.

    Interfaces and init scripts must be added before :meth:`load`; they apply to every document
    the view loads afterwards (reloads and navigations too), before the page's own scripts.
    """

    @property
    def engine_name(self) -> str:
        """``fake`` or ``chromium``: shown on the activity's screen."""
        ...

    async def add_javascript_interface(
        self, name: str, methods: Mapping[str, JavascriptHandler]
    ) -> None:
        """``window.<name>.<method>(argument)`` in the page calls ``methods[method]`` — Android's
        ``addJavascriptInterface`` with ``@JavascriptInterface`` methods taking one String and
        returning nothing (the call returns ``undefined`` at once; answers go back by
        :meth:`evaluate`). Calls from frames other than the main frame are dropped."""
        ...

    async def add_init_script(self, script: str) -> None:
        """Run ``script`` in every document before the page's scripts."""
        ...

    async def load(self, url: str) -> None:
        """Navigate to ``url`` and wait until its document has loaded; raises
        :class:`WebViewError` when it cannot be loaded."""
        ...

    async def evaluate(self, script: str) -> Any:
        """Evaluate a JavaScript expression in the page's main frame; its JSON-able value."""
        ...

    async def title(self) -> str:
        """The document's title (empty while nothing is loaded)."""
        ...

    async def url(self) -> str:
        """The URL of the document shown now."""
        ...

    async def screenshot(self, path: Path) -> None:
        """Write a PNG of the viewport to ``path`` (for tests and bug reports)."""
        ...

    async def close(self) -> None:
        """Close the page; later calls raise :class:`WebViewError`. Idempotent."""
        ...


class WebViewEngine(Protocol):
    """Makes WebViews. Owned by one terminal; :meth:`close` when the terminal stops."""

    name: str

    async def open(self) -> WebViewHost:
        """A new, empty WebView (an engine may start its browser here, the first time)."""
        ...

    async def close(self) -> None:
        """Close every WebView and the browser, if one was started. Idempotent."""
        ...


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL (lower case, default ports dropped), as
    ``location.origin`` gives it; ``""`` for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return ""
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def without_fragment(url: str) -> str:
    """The URL without its ``#fragment`` (where the payment token travels): what may be shown
    and logged."""
    return url.split("#", 1)[0]
