"""WsTestServer: the aiohttp server on its own thread and event loop, and the synchronous facade
tests use to create endpoints and control it.

Only the WebSocket side listens on the network (on `host`); control is in-process calls that
hop onto the loop with `call_in_loop`.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import re
import secrets
import socket
import ssl as ssl_module
import threading
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from .connection import Connection
from .endpoint import Endpoint
from .link import refusal, serve_upgrade
from .recorder import Handshake, TlsHandshake
from .tls import TlsListener
from .transport import TappedServer

T = TypeVar("T")
START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 2.0  # a loop call is a few transport writes; longer means the loop is stuck
# 12 random bytes, 16 URL-safe characters: a path nobody can guess, and with a 60-character
# name the whole wss:// URI stays near 110 bytes, well inside a 256-byte AT+WSOPEN line.
PATH_TOKEN_BYTES = 12
NOT_FOUND_BODY = b"not found"  # fixed: an answer never repeats what a stranger sent
BUSY_BODY = b"busy"
Observer = Callable[[Connection, str, object], None]


class WsTestServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, advertised_host: str | None = None,
                 *, ssl: ssl_module.SSLContext | None = None, accept_any_path: bool = False,
                 observer: Observer | None = None, receive_buffer: int | None = None) -> None:
        """accept_any_path: a request to a path with no endpoint creates an echo endpoint there
        instead of getting 404, taking any number of connections at once (for manual sessions).
        observer: called on the loop thread for every handshake, received frame, write and
        close, as (connection, kind, detail).
        receive_buffer: SO_RCVBUF of every connection (set on the listener, so the window is
        small from the first segment): with reading stalled, a device's send blocks soon.
        ssl: wss://, every TLS handshake recorded, failed ones too (`tls_handshakes`;
        servers/tls.py)."""
        self.host = host
        self.advertised_host = advertised_host or host
        self.port = port
        self.scheme = "wss" if ssl is not None else "ws"
        self._ssl = ssl
        self._receive_buffer = receive_buffer
        self._accept_any_path = accept_any_path
        self._observer = observer
        self._endpoints: dict[str, Endpoint] = {}
        self._unmatched: list[Connection] = []
        self._tls_handshakes: list[TlsHandshake] = []
        self._open: set[Connection] = set()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._aio: TappedServer | None = None

    def __enter__(self) -> WsTestServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- lifecycle --

    def start(self) -> None:
        """Returns once listening; `port` is then the bound port. Raises OSError if it cannot bind."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(started,), name="ws-test-server",
                                        daemon=True)
        self._thread.start()
        try:
            started.result(START_TIMEOUT_S)
        except BaseException:
            self._thread.join(START_TIMEOUT_S)
            self._thread = None
            raise

    def stop(self) -> None:
        """Close every connection, stop the loop and join its thread (bounded)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._close(), loop).result(STOP_TIMEOUT_S)
            except (concurrent.futures.TimeoutError, RuntimeError):
                pass  # the loop is stuck or gone; stopping it below is all that is left
            loop.call_soon_threadsafe(loop.stop)
            thread.join(STOP_TIMEOUT_S)
        self._thread = None
        if thread.is_alive():
            raise RuntimeError(f"server thread did not stop within {STOP_TIMEOUT_S} s")

    def _run(self, started: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._open_listener())
        except BaseException as exc:
            started.set_exception(exc)
            loop.close()
            return
        self._loop = loop
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _open_listener(self) -> None:
        # handler_cancellation: a handler waiting on a stalled or lingering link ends with it.
        self._aio = TappedServer(self._handle, handler_cancellation=True,
                                 on_connection=self._connection_made, access_log=None)
        loop = asyncio.get_running_loop()
        # wss://: plain TCP, each connection's TLS handshake run (and recorded) by the listener.
        factory = (self._aio if self._ssl is None
                   else TlsListener(self._ssl, self._aio, self._record_tls))
        if self._receive_buffer is None:
            self._listener = await loop.create_server(factory, self.host, self.port)
        else:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
            sock.bind((self.host, self.port))
            self._listener = await loop.create_server(factory, sock=sock)
        self.port = self._listener.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        assert self._listener is not None and self._aio is not None
        self._listener.close()
        for conn in list(self._open):
            conn.abort_tcp()
        await self._aio.shutdown(timeout=1.0)

    # -- endpoints --

    def endpoint(self, name: str = "", path: str | None = None, *,
                 exclusive: bool = True) -> Endpoint:
        """A new endpoint at /ep/<token>/<n>-<name>, the token fresh and random so that only
        whoever was given the URL can find it (or exactly at `path`, for manual use).
        exclusive: one connection at a time (see Endpoint)."""
        number = next(self._ids)
        if path is None:
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
            token = secrets.token_urlsafe(PATH_TOKEN_BYTES)
            path = f"/ep/{token}/{number}-{slug}" if slug else f"/ep/{token}/{number}"
        if path in self._endpoints:
            raise ValueError(f"an endpoint already serves {path}")
        ep = Endpoint(self, path, name or path, exclusive)
        self._endpoints[path] = ep
        return ep

    def forget(self, ep: Endpoint) -> None:
        """The endpoint's path answers 404 from now on and its open connections are dropped;
        nothing they do later reaches any other endpoint."""
        ep.forgotten = True
        if self._endpoints.get(ep.path) is ep:
            del self._endpoints[ep.path]
        if self.running:
            self.call_in_loop(lambda: [c.abort_tcp() for c in ep.connections if c.is_open])

    def tls_handshakes(self, since: float | None = None) -> list[TlsHandshake]:
        """wss://: every TLS handshake that ended, in the order they ended; with `since` (a
        time.monotonic()) only those whose TCP connection was accepted at or after it."""
        return [hs for hs in list(self._tls_handshakes) if since is None or hs.started >= since]

    def unmatched_handshakes(self) -> list[Handshake]:
        """Requests to paths with no endpoint (answered 404), in order."""
        return [conn.handshake for conn in list(self._unmatched) if conn.handshake is not None]

    @property
    def running(self) -> bool:
        return self._loop is not None and self._thread is not None and self._thread.is_alive()

    def call_in_loop(self, action: Callable[[], T], timeout: float = CALL_TIMEOUT_S) -> T:
        """Run `action` on the loop thread and return its result (its exception is raised here)."""
        if not self.running:
            raise RuntimeError("the server is not running")
        if threading.current_thread() is self._thread:
            return action()

        async def run() -> T:
            return action()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    # -- on the loop --

    def _record_tls(self, handshake: TlsHandshake) -> None:
        self._tls_handshakes.append(handshake)
        for ep in list(self._endpoints.values()):
            ep.tls_recorded()                    # a wait for a handshake re-checks

    def _connection_made(self, conn: Connection) -> None:
        self._open.add(conn)
        conn.observe = self._observe_for(conn)
        asyncio.get_running_loop().create_task(self._forget_when_closed(conn))

    async def _forget_when_closed(self, conn: Connection) -> None:
        await conn.wait_tcp_closed()
        self._open.discard(conn)

    def _observe_for(self, conn: Connection) -> Callable[[str, object], None] | None:
        observer = self._observer
        if observer is None:
            return None
        return lambda kind, detail: observer(conn, kind, detail)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        conn: Connection = request.protocol.connection  # type: ignore[attr-defined]
        handshake = conn.record_head()
        ep = self._endpoints.get(handshake.path)
        if ep is None and self._accept_any_path:
            # Manual sessions: any path works anyway, and a board may open several links to one.
            ep = self.endpoint(path=handshake.path, exclusive=False)
        if ep is None:
            self._unmatched.append(conn)
            return refusal(404, NOT_FOUND_BODY)
        holder = ep.holder()
        if holder is not None:
            ep.note_refused(conn, holder)
            return refusal(409, BUSY_BODY)
        ep.bind(conn)
        return await serve_upgrade(request, conn, ep)
