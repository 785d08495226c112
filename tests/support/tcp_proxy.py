"""A real TCP proxy a test can cut: the ADB link between a host and a device, made to drop.

``TcpProxy(target_port).start()`` listens on 127.0.0.1:<free port> and relays every
connection to the target. ``cut()`` closes every relayed connection (both ends, as a pulled
cable ends up: the host sees its socket closed) and closes the listening socket, so new
connections are *refused*; ``restore()`` listens again on the same port. ``cut(for_s=…)``
restores by itself after a while. Threads only; everything stops with ``close()``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType

_CHUNK = 64 * 1024
_ACCEPT_POLL_S = 0.05


class TcpProxy:
    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.accepted = 0  # connections relayed so far
        self._lock = threading.Lock()
        self._connections: list[tuple[socket.socket, socket.socket]] = []
        self._listener: socket.socket | None = None
        self._accepting = threading.Event()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._restore_timer: threading.Timer | None = None

    @property
    def address(self) -> str:
        """``host:port`` — an ADB serial for the proxied device."""
        return f"{self.host}:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._listen()
        return self

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timer, self._restore_timer = self._restore_timer, None
        if timer is not None:
            timer.cancel()
        self._stop_listening()
        self._drop_connections()
        for thread in list(self._threads):
            thread.join(5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- faults -------------------------------------------------------------------------------

    @property
    def is_cut(self) -> bool:
        return not self._accepting.is_set()

    def cut(self, *, for_s: float | None = None) -> None:
        """Drop every connection and refuse new ones; with ``for_s``, listen again after
        that many seconds."""
        self._stop_listening()
        self._drop_connections()
        if for_s is not None:
            timer = threading.Timer(for_s, self.restore)
            timer.daemon = True
            with self._lock:
                self._restore_timer = timer
            timer.start()

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        with self._lock:
            if self._closed or self._accepting.is_set():
                return
        self._listen()

    def drop_connections(self) -> None:
        """Close the relayed connections but keep accepting (a device that restarts adbd)."""
        self._drop_connections()

    # -- internals ----------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The same port again after a cut, though relayed connections linger in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(16)
        listener.settimeout(_ACCEPT_POLL_S)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
            self._accepting.set()
        self._spawn(self._accept_loop, listener, name=f"proxy-accept-{self.port}")

    def _stop_listening(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            self._accepting.clear()
        if listener is not None:
            listener.close()

    def _drop_connections(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for pair in connections:
            for sock in pair:
                _hard_close(sock)

    def _spawn(self, target: Callable[..., None], *args: object, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by cut() or close()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _hard_close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    _hard_close(client)
                    _hard_close(upstream)
                    return
                self._connections.append((client, upstream))
                self.accepted += 1
            self._spawn(self._pump, client, upstream, name="proxy-up")
            self._spawn(self._pump, upstream, client, name="proxy-down")

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        # One side ended: end the other too (ADB has no half-closed connections).
        _hard_close(source)
        _hard_close(sink)
        with self._lock:
            self._connections = [
                pair for pair in self._connections if source not in pair and sink not in pair
            ]


def _hard_close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv()
    with contextlib.suppress(OSError):
        sock.close()
