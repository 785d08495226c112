"""The real WebView: headless Chromium driven by Playwright.

Threading. The device's event loop must never block, and Playwright's sync API refuses to run
on a thread with a running asyncio loop. So the engine runs Playwright's **async** API on a
loop of its own, in one dedicated daemon thread per engine (``webview-<name>``), started with
the first :meth:`ChromiumWebViewEngine.open` — a terminal that never opens a WebView launches
no thread and no browser. Every host method is a coroutine on the device's loop that submits
the real work to that thread (``asyncio.run_coroutine_threadsafe``) and awaits it
(``asyncio.wrap_future``): the device loop keeps running meanwhile, and cancelling the awaiting
task (the app's process is killed) cancels the work. The other direction — a page calling
``window.MpacNative.request(…)`` — arrives on the browser thread (a Playwright binding) and is
handed to the device's loop with ``call_soon_threadsafe``, so app code only ever runs there.

One browser per engine, one browser context (cookies, storage) per WebView, closed with it.
Chromium is Debian's ``/usr/bin/chromium`` by default (``apt-get install chromium``); Playwright
is the ``playwright`` Python package (its bundled browsers are not needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from terminal_emulator.webview.host import JavascriptHandler, WebViewError, without_fragment

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Playwright

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CHROMIUM = "/usr/bin/chromium"
# A SmartPOS screen, portrait.
DEFAULT_VIEWPORT = (480, 800)


def playwright_available() -> bool:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return False
    return True


class _BrowserThread:
    """A daemon thread running an asyncio loop for Playwright."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the browser thread; await it from any other loop."""
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError as error:  # the loop is closed
            coro.close()
            raise WebViewError(f"the WebView engine is stopped ({error})") from None
        return await asyncio.wrap_future(future)

    async def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self.thread.join, 10)


def _binding_name(name: str, method: str) -> str:
    return "__mpacWebView_" + re.sub(r"[^A-Za-z0-9_]", "_", f"{name}_{method}")


def _interface_script(name: str, methods: Mapping[str, str]) -> str:
    """Defines ``window[name]`` whose methods pass ``String(argument)`` to the bindings and
    return ``undefined`` (the binding's promise is dropped; answers come by evaluate)."""
    body = ", ".join(
        f"{json.dumps(method)}: function (argument) {{"
        f" var p = window[{json.dumps(binding)}](String(argument));"
        " if (p && typeof p.catch === 'function') { p.catch(function () {}); } }"
        for method, binding in methods.items()
    )
    return (
        "(function () {"
        f" if (Object.prototype.hasOwnProperty.call(window, {json.dumps(name)})) {{ return; }}"
        f" Object.defineProperty(window, {json.dumps(name)}, {{"
        f" value: Object.freeze({{{body}}}), writable: false, configurable: false }}); }})();"
    )


class ChromiumWebViewHost:
    """One page in its own browser context; every method runs on the engine's thread."""

    engine_name = "chromium"

    def __init__(self, engine: ChromiumWebViewEngine, context: BrowserContext, page: Page) -> None:
        self._engine = engine
        self._thread = engine._require_thread()
        self.context = context
        self.page = page
        self.closed = False
        self.load_timeout_s = engine.load_timeout_s

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.closed:
            coro.close()
            raise WebViewError("the WebView is closed")
        from playwright.async_api import Error as PlaywrightError

        try:
            return await self._thread.call(coro)
        except PlaywrightError as error:
            raise WebViewError(str(error).splitlines()[0]) from error

    async def add_javascript_interface(
        self, name: str, methods: Mapping[str, JavascriptHandler]
    ) -> None:
        caller = asyncio.get_running_loop()
        bindings: dict[str, str] = {}
        for method, handler in methods.items():
            binding = _binding_name(name, method)
            bindings[method] = binding
            await self._call(self._expose(binding, handler, caller))
        await self.add_init_script(_interface_script(name, bindings))

    async def _expose(
        self, binding: str, handler: JavascriptHandler, caller: asyncio.AbstractEventLoop
    ) -> None:
        def on_call(source: dict[str, Any], argument: Any = None) -> None:
            # On the browser thread. Only the main frame may talk to the app.
            frame = source.get("frame")
            if frame is None or frame.parent_frame is not None:
                log.warning("WebView: bridge call from a subframe ignored")
                return
            url = str(frame.url)
            text = argument if isinstance(argument, str) else str(argument)
            try:
                caller.call_soon_threadsafe(handler, text, url)
            except RuntimeError:  # the device's loop is gone
                log.info("WebView: bridge call after the device stopped: %s", url)

        await self.context.expose_binding(binding, on_call)

    async def add_init_script(self, script: str) -> None:
        await self._call(self.context.add_init_script(script))

    async def load(self, url: str) -> None:
        async def goto() -> int | None:
            response = await self.page.goto(
                url, wait_until="load", timeout=self.load_timeout_s * 1000
            )
            return response.status if response is not None else None

        try:
            status = await self._call(goto())
        except WebViewError as error:
            # Playwright names the URL it tried: never repeat its fragment (a payment token).
            raise WebViewError(str(error).replace(url, without_fragment(url))) from None
        if status is not None and status >= 400:
            raise WebViewError(f"HTTP {status} from {without_fragment(url)}")

    async def evaluate(self, script: str) -> Any:
        return await self._call(self.page.evaluate(script))

    async def title(self) -> str:
        return await self._call(self.page.title())

    async def url(self) -> str:
        async def current() -> str:
            return self.page.url

        return await self._call(current())

    async def screenshot(self, path: Path) -> None:
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await self._call(self.page.screenshot(path=str(path)))

    async def with_page(self, action: Callable[[Page], Awaitable[T]]) -> T:
        """Run ``await action(page)`` on the engine's thread (tests: click, fill, wait for
        text with Playwright's own API). Playwright errors come back as they are."""
        if self.closed:
            raise WebViewError("the WebView is closed")

        async def run() -> T:
            return await action(self.page)

        return await self._thread.call(run())

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._engine._hosts.discard(self)
        with contextlib.suppress(Exception):
            await self._thread.call(self.context.close())


class ChromiumWebViewEngine:
    """Headless Chromium through Playwright, started at the first :meth:`open`."""

    name = "chromium"

    def __init__(
        self,
        *,
        executable_path: str | None = DEFAULT_CHROMIUM,
        headless: bool = True,
        viewport: tuple[int, int] = DEFAULT_VIEWPORT,
        load_timeout_s: float = 30.0,
        launch_args: tuple[str, ...] = (),
    ) -> None:
        self.executable_path = executable_path
        self.headless = headless
        self.viewport = viewport
        self.load_timeout_s = load_timeout_s
        self.launch_args = launch_args
        self._thread: _BrowserThread | None = None
        self._thread_lock = threading.Lock()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._launch_lock: asyncio.Lock | None = None  # of the browser thread's loop
        self._hosts: set[ChromiumWebViewHost] = set()
        self.launches = 0

    @property
    def started(self) -> bool:
        """Whether the browser thread runs (the browser is launched with it)."""
        return self._thread is not None

    def _require_thread(self) -> _BrowserThread:
        with self._thread_lock:
            if self._thread is None:
                self._thread = _BrowserThread(f"webview-{self.name}")
            return self._thread

    async def _ensure_browser(self) -> Browser:
        # On the browser thread.
        if self._launch_lock is None:
            self._launch_lock = asyncio.Lock()
        async with self._launch_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            from playwright.async_api import async_playwright

            if self._playwright is None:
                self._playwright = await async_playwright().start()
            self._browser = await self._playwright.chromium.launch(
                executable_path=self.executable_path,
                headless=self.headless,
                args=list(self.launch_args),
            )
            self.launches += 1
            log.info(
                "WebView: Chromium %s launched (%s)",
                self._browser.version,
                self.executable_path or "Playwright's own",
            )
            return self._browser

    async def _new_page(self) -> tuple[BrowserContext, Page]:
        browser = await self._ensure_browser()
        width, height = self.viewport
        context = await browser.new_context(viewport={"width": width, "height": height})
        page = await context.new_page()
        return context, page

    async def open(self) -> ChromiumWebViewHost:
        if not playwright_available():
            raise WebViewError("the playwright package is not installed (pip install playwright)")
        executable = self.executable_path
        if executable is not None and not await asyncio.to_thread(Path(executable).exists):
            raise WebViewError(f"no Chromium at {self.executable_path} (apt-get install chromium)")
        from playwright.async_api import Error as PlaywrightError

        thread = self._require_thread()
        try:
            context, page = await thread.call(self._new_page())
        except PlaywrightError as error:
            raise WebViewError(f"Chromium did not start: {error}") from error
        host = ChromiumWebViewHost(self, context, page)
        self._hosts.add(host)
        return host

    async def close(self) -> None:
        """Close the views, the browser and the thread (a later :meth:`open` starts anew)."""
        with self._thread_lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        for host in list(self._hosts):
            host.closed = True
        self._hosts.clear()

        async def shutdown() -> None:
            browser, self._browser = self._browser, None
            playwright, self._playwright = self._playwright, None
            self._launch_lock = None
            if browser is not None:
                with contextlib.suppress(Exception):
                    await browser.close()
            if playwright is not None:
                with contextlib.suppress(Exception):
                    await playwright.stop()

        with contextlib.suppress(Exception):
            await thread.call(shutdown())
        await thread.stop()
