"""One TCP connection from the device: what it sent (recorded) and the server's hold on it.

Recorded state is written on the server's event loop and read by test threads; every attribute
a test reads is replaced or appended atomically, and each change calls `notify` so waiters wake.
Methods marked "loop only" must run on the event loop.
"""
from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable
from typing import Literal

from wire.frames import OP_CLOSE, FrameParser

from .recorder import (Handshake, RecordedFrame, WireTap, common_name, parse_request_head,
                       peer_address)

CloseInitiator = Literal["server", "device"]


class Connection:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.handshake: Handshake | None = None
        self.client_cert_cn: str | None = None   # wss: the CN of the certificate the client presented
        self.frames: list[RecordedFrame] = []
        self.written: list[tuple[float, bytes]] = []  # every write the server made, the 101 included
        self.pongs_sent: list[tuple[float, bytes]] = []  # (time, payload) of answers to pings
        self.upgraded = False  # a 101 went out
        self.refused_status: int | None = None
        self.peer = "?"  # host:port the connection came from
        self.opened_at: float | None = None  # when TCP was accepted (time.monotonic())
        self.close_sent_at: float | None = None  # when the server wrote a close frame
        self.closed_at: float | None = None  # when TCP closed, either side
        self.close_initiator: CloseInitiator | None = None
        # Why the server failed the connection when it refused a frame (aiohttp's reader error).
        self.rejection: str | None = None
        self.tap = WireTap()
        self.feed_aiohttp = True  # False once aiohttp's reader must not see more (stall, close)
        self.notify: Callable[[], None] = lambda: None
        self.observe: Callable[[str, object], None] | None = None  # e.g. the CLI's printer
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._tcp_closed = asyncio.Event()
        self._drop_on_device_close = False

    def __repr__(self) -> str:
        head = self.handshake.raw.split(b"\r\n", 1)[0] if self.handshake else b"(no request yet)"
        state = "open" if self.closed_at is None else f"closed by {self.close_initiator}"
        return f"<Connection {head!r} frames={len(self.frames)} {state}>"

    def header(self, name: str) -> str | None:
        """A header of the opening request, case-insensitive; None if absent or no request yet."""
        return self.handshake.header(name) if self.handshake else None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    # -- fed by the transport layer (loop only) --

    def attach(self, transport: asyncio.Transport) -> None:
        self.opened_at = time.monotonic()
        self._transport = transport
        self.peer = peer_address(transport.get_extra_info("peername"))
        self.client_cert_cn = common_name(transport.get_extra_info("peercert"))

    def received(self, data: bytes) -> None:
        self.tap.feed(data, time.monotonic())

    def record_head(self) -> Handshake:
        taken = self.tap.take_head()
        if taken is None:  # aiohttp dispatches only complete heads; see WireTap.take_head
            raise RuntimeError("request dispatched before its head was received")
        raw, at = taken
        self.handshake = parse_request_head(raw, at)
        self._observe("handshake", self.handshake)
        self.tap.start_frames(self._record_frame)  # frames that came with the head follow it
        self.notify()
        return self.handshake

    def wrote(self, data: bytes) -> None:
        self.written.append((time.monotonic(), data))
        self._observe("sent", data)

    def mark_closed(self, initiator: CloseInitiator) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()
            self.close_initiator = initiator
            self._observe("closed", initiator)
            self.notify()

    def lost(self) -> None:
        self.mark_closed("device")
        self._record_cut()
        self._tcp_closed.set()

    def _record_cut(self) -> None:
        """Once TCP is gone, a frame the connection ended inside is recorded as far as it
        arrived, with what ended it: the server failing the connection (its close frame), or
        TCP closing under it."""
        if self.close_initiator == "server":
            close = _close_written(self.written)
            why = (f"the server failed the connection ({close}) and closed TCP" if close
                   else "the server closed TCP before the rest arrived")
        else:
            why = "the device closed TCP before the rest arrived"
        cut = self.tap.cut(self.closed_at or time.monotonic(), why)
        if cut is not None:
            self.frames.append(cut)
            self._observe("frame", cut)
            self.notify()

    def _record_frame(self, recorded: RecordedFrame) -> None:
        self.frames.append(recorded)
        self._observe("frame", recorded)
        self.notify()
        if recorded.frame.opcode == OP_CLOSE and self._drop_on_device_close:
            self.close_tcp()

    def _observe(self, kind: str, detail: object) -> None:
        if self.observe is not None:
            self.observe(kind, detail)

    # -- the server's actions (loop only) --

    async def wait_tcp_closed(self) -> None:
        await self._tcp_closed.wait()

    def write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError(f"cannot write {data[:40]!r}: TCP is closed ({self!r})")
        self._transport.write(data)

    def sent_close(self) -> None:
        self.close_sent_at = time.monotonic()

    def drop_tcp_on_close_frame(self, fallback_s: float) -> None:
        """Close TCP as soon as the device's close frame is recorded (RFC 6455 §7.1.1: the server
        closes TCP first), or after fallback_s if it never comes."""
        if any(rf.frame.opcode == OP_CLOSE for rf in self.frames):
            self.close_tcp()
            return
        self._drop_on_device_close = True
        self._loop.call_later(fallback_s, self.close_tcp)

    def stall_reading(self, stalled: bool = True) -> None:
        """Stop (or resume) reading what the device sends: its sends block once the window
        closes."""
        if self._transport is not None:
            if stalled:
                self._transport.stall_reading()  # type: ignore[attr-defined]
            else:
                self._transport.unstall_reading()  # type: ignore[attr-defined]

    def close_tcp(self) -> None:
        """Orderly close: what is buffered is still sent, then FIN."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort_tcp(self) -> None:
        """Drop the connection with a RST: SO_LINGER 0 makes close() discard and reset."""
        transport = self._transport
        if transport is None:
            return
        try:
            sock = transport.get_extra_info("socket")
        except AttributeError:
            # asyncio's TLS transport once its SSL protocol is gone (3.11): already torn down,
            # though nothing has told this connection yet; there is nothing left to reset.
            return
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass  # already gone; abort() below still marks it closed
        transport.abort()


def _close_written(written: list[tuple[float, bytes]]) -> str | None:
    """The last close frame the server wrote, in words (`close 1002 "reason"`), or None."""
    for _, data in reversed(written):
        frames = FrameParser().feed(data)
        for frame in reversed(frames):
            if frame.opcode == OP_CLOSE:
                code = frame.close_code()
                return f"close {code} {frame.close_reason()!r}" if code is not None else "close"
    return None
