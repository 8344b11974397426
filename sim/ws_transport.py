"""The WebSocket transport under the client, as ESP-IDF's transport_ws behaves (IDF v5.4.4,
traces/SUMMARY.md "TWS"): one TCP or TLS connection, the opening handshake, frame headers and
payloads read from what arrived, frames written as their header and then their payload.

- The handshake reads the response into a 1024-byte buffer; whatever came behind the response
  head stays in that buffer and is read first. The real poll looks at the socket only, so those
  bytes wait until new bytes arrive (KD-6, `data_after_handshake_held`); the conforming model's
  poll sees them.
- A read returns at most what was asked for, of what has arrived (at least one byte).
- A frame goes out as two writes, header then payload (TWS _ws_write), with Nagle on as lwIP
  has it: on a quiet connection the header leaves at once and the payload once it is acked.
"""
from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
from dataclasses import dataclass

from sim.behaviour import Behaviour
from sim.handshake import MAX_REQUEST_BYTES, HandshakeError, build_request, check_response
from sim.netdelay import TCP_SEND_BUFFER, DelayedReader, DelayedWriter
from sim.pki import PkiEntryMissing
from sim.timing import Timings
from sim.uri import LinkConfig, WsUri, tls_context
from wire.frames import apply_mask
from wire.handshake import new_key

READ_SIZE = 4096
# The conforming model reads response heads up to this size (the firmware's 1023 is KD-9).
MAX_RESPONSE_HEADER_BYTES = 16384
FIXED_MASK_KEY = b"\x37\xfa\x21\x3d"


class TransportError(Exception):
    """The connection failed under a read or write (EOF, reset, a timeout, a bad header)."""


@dataclass(frozen=True)
class FrameHeader:
    opcode: int
    fin: bool
    rsv: int
    masked: bool
    key: bytes
    length: int


class WsTransport:
    """One connection of one client. `connect` opens it (TCP, TLS, the handshake); the rest
    reads and writes frames on it."""

    def __init__(self, fw: Behaviour, timings: Timings) -> None:
        self.fw = fw
        self.timings = timings
        self._reader: asyncio.StreamReader | DelayedReader | None = None
        self._writer: asyncio.StreamWriter | DelayedWriter | None = None
        self._held = bytearray()       # read by the handshake past the response head (ws buffer)
        self._incoming = bytearray()   # read from the socket by a poll, not yet taken
        self._eof = False
        self.request = b""

    # ---- connecting -------------------------------------------------------------------------

    async def connect(self, uri: WsUri, config: LinkConfig, pki, subprotocol: str, auth: str,
                      headers, reconnecting: bool) -> None:
        """TCP (and TLS), the upgrade request, the response checked. Raises OSError,
        ssl.SSLError, HandshakeError or asyncio.IncompleteReadError on a failure."""
        ssl_ctx = None
        if uri.secure and not self.fw.wss_without_tls:
            try:
                ssl_ctx = tls_context(config, pki, self.fw)
            except PkiEntryMissing as exc:
                raise HandshakeError(str(exc)) from None
        timings = self.timings
        delayed = timings.network_delay_s is not None
        if delayed:
            await asyncio.sleep(timings.network_delay())   # the SYN on its way
        reader, writer = await asyncio.open_connection(
            uri.host, uri.port, ssl=ssl_ctx, server_hostname=uri.host if ssl_ctx else None)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, TCP_SEND_BUFFER)
            # lwIP sends with Nagle on; asyncio switches it off for every TCP socket it makes.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        # drain() then waits until TCP took every byte: SEND OK means "written".
        writer.transport.set_write_buffer_limits(high=0)
        self._reader, self._writer = reader, writer
        if delayed:
            self._reader = DelayedReader(reader, timings)
            self._writer = DelayedWriter(writer, timings)
            await asyncio.sleep(timings.network_delay())   # the SYN-ACK on its way back
        key = new_key()
        request = build_request(uri, key, subprotocol, self.fw, reconnecting, auth=auth,
                                headers=headers)
        if len(request) > MAX_REQUEST_BYTES:
            raise HandshakeError(f"request of {len(request)} bytes does not fit")
        self.request = request
        self._writer.write(request)
        await self._writer.drain()
        head, rest = await self._read_response_head()
        check_response(head, key, subprotocol, self.fw)
        self._held += rest

    async def _read_response_head(self) -> tuple[bytes, bytes]:
        """Read until the blank line that ends the response head; returns it and what came
        behind it. KD-9: the firmware's reads fill a 1024-byte buffer and fail when full."""
        assert self._reader is not None
        limit = self.fw.handshake_buffer or MAX_RESPONSE_HEADER_BYTES
        buf = bytearray()
        while True:
            chunk = await self._reader.read(limit - len(buf))
            if not chunk:
                raise HandshakeError(f"connection closed after {len(buf)} response bytes")
            buf += chunk
            if self.fw.handshake_buffer is not None and len(buf) >= limit:
                raise HandshakeError(f"the response fills the {limit}-byte handshake buffer")
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                return bytes(buf[:end + 4]), bytes(buf[end + 4:])
            if len(buf) >= limit:
                raise HandshakeError(f"response head longer than {limit} bytes")

    # ---- reading --------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    def buffered(self) -> bool:
        """Bytes are waiting to be read that a poll of the socket would see."""
        if self._incoming or self._eof:
            return True
        return bool(self._held) and not self.fw.data_after_handshake_held

    async def poll_read(self, timeout_s: float) -> bool:
        """Readable within timeout_s: bytes (or the end of the stream) have arrived. KD-6: the
        handshake's leftover bytes do not count, only the socket does."""
        if self.buffered():
            return True
        if self._reader is None:
            raise TransportError("not connected")
        try:
            data = await asyncio.wait_for(self._reader.read(READ_SIZE), timeout_s)
        except asyncio.TimeoutError:
            return False
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            raise TransportError(f"poll failed: {exc!r}") from None
        if data:
            self._incoming += data
        else:
            self._eof = True
        return True

    async def read(self, n: int, timeout_s: float) -> bytes:
        """At most n bytes of what arrived, the handshake's leftovers first; TransportError at
        the end of the stream, on a reset, or when nothing comes within timeout_s."""
        if self._held:
            out = bytes(self._held[:n])
            del self._held[:n]
            return out
        if self._incoming:
            # what a poll took off the socket, and whatever else has arrived since
            available = _available(self._reader)
            if len(self._incoming) < n and available and self._reader is not None:
                self._incoming += await self._reader.read(min(n - len(self._incoming), available))
            out = bytes(self._incoming[:n])
            del self._incoming[:n]
            return out
        if self._eof or self._reader is None:
            raise TransportError("the connection was closed")
        try:
            data = await asyncio.wait_for(self._reader.read(n), timeout_s)
        except asyncio.TimeoutError:
            raise TransportError(f"nothing read within {timeout_s:g} s") from None
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            raise TransportError(f"read failed: {exc!r}") from None
        if not data:
            self._eof = True
            raise TransportError("the connection was closed")
        return data

    async def read_exactly(self, n: int, timeout_s: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            buf += await self.read(n - len(buf), timeout_s)
        return bytes(buf)

    async def read_header(self, timeout_s: float) -> FrameHeader:
        first, second = await self.read_exactly(2, timeout_s)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.read_exactly(2, timeout_s))
        elif length == 127:
            raw = await self.read_exactly(8, timeout_s)
            (length,) = struct.unpack("!Q", raw)
            if self.fw.length64_sign_extended and raw[7] & 0x80:
                # x86-64 host build: the last length byte is a signed char (TWS:553)
                length = -1
        masked = bool(second & 0x80)
        key = b""
        if masked and (length or not self.fw.masked_empty_frame_desync):
            key = await self.read_exactly(4, timeout_s)   # TWS reads no key for length 0
        if length < 0:
            raise TransportError("frame length decoded as negative (signed char)")
        return FrameHeader(opcode=first & 0x0F, fin=bool(first & 0x80), rsv=(first >> 4) & 7,
                           masked=masked, key=key, length=length)

    @staticmethod
    def unmask(chunk: bytes, key: bytes, offset: int, restart_per_read: bool) -> bytes:
        """TWS unmasks each read from the key's first byte (restart_per_read), RFC 6455 from
        the frame's byte offset."""
        if not key:
            return chunk
        rotation = 0 if restart_per_read else offset % 4
        return apply_mask(chunk, key[rotation:] + key[:rotation])

    # ---- writing --------------------------------------------------------------------------

    def write_frame(self, opcode: int, payload: bytes, fin: bool) -> bool:
        """One masked frame as two writes, header then payload; False when the connection is
        gone."""
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        key = FIXED_MASK_KEY if self.fw.mask_key_fixed else os.urandom(4)
        length = len(payload)
        first = (0x80 if fin else 0) | (opcode & 0x0F)
        long_form = self.fw.length_form_64_from is not None and length >= self.fw.length_form_64_from
        if length < 126 and not long_form:
            header = struct.pack("!BB", first, 0x80 | length)
        elif length < 1 << 16 and not long_form:
            header = struct.pack("!BBH", first, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, length)
        writer.write(header + key)
        if payload:
            writer.write(apply_mask(payload, key))
        return True

    def write_raw(self, data: bytes) -> None:
        """Bytes as they are (a defect's unmasked frame)."""
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    async def drain(self) -> None:
        if self._writer is not None:
            await self._writer.drain()

    def write_buffer_size(self) -> int:
        writer = self._writer
        return 0 if writer is None else writer.transport.get_write_buffer_size()

    @property
    def writer_closing(self) -> bool:
        return self._writer is None or self._writer.is_closing()

    def abort(self) -> None:
        """Drop the connection at once, unsent bytes lost (a write that timed out)."""
        if self._writer is not None:
            self._writer.transport.abort()

    def close(self, discard_unread: bool = False) -> None:
        """esp_transport_close: FIN after what was written; nothing more is read. Bytes that
        arrived and were never read make the close a reset, as a TCP stack's does, unless the
        caller read them away first (discard_unread: a close frame must still go out)."""
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        unread = not discard_unread and (bool(self._held or self._incoming) or _buffered(reader))
        if isinstance(reader, DelayedReader):
            reader.stop()
        if writer is None:
            return
        if unread:
            sock = writer.get_extra_info("socket") if hasattr(writer, "get_extra_info") else None
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            writer.transport.abort()
        else:
            writer.close()

    async def wait_closed_by_peer(self, timeout_s: float | None) -> None:
        """esp_transport_ws_poll_connection_closed: until the server ends TCP (or timeout_s)."""
        async def to_eof() -> None:
            try:
                while True:
                    await self.read(READ_SIZE, 3600.0)
            except TransportError:
                return
        try:
            await asyncio.wait_for(to_eof(), timeout_s)
        except asyncio.TimeoutError:
            pass


def _available(reader: object) -> int:
    """Bytes asyncio already took off the socket that nobody read (readable without a wait)."""
    if isinstance(reader, asyncio.StreamReader):
        return len(getattr(reader, "_buffer", b""))
    if isinstance(reader, DelayedReader):
        return reader.available()
    return 0


def _buffered(reader: object) -> bool:
    return _available(reader) > 0 or (isinstance(reader, DelayedReader) and reader.unread())
