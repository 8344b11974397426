"""Where the recorder joins aiohttp: a RequestHandler that tees every received byte into its
Connection before aiohttp parses it, and a transport wrapper that logs (and can hold back) every
write and notices when the server side closes.

aiohttp's low-level `web_server.Server` builds one RequestHandler per TCP connection in
`__call__`; overriding that is the one hook needed. RequestHandler declares __slots__, so the
subclass (which has none) gets a __dict__ for its own attribute.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from .connection import Connection


class LinkTransport:
    """Stands in for the real transport inside aiohttp. Writes are logged to the Connection;
    while corked they are collected so the 101 and the frames behind it leave in one write."""

    def __init__(self, real: asyncio.Transport, connection: Connection) -> None:
        self._real = real
        self._connection = connection
        self._corked: bytearray | None = None
        self._stalled = False  # the test stopped reading: aiohttp may not resume it

    def stall_reading(self) -> None:
        """Stop reading until `unstall_reading`: the kernel's buffer fills, the window closes."""
        self._stalled = True
        self._real.pause_reading()

    def unstall_reading(self) -> None:
        self._stalled = False
        self._real.resume_reading()

    def pause_reading(self) -> None:
        self._real.pause_reading()

    def resume_reading(self) -> None:
        if not self._stalled:  # aiohttp's own flow control must not undo a test's stall
            self._real.resume_reading()

    def write(self, data: Any) -> None:
        data = bytes(data)
        if self._corked is not None:
            self._corked += data
            return
        self._connection.wrote(data)
        self._real.write(data)

    def writelines(self, chunks: Iterable[Any]) -> None:
        self.write(b"".join(bytes(chunk) for chunk in chunks))

    def cork(self) -> None:
        self._corked = bytearray()

    def uncork(self, tail: bytes = b"") -> None:
        held, self._corked = self._corked, None
        if held is None:
            return
        data = bytes(held) + tail
        if data and not self._real.is_closing():
            self.write(data)

    def close(self) -> None:
        self._connection.mark_closed("server")
        self._real.close()

    def abort(self) -> None:
        self._connection.mark_closed("server")
        self._real.abort()

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, get_extra_info, pause_reading, ...) is the real transport's.
        return getattr(self._real, name)


class TappedRequestHandler(RequestHandler):
    def __init__(self, manager: Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.connection = Connection(kwargs["loop"])
        self.on_connection: Any = None  # set by TappedServer before connection_made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        link = LinkTransport(transport, self.connection)  # type: ignore[arg-type]
        self.connection.attach(link)  # type: ignore[arg-type]
        if self.on_connection is not None:
            self.on_connection(self.connection)
        super().connection_made(link)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.connection.received(data)  # before aiohttp: it may stop reading after a close
        if self.connection.feed_aiohttp:
            super().data_received(data)

    def eof_received(self) -> None:
        self.connection.mark_closed("device")  # FIN from the device; asyncio closes the rest
        return super().eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.connection.lost()
        super().connection_lost(exc)


class TappedServer(Server):
    """aiohttp's low-level server, building TappedRequestHandlers."""

    def __init__(self, *args: Any, on_connection: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_connection = on_connection

    def __call__(self) -> RequestHandler:
        handler = TappedRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.on_connection = self._on_connection
        return handler
