"""A loopback TCP proxy the fault tests put between failboard and a real database server.

The real servers are shared with other people's tests, so they are never stopped or slowed
down: a fault is made here instead, on our own connections only. The proxy can

- ``cut()``: close every open connection and close each new one as soon as it is accepted
  (what a client sees when the server goes away), until ``restore()``;
- add ``latency`` seconds to every chunk it forwards, in both directions (a slow store or a
  congested link: a query's round trip then costs at least twice the latency).

Plain threads, two per connection: the traffic of a test is small, and blocking sockets make
``cut()`` immediate (shutting a socket down wakes the thread blocked on it).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

from sqlalchemy.engine import make_url

__all__ = ["Proxy"]

_CHUNK = 65_536


class _Link:
    """One client connection and its upstream twin."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self._closed = False
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sock in (self.client, self.upstream):
            # shutdown() first: close() alone would not wake a thread blocked in recv().
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class Proxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``. Use as a context
    manager, or call :meth:`start` and :meth:`close`."""

    def __init__(self, upstream_host: str, upstream_port: int, *, latency: float = 0.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.latency = latency
        self.accepted = 0
        self.refused = 0
        self._cut = threading.Event()
        self._stopping = threading.Event()
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # so the accept loop notices close()
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)

    @classmethod
    def for_url(cls, url: str, *, latency: float = 0.0) -> Proxy:
        """A proxy in front of the server of a database URL (not started)."""
        parsed = make_url(url)
        return cls(parsed.host or "127.0.0.1", parsed.port or _default_port(url), latency=latency)

    def url(self, url: str) -> str:
        """``url`` rewritten to go through this proxy (same user, password and database)."""
        through = make_url(url).set(host="127.0.0.1", port=self.port)
        return through.render_as_string(hide_password=False)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()
        self._drop_all()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- faults ----------------------------------------------------------------------------

    def cut(self) -> None:
        """Drop every connection now and refuse new ones until :meth:`restore`."""
        self._cut.set()
        self._drop_all()

    def restore(self) -> None:
        self._cut.clear()

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    @property
    def open_links(self) -> int:
        with self._lock:
            return len(self._links)

    # -- plumbing --------------------------------------------------------------------------

    def _drop_all(self) -> None:
        with self._lock:
            links = list(self._links)
            self._links.clear()
        for link in links:
            link.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                # Accept and close at once: the client gets a clean "connection closed" rather
                # than waiting out its connect timeout, as with a server that is down.
                self.refused += 1
                _hard_close(client)
                continue
            threading.Thread(target=self._open, args=(client,), daemon=True).start()

    def _open(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _hard_close(client)
            return
        upstream.settimeout(None)
        client.settimeout(None)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client, upstream)
        with self._lock:
            if self._cut.is_set() or self._stopping.is_set():
                link.close()
                return
            self._links.add(link)
            self.accepted += 1
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(link, source, target), daemon=True).start()

    def _pump(self, link: _Link, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                if self.latency > 0:
                    time.sleep(self.latency)
                target.sendall(data)
        except OSError:
            pass
        finally:
            link.close()
            with self._lock:
                self._links.discard(link)


def _hard_close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _default_port(url: str) -> int:
    backend = make_url(url).get_backend_name()
    return 5432 if backend == "postgresql" else 3306
