"""One WebSocket link: a real TCP/TLS client, the opening handshake in the firmware's header order,
the receive loop (+WS_DATA chunking), keepalive, the close handshake and reconnection.

The state codes are the client library's (BEHAVIOUR.md "The state codes"). Frames are built by hand
with wire.frames because the model must send what the firmware sends, including frames WebSocket
libraries refuse to produce.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import os
import ssl
import struct
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from wire.frames import (DATA_OPCODES, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, apply_mask,
                         encode_frame)
from wire.handshake import accept_for, new_key

from sim.timing import Timings

log = logging.getLogger("sim.link")

USER_AGENT = "ESP32 Websocket Client"
# transport_ws builds the request in a 1024-byte buffer (field-defects A2): longer is refused.
MAX_REQUEST_BYTES = 1023
# The model reads response headers up to this size (the firmware's 1022 limit is KD-9, not modelled).
MAX_RESPONSE_HEADER_BYTES = 16384
# RFC 6455 §5.5: control frame payloads are at most 125 bytes.
MAX_CONTROL_PAYLOAD = 125
# Small tolerance so a timer that fires a hair early still counts as due.
TIMER_SLACK_S = 0.002


class LinkState(enum.IntEnum):
    CLOSED = 0
    CONNECTING = 1
    CONNECTED = 2
    WAIT_RECONNECT = 3
    CLOSING = 4


@dataclass(frozen=True)
class LinkConfig:
    """AT+WSCFG values, copied into a link when it is opened."""

    ping_intv_sec: int = 10
    ping_timeout_sec: int = 120
    buffer_size: int = 1024


@dataclass(frozen=True)
class WsUri:
    secure: bool
    host: str
    port: int
    target: str  # path and query exactly as given, "/" when the URI has no path


def parse_uri(uri: str) -> WsUri:
    """ws://host[:port][/path][?query] and wss://...; ValueError for anything else."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URI: {uri!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {uri!r}") from exc
    secure = scheme == "wss"
    if port is None:
        port = 443 if secure else 80
    if port == 0:
        raise ValueError(f"port 0 in {uri!r}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return WsUri(secure=secure, host=parts.hostname, port=port, target=target)


class LinkHost(Protocol):
    """What a link needs from the device that owns it."""

    timings: Timings

    def has(self, defect: str) -> bool: ...

    def emit(self, data: bytes) -> None: ...

    def link_finished(self, link: "Link") -> None: ...

    def release_config(self, link: "Link") -> None: ...


class HandshakeError(Exception):
    pass


class _Outcome(enum.Enum):
    SERVER_CLOSED = "server closed"     # close frame received: no reconnect
    ABORTED = "aborted"                 # pong timeout, TCP error/EOF: reconnect
    HOST_CLOSE_DONE = "host close done" # the host's own close frame was answered or timed out


class Link:
    def __init__(self, host: LinkHost, link_id: int, uri: str, ws_uri: WsUri, subprotocol: str,
                 config: LinkConfig, open_timeout_ms: int) -> None:
        self.host = host
        self.link_id = link_id
        self.uri = uri
        self.ws_uri = ws_uri
        self.subprotocol = subprotocol
        self.config = config
        self.open_timeout_ms = open_timeout_ms
        self.state = LinkState.CONNECTING
        self.destroyed = False
        self._loop = asyncio.get_running_loop()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lifecycle: asyncio.Task[None] | None = None
        # The ping clock starts when the client is created (BEHAVIOUR.md "Keepalive").
        self.next_ping_at = self._loop.time() + config.ping_intv_sec
        self.pong_wait_since: float | None = None
        self.close_sent_at: float | None = None  # the host sent opcode 8 itself (seed model)
        self.finished = False  # set by the device when it removed the link from its table

    # ---- AT-facing operations -------------------------------------------------------------

    async def open(self) -> bool:
        """Connect and handshake within the open timeout. True: connected and running."""
        timeout_ms = self.open_timeout_ms or self.host.timings.network_timeout_default_ms
        if not await self._connect(timeout_ms):
            return False
        if self.destroyed:
            return False
        self.state = LinkState.CONNECTED
        self._urc("+WS_CONNECTED")
        self._lifecycle = self._loop.create_task(self._run(), name=f"ws-link-{self.link_id}")
        return True

    @property
    def can_send(self) -> bool:
        """Connected, and (seed model) the host has not sent its own close frame yet."""
        return (self.state == LinkState.CONNECTED and self._writer is not None
                and not self._writer.is_closing()
                and (self.close_sent_at is None or self.host.has("KD-5")))

    async def send(self, payload: bytes, opcode: int, timeout_ms: int) -> bool:
        """Write the frame(s) of one AT+WSSEND; True when every byte was handed to TCP in time."""
        writer = self._writer
        if not self.can_send or writer is None:
            return False
        writer.write(build_message(payload, opcode, self.config.buffer_size))
        if opcode == OP_CLOSE and not self.host.has("KD-5"):
            # RFC 6455 §5.5.1: after our close frame, no more frames; wait for the reply.
            self.close_sent_at = self._loop.time()
        transport = writer.transport
        if timeout_ms == 0:
            # No wait at all: succeed only if TCP took everything at once (BEHAVIOUR.md "Sending").
            return transport.get_write_buffer_size() == 0 and not transport.is_closing()
        try:
            await asyncio.wait_for(writer.drain(), timeout_ms / 1000)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            return False
        return not transport.is_closing()

    def destroy(self) -> None:
        """AT+WSCLOSE / AT+RST: stop everything, close TCP with no close frame, print nothing."""
        self.destroyed = True
        if self._lifecycle is not None and not self._lifecycle.done():
            self._lifecycle.cancel()
        self._drop_tcp()
        self.state = LinkState.CLOSED

    # ---- connection -----------------------------------------------------------------------

    async def _connect(self, timeout_ms: int) -> bool:
        self.state = LinkState.CONNECTING
        try:
            await asyncio.wait_for(self._connect_and_handshake(), timeout_ms / 1000)
            return True
        except (asyncio.TimeoutError, OSError, HandshakeError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ValueError, ssl.SSLError) as exc:
            log.info("link %d: connect failed: %r", self.link_id, exc)
            self._drop_tcp()
            return False

    async def _connect_and_handshake(self) -> None:
        uri = self.ws_uri
        ssl_ctx = None
        if uri.secure:
            # Seed profile: no server verification (later profiles add a CA, KD-8).
            ssl_ctx = ssl.create_default_context()
            ssl_ctx.check_hostname = False
            ssl_ctx.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(
            uri.host, uri.port, ssl=ssl_ctx, limit=MAX_RESPONSE_HEADER_BYTES,
            server_hostname=uri.host if uri.secure else None)
        self._reader, self._writer = reader, writer
        # drain() then waits until TCP took every byte: SEND OK means "written".
        writer.transport.set_write_buffer_limits(high=0)
        key = new_key()
        request = build_request(uri, key, self.subprotocol)
        if len(request) > MAX_REQUEST_BYTES:
            raise HandshakeError(f"request of {len(request)} bytes does not fit")
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        check_response(head, key, self.subprotocol, strict=not self.host.has("KD-7"))

    def _drop_tcp(self) -> None:
        writer = self._writer
        self._writer = None
        self._reader = None
        if writer is not None:
            writer.close()

    # ---- life after the first successful open ------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                outcome = await self._serve_connection()
                self._drop_tcp()
                if outcome is _Outcome.HOST_CLOSE_DONE:
                    # Our close frame got no close reply: the link is gone, no reconnect.
                    self._urc("+WS_DISCONNECTED")
                if outcome is not _Outcome.ABORTED:
                    break
                if not await self._reconnect():
                    return
            await self._finish()
        except asyncio.CancelledError:
            raise
        except Exception:  # a model bug must not leave a half-dead link behind silently
            log.exception("link %d: lifecycle failed", self.link_id)
            self._drop_tcp()
            self.host.link_finished(self)

    async def _reconnect(self) -> bool:
        """State 3, wait, state 1, try; one +WS_DISCONNECTED per failure. False when destroyed."""
        self.state = LinkState.WAIT_RECONNECT
        self._urc("+WS_DISCONNECTED")
        while True:
            await asyncio.sleep(self.host.timings.reconnect_wait_s)
            if await self._connect(self.host.timings.reconnect_attempt_timeout_ms):
                self.state = LinkState.CONNECTED
                self.pong_wait_since = None
                self._urc("+WS_CONNECTED")
                return True
            self.state = LinkState.WAIT_RECONNECT
            self._urc("+WS_DISCONNECTED")

    async def _finish(self) -> None:
        """The link is over (no reconnect): state 0 briefly (seed), then gone."""
        self.state = LinkState.CLOSED
        if not self.host.has("KD-3"):
            await asyncio.sleep(self.host.timings.closed_state_linger_s)
        self.host.link_finished(self)

    async def _serve_connection(self) -> _Outcome:
        receiver = self._loop.create_task(self._receive())
        keeper = self._loop.create_task(self._keepalive())
        try:
            done, _ = await asyncio.wait({receiver, keeper}, return_when=asyncio.FIRST_COMPLETED)
            first = done.pop()
            return first.result()
        finally:
            for task in (receiver, keeper):
                task.cancel()
            await asyncio.gather(receiver, keeper, return_exceptions=True)

    async def _keepalive(self) -> _Outcome:
        """Ping every ping_intv_sec regardless of traffic (seed); abort on pong timeout."""
        cfg = self.config
        while True:
            wake = self.next_ping_at
            if self.pong_wait_since is not None:
                wake = min(wake, self.pong_wait_since + cfg.ping_timeout_sec)
            if self.close_sent_at is not None:
                wake = min(wake, self.close_sent_at + self.host.timings.client_close_wait_s)
            await asyncio.sleep(max(0.0, wake - self._loop.time()))
            now = self._loop.time() + TIMER_SLACK_S
            if self.close_sent_at is not None:
                if now >= self.close_sent_at + self.host.timings.client_close_wait_s:
                    log.info("link %d: no close reply from the server", self.link_id)
                    return _Outcome.HOST_CLOSE_DONE
                self.next_ping_at = now + cfg.ping_intv_sec  # no pings after our close frame
                continue
            if self.pong_wait_since is not None and now >= self.pong_wait_since + cfg.ping_timeout_sec:
                log.info("link %d: pong timeout", self.link_id)
                return _Outcome.ABORTED
            if now >= self.next_ping_at:
                if not self._write(encode_frame(OP_PING, b"", mask=True)):
                    return _Outcome.ABORTED
                if self.pong_wait_since is None:
                    self.pong_wait_since = self._loop.time()
                self.next_ping_at = self._loop.time() + cfg.ping_intv_sec

    async def _receive(self) -> _Outcome:
        reader = self._reader
        if reader is None:
            return _Outcome.ABORTED
        try:
            while True:
                opcode, fin, masked_key, length = await self._read_header(reader)
                if opcode in DATA_OPCODES:
                    await self._deliver_data(reader, length, masked_key)
                    continue
                payload = await self._read_payload(reader, length, masked_key)
                if opcode == OP_CLOSE:
                    return await self._on_server_close(reader)
                if opcode == OP_PING:
                    # Answer at once with the same payload; nothing on the AT port.
                    self._write(encode_frame(OP_PONG, payload, mask=True))
                elif opcode == OP_PONG:
                    self.pong_wait_since = None
                # Reserved opcodes (3-7, 0xB-0xF): ignored, nothing printed (AT core object).
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ssl.SSLError) as exc:
            if self.close_sent_at is not None:
                return _Outcome.HOST_CLOSE_DONE
            log.info("link %d: connection lost: %r", self.link_id, exc)
            return _Outcome.ABORTED

    async def _read_header(self, reader: asyncio.StreamReader) -> tuple[int, bool, bytes | None, int]:
        first, second = await reader.readexactly(2)
        self._data_readable()
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        key = await reader.readexactly(4) if second & 0x80 else None
        return first & 0x0F, bool(first & 0x80), key, length

    async def _read_payload(self, reader: asyncio.StreamReader, length: int,
                            key: bytes | None) -> bytes:
        data = await reader.readexactly(length) if length else b""
        return apply_mask(data, key) if key else data

    async def _deliver_data(self, reader: asyncio.StreamReader, length: int,
                            key: bytes | None) -> None:
        """One +WS_DATA per read of at most buffer_size bytes; an empty frame gives `<id>,0,`."""
        if length == 0:
            self._emit_data(b"")
            return
        offset = 0
        while offset < length:
            n = min(length - offset, self.config.buffer_size)
            chunk = await reader.readexactly(n)
            self._data_readable()
            if key:
                rotation = offset % 4
                chunk = apply_mask(chunk, key[rotation:] + key[:rotation])
            self._emit_data(chunk)
            offset += n

    def _data_readable(self) -> None:
        if self.host.has("KD-4"):
            # Firmware defect: the ping clock restarts whenever data is readable.
            self.next_ping_at = self._loop.time() + self.config.ping_intv_sec

    async def _on_server_close(self, reader: asyncio.StreamReader) -> _Outcome:
        """+WS_CLOSED at once, state 4, empty close reply, <=1 s for the server to drop TCP."""
        self._urc("+WS_CLOSED")
        self.host.release_config(self)
        if self.host.has("KD-3"):
            self.host.link_finished(self)  # firmware cleans the link as the close frame arrives
        self.state = LinkState.CLOSING
        if self.close_sent_at is None or self.host.has("KD-5"):
            self._write(encode_frame(OP_CLOSE, b"", mask=True))
        try:
            await asyncio.wait_for(_read_to_eof(reader), self.host.timings.close_drain_wait_s)
        except (asyncio.TimeoutError, ConnectionError, OSError, ssl.SSLError):
            pass
        return _Outcome.SERVER_CLOSED

    # ---- output helpers -------------------------------------------------------------------

    def _write(self, data: bytes) -> bool:
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        writer.write(data)
        return True

    def _urc(self, name: str) -> None:
        if not self.destroyed:
            self.host.emit(f"{name}:{self.link_id}\r\n".encode())

    def _emit_data(self, chunk: bytes) -> None:
        if not self.destroyed:
            self.host.emit(b"+WS_DATA:%d,%d," % (self.link_id, len(chunk)) + chunk + b"\r\n")


async def _read_to_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(4096):
        pass


def build_request(uri: WsUri, key: str, subprotocol: str) -> bytes:
    """The upgrade request in the firmware's header order (BEHAVIOUR.md "Opening")."""
    lines = [
        f"GET {uri.target} HTTP/1.1",
        "Connection: Upgrade",
        f"Host: {uri.host}:{uri.port}",  # always with the port (field-defects A6)
        f"User-Agent: {USER_AGENT}",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Key: {key}",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def check_response(head: bytes, key: str, subprotocol: str, *, strict: bool) -> None:
    """RFC 6455 §4.1 client checks; `strict=False` is KD-7 (only the accept key counts)."""
    text = head.decode("latin-1")
    status_line, _, header_block = text.partition("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HandshakeError(f"not an HTTP response: {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_block.split("\r\n"):
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("sec-websocket-accept") != accept_for(key):
        raise HandshakeError("missing or wrong Sec-WebSocket-Accept")
    if not strict:
        return
    if parts[1] != "101":
        raise HandshakeError(f"status {parts[1]}, not 101")
    if headers.get("upgrade", "").lower() != "websocket":
        raise HandshakeError("no Upgrade: websocket")
    if "upgrade" not in [t.strip().lower() for t in headers.get("connection", "").split(",")]:
        raise HandshakeError("no Connection: Upgrade")
    chosen = headers.get("sec-websocket-protocol")
    if chosen is not None:
        offered = [p.strip() for p in subprotocol.split(",") if p.strip()]
        if chosen not in offered:
            raise HandshakeError(f"server picked subprotocol {chosen!r}, offered {offered}")


def build_message(payload: bytes, opcode: int, buffer_size: int) -> bytes:
    """One AT+WSSEND: a single masked frame, or, past buffer_size, a fragmented message (first
    frame with the opcode and FIN clear, continuations of at most buffer_size, FIN on the last)."""
    if len(payload) <= buffer_size:
        return encode_frame(opcode, payload, mask=True, mask_key=os.urandom(4))
    frames = []
    for offset in range(0, len(payload), buffer_size):
        part = payload[offset:offset + buffer_size]
        last = offset + buffer_size >= len(payload)
        frames.append(encode_frame(opcode if offset == 0 else OP_CONTINUATION, part, fin=last,
                                   mask=True, mask_key=os.urandom(4)))
    return b"".join(frames)
