"""The three services as uvicorn servers in one process and one event loop.

Each service keeps its own FastAPI app and port, exactly as it would run alone; sharing a loop
only saves processes. Signals belong to the runner, not to uvicorn: each ``uvicorn.Server``
would otherwise install its own SIGINT handler over the others', and only the last one would
ever stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.settings import SERVICE_NAMES, Settings
from backend.observability.middleware import ACCESS_LOGGER
from backend.runtime.log_setup import ServiceLogContext, set_log_service

logger = logging.getLogger(__name__)
T = TypeVar("T")

_POLL_S = 0.05
# Bounds how long a shutdown waits for in-flight requests before cancelling them.
_GRACEFUL_SHUTDOWN_S = 10


class PlatformStartupError(RuntimeError):
    """A service did not come up; the message names the service and the reason."""


class PlatformError(RuntimeError):
    """A service stopped on its own after start-up."""


def load_app(service: str, settings: Settings) -> ASGIApp:
    """``backend.<service>.app.create_app(settings)``."""
    module_name = f"backend.{service}.app"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise PlatformStartupError(f"{service}: module {module_name} does not exist") from exc
        raise
    app: ASGIApp = module.create_app(settings)
    return app


if not hasattr(uvicorn.Server, "capture_signals"):  # pragma: no cover - guards an upgrade
    # Without this hook every server would install its own SIGINT handler again.
    raise ImportError(f"uvicorn {uvicorn.__version__} has no Server.capture_signals to override")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :class:`Platform`'s caller."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _LifespanProbe:
    """Keeps the exception an app's lifespan startup raised, which uvicorn only logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.startup_error: BaseException | None = None
        self.startup_message: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "lifespan.startup.complete":
                started = True
            elif message["type"] == "lifespan.startup.failed":
                self.startup_message = str(message.get("message") or "")
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except BaseException as exc:
            if not started:
                self.startup_error = exc
            raise

    def reason(self) -> str | None:
        if self.startup_error is not None:
            error = self.startup_error
            return f"startup raised {type(error).__name__}: {error}"
        if self.startup_message:
            return f"startup failed: {self.startup_message.strip().splitlines()[-1]}"
        return None


def _listen(service: str, host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """Bind the service's port up front, so a port in use fails before any app starts.

    ``reuse_port`` (SO_REUSEPORT) lets several worker processes of one service listen on the
    same port, the kernel spreading new connections over them (``mpac serve --workers``).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise PlatformStartupError(f"{service}: cannot resolve host {host!r}: {exc}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        # Lets a restart rebind while the previous run's connections sit in TIME_WAIT; Linux
        # still refuses the bind while another socket listens on the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno in _ADDR_IN_USE else f"cannot be bound ({exc})"
        raise PlatformStartupError(
            f"{service}: port {port} on {host} {reason}; stop whatever listens there or pick "
            f"another port (--{service}-port / MPAC_{service.upper()}_PORT)"
        ) from exc
    sock.set_inheritable(False)
    return sock


_ADDR_IN_USE = {98, 48, 10048}  # EADDRINUSE on Linux, macOS/BSD, Windows


@dataclass
class _Service:
    name: str
    server: _Server
    sock: socket.socket
    probe: _LifespanProbe
    failure: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Platform:
    """Runs the services' uvicorn servers in the current event loop; one :meth:`serve` each.

    :meth:`request_exit` may be called from any thread: uvicorn polls ``should_exit``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        services: Sequence[str] = SERVICE_NAMES,
        apps: Mapping[str, ASGIApp] | None = None,
        log_level: str = "info",
        access_log: bool = True,
        reuse_port: bool = False,
    ) -> None:
        self.settings = settings
        self.services = tuple(services)
        self._apps = dict(apps or {})
        self._log_level = log_level
        self._access_log = access_log
        self._reuse_port = reuse_port
        self._running: list[_Service] = []
        self._exit_requested = False

    def url_of(self, service: str) -> str:
        return self.settings.url_of(service)

    def request_exit(self, *, force: bool = False) -> None:
        """Ask every server to stop; ``force`` also abandons in-flight requests."""
        self._exit_requested = True
        for service in self._running:
            service.server.should_exit = True
            if force:
                service.server.force_exit = True

    @property
    def exit_requested(self) -> bool:
        return self._exit_requested

    def _prepare(self) -> list[_Service]:
        if not self._access_log:
            # The per-request access line only; everything else the services log still shows.
            logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)
        prepared: list[_Service] = []
        sockets: list[socket.socket] = []
        try:
            # Every port first: a port in use then fails before any app is even built.
            for name in self.services:
                sockets.append(
                    _listen(
                        name,
                        self.settings.host,
                        self.settings.port_of(name),
                        reuse_port=self._reuse_port,
                    )
                )
            for name, sock in zip(self.services, sockets, strict=True):
                app = self._apps.get(name) or load_app(name, self.settings)
                probe = _LifespanProbe(ServiceLogContext(app, name))
                config = uvicorn.Config(
                    probe,
                    host=self.settings.host,
                    port=self.settings.port_of(name),
                    lifespan="on",
                    log_config=None,
                    log_level=self._log_level,
                    # Our middleware writes the access line (route, tenant, trace ids).
                    access_log=False,
                    server_header=False,
                    # permessage-deflate keeps a zlib context per socket (about 40 KiB of an
                    # idle device's ~90 KiB on smarttab) to shrink JSON events of a few hundred
                    # bytes: not worth it (docs/performance.md).
                    ws_per_message_deflate=False,
                    timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
                )
                prepared.append(_Service(name=name, server=_Server(config), sock=sock, probe=probe))
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        return prepared

    async def _run_one(self, service: _Service) -> None:
        set_log_service(service.name)
        try:
            await service.server.serve(sockets=[service.sock])
        except SystemExit as exc:
            # uvicorn calls sys.exit() when startup fails; inside a task that would tear down
            # the whole loop instead of only this server.
            service.failure = service.probe.reason() or f"uvicorn exited with status {exc.code}"
        except Exception as exc:
            logger.exception("%s crashed", service.name)
            service.failure = f"{type(exc).__name__}: {exc}"
        else:
            if not service.server.started:
                service.failure = service.probe.reason() or "stopped before it started"
        finally:
            service.sock.close()

    async def serve(self, on_started: Callable[[], None] | None = None) -> None:
        """Start every service, call ``on_started`` once all listen, return after they stop.

        Raises :class:`PlatformStartupError` if any service fails to start (the others are
        stopped first) and :class:`PlatformError` if one stops on its own later.
        """
        services = self._prepare()
        self._running = services
        if self._exit_requested:
            self.request_exit()
        for service in services:
            service.task = asyncio.create_task(self._run_one(service), name=f"mpac-{service.name}")
        tasks = {service.task for service in services if service.task is not None}
        all_started = False
        ended_first: list[str] = []
        try:
            while not self._exit_requested:
                done, _ = await asyncio.wait(
                    tasks, timeout=_POLL_S, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    break
                if all(service.server.started for service in services):
                    all_started = True
                    break
            if all_started:
                logger.info("all services started: %s", ", ".join(self.services))
                # A stop requested while starting wins: announcing URLs now would mislead.
                if on_started is not None and not self._exit_requested:
                    on_started()
                ended, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                ended_first = [service.name for service in services if service.task in ended]
            exit_was_requested = self._exit_requested
            self.request_exit()
            await asyncio.gather(*tasks)
        except BaseException:
            # Cancelled, or on_started raised: nothing may outlive this call.
            self.request_exit(force=True)
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            for service in services:
                service.sock.close()
            self._running = []

        failures = [f"{service.name}: {service.failure}" for service in services if service.failure]
        if not all_started and not exit_was_requested:
            # Also reached when a server exited cleanly before starting, with no recorded failure.
            failures = failures or ["a service stopped during start-up"]
            raise PlatformStartupError("; ".join(failures))
        if failures:
            raise PlatformError("; ".join(failures))
        if all_started and not exit_was_requested:
            raise PlatformError(f"stopped on its own: {', '.join(ended_first)}")


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop when it is installed (``uvicorn[standard]`` brings it).

    uvicorn picks uvloop itself only when it creates the loop; the platform creates its own
    (several servers share it), so it asks for uvloop here: its event loop and transports cost
    less CPU per request and per socket than asyncio's default ones.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency of uvicorn[standard]
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


@contextlib.contextmanager
def signals_stop(platform: Platform) -> Iterator[None]:
    """SIGINT/SIGTERM stop the platform gracefully; a second one forces the stop."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def on_signal(sig: int) -> None:
        name = signal.Signals(sig).name
        if platform.exit_requested:
            logger.warning("received %s again, stopping without waiting for requests", name)
            platform.request_exit(force=True)
        else:
            logger.info("received %s, stopping (send it again to force)", name)
            platform.request_exit()

    def on_signal_sync(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(on_signal, sig)

    installed: list[signal.Signals] = []
    try:
        for sig in signals:
            try:
                loop.add_signal_handler(sig, on_signal, sig)
            except NotImplementedError:  # event loops without add_signal_handler (Windows)
                signal.signal(sig, on_signal_sync)
            installed.append(sig)
        yield
    finally:
        for sig in installed:
            with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
            handler = previous[sig]
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


async def serve_until_signalled(
    platform: Platform, on_started: Callable[[], None] | None = None
) -> None:
    """:meth:`Platform.serve` in the main thread, stopped by Ctrl-C or SIGTERM."""
    with signals_stop(platform):
        await platform.serve(on_started)


class PlatformThread:
    """The platform in a background thread with its own loop, for tests and tools.

    ``start()`` returns once every service listens (or raises why one did not); ``stop()``
    shuts them down. The database must already be migrated.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        services: Sequence[str] = SERVICE_NAMES,
        apps: Mapping[str, ASGIApp] | None = None,
        log_level: str = "warning",
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.platform = Platform(
            settings, services=services, apps=apps, log_level=log_level, access_log=False
        )
        self._startup_timeout_s = startup_timeout_s
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def portal_url(self) -> str:
        return self.settings.url_of("portal")

    @property
    def smarttab_url(self) -> str:
        return self.settings.url_of("smarttab")

    @property
    def pgw_url(self) -> str:
        return self.settings.url_of("pgw")

    def url_of(self, service: str) -> str:
        return self.settings.url_of(service)

    def _main(self) -> None:
        try:
            asyncio.run(self.platform.serve(on_started=self._started.set))
        except BaseException as exc:
            self._error = exc

    def start(self) -> PlatformThread:
        if self._thread is not None:
            raise RuntimeError("PlatformThread.start() was already called")
        self._thread = threading.Thread(target=self._main, name="mpac-platform", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        # Wakes on either outcome: started, or the thread ended (with the reason in _error).
        while not self._started.wait(timeout=_POLL_S) and self._thread.is_alive():
            if time.monotonic() > deadline:
                self.platform.request_exit(force=True)
                self._thread.join(10)
                raise PlatformStartupError(
                    f"services did not start within {self._startup_timeout_s:.0f} s"
                )
        if not self._started.is_set():
            self._thread.join()
            error = self._error or PlatformStartupError("platform thread ended during start-up")
            if isinstance(error, PlatformStartupError):
                raise PlatformStartupError(str(error)) from error
            raise PlatformStartupError(f"{type(error).__name__}: {error}") from error
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self.platform.request_exit()
        thread.join(timeout_s)
        if thread.is_alive():
            self.platform.request_exit(force=True)
            thread.join(5)
            raise RuntimeError(f"platform did not stop within {timeout_s:.0f} s")
        error = self._error
        if error is not None and not isinstance(error, PlatformStartupError):
            raise RuntimeError(f"platform stopped with an error: {error}") from error

    def __enter__(self) -> PlatformThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
