"""One WebSocket link: a real TCP/TLS client, the opening handshake in the firmware's header order,
the receive loop (+WS_DATA chunking), keepalive, the close handshake and reconnection.

The state codes are the client library's (BEHAVIOUR.md "The state codes"); every change of state
goes through `_enter`, checked against TRANSITIONS. Frames are built by hand with wire.frames
because the model must send what the firmware sends, including frames libraries refuse to produce.
Where a firmware defect changes behaviour, the code reads its knob (`self.fw.*`, sim/behaviour.py).
With board-like timing (sim/timing.py BOARD_TIMINGS) the keepalive timers are checked on the client
loop's tick (`_keepalive_on_ticks`) and the TCP traffic goes through a network delay
(`_DelayedReader`, `_DelayedWriter`); with the plain timings neither runs.
"""
from __future__ import annotations

import asyncio
import collections
import enum
import logging
import os
import socket
import ssl
import struct
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import spec
from wire.frames import (DATA_OPCODES, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
                         apply_mask, close_payload, encode_frame)
from wire.handshake import accept_for, new_key

from sim.behaviour import Behaviour
from sim.pki import CA, CERT, KEY, Pki, PkiEntryMissing
from sim.timing import Timings
from sim.ws_data import CHUNK, MESSAGE, DataFormat, ws_data

log = logging.getLogger("sim.link")

_SPEC = spec.load()
USER_AGENT = "ESP32 Websocket Client"
# transport_ws builds the request in a 1024-byte buffer (field-defects A2): longer is refused.
MAX_REQUEST_BYTES = 1023
# The conforming model reads response heads up to this size (the firmware's 1023 is KD-9).
MAX_RESPONSE_HEADER_BYTES = 16384
# RFC 6455 §5.5: control frame payloads are at most 125 bytes.
MAX_CONTROL_PAYLOAD = _SPEC.at.control_payload_max
# The ESP32-C2's lwIP send buffer (TCP_SND_BUF): a board's send blocks once this much is unacked,
# so the model's socket gets the same bound instead of the host's multi-megabyte autotuning.
TCP_SEND_BUFFER = 5760
# A read from the socket: the client asks for at most buffer_size, this bounds the rest.
READ_SIZE = 4096
# Small tolerance so a timer that fires a hair early still counts as due.
TIMER_SLACK_S = 0.002
# On the tick clock two instants a whole number of ticks apart compare equal despite rounding.
_TICK_EPSILON_S = 1e-6


class LinkState(enum.IntEnum):
    CLOSED = _SPEC.state("closed")
    CONNECTING = _SPEC.state("reconnecting")
    CONNECTED = _SPEC.state("established")
    WAIT_RECONNECT = _SPEC.state("wait_reconnect")
    CLOSING = _SPEC.state("closing")


# The link's lifecycle, all of it: a change not listed here is a model bug and raises.
TRANSITIONS: dict[LinkState, frozenset[LinkState]] = {
    # handshake done / attempt failed, wait to reconnect / open failed or the link destroyed
    LinkState.CONNECTING: frozenset({LinkState.CONNECTED, LinkState.WAIT_RECONNECT,
                                     LinkState.CLOSED}),
    # abort (pong timeout, TCP lost) / close frame from the server / destroyed or own close done
    LinkState.CONNECTED: frozenset({LinkState.WAIT_RECONNECT, LinkState.CLOSING,
                                    LinkState.CLOSED}),
    LinkState.WAIT_RECONNECT: frozenset({LinkState.CONNECTING, LinkState.CLOSED}),
    # the close handshake ended / (defect reconnect_after_server_close) reconnect anyway
    LinkState.CLOSING: frozenset({LinkState.CLOSED, LinkState.WAIT_RECONNECT}),
    LinkState.CLOSED: frozenset(),
}


@dataclass(frozen=True)
class LinkConfig:
    """AT+WSCFG values, copied into a link when it is opened (Device.default_link_config when
    none was given)."""

    ping_intv_sec: int
    ping_timeout_sec: int
    buffer_size: int
    # tls: <auth_mode> (0 none, 1 client certificate, 2 verify the server, 3 both) and the
    # partition entries it uses (None: not given, auth_mode 0).
    auth_mode: int = _SPEC.default("AT+WSCFG", "auth_mode")
    pki_number: int | None = None
    ca_number: int | None = None

    @property
    def presents_client_cert(self) -> bool:
        return self.auth_mode in CLIENT_CERT_MODES

    @property
    def verifies_server(self) -> bool:
        return self.auth_mode in VERIFY_SERVER_MODES


# VERSIONS.md tls: which <auth_mode> values present a client certificate, and which verify the
# server with a CA (and its host name).
CLIENT_CERT_MODES = (1, 3)
VERIFY_SERVER_MODES = (2, 3)


@dataclass(frozen=True)
class WsUri:
    secure: bool
    host: str
    port: int
    path: str   # as given, "" when the URI has none
    query: str  # as given, without "?"; "" when there is none

    def target(self, fw: Behaviour, reconnecting: bool = False) -> str:
        """The request target: path and query exactly as given, "/" when there is no path."""
        target = self.path or ("" if fw.empty_path_target else "/")
        drop_query = fw.request_drops_query or (reconnecting and fw.reconnect_drops_query)
        if self.query and not drop_query:
            target += "?" + self.query
        return target


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
    return WsUri(secure=secure, host=parts.hostname, port=port, path=parts.path, query=parts.query)


class LinkHost(Protocol):
    """What a link needs from the device that owns it."""

    timings: Timings
    fw: Behaviour
    pki: Pki
    ws_headers: list[tuple[str, str]]

    def emit(self, data: bytes) -> None: ...

    def data_format(self, link_id: int) -> DataFormat: ...

    def default(self, command: str, name: str) -> int: ...

    def link_finished(self, link: "Link") -> None: ...

    def release_config(self, link: "Link") -> None: ...

    def crash(self, reason: str) -> None: ...


class HandshakeError(Exception):
    pass


def tls_context(config: LinkConfig, pki: Pki, fw: Behaviour) -> ssl.SSLContext:
    """The TLS client of a wss:// open under <auth_mode> (VERSIONS.md tls): modes 1 and 3 present
    client certificate <pki_number> with its key when the server asks; modes 2 and 3 verify the
    server chain with CA <ca_number> and its host name; modes 0 and 1 verify nothing (the seed).
    A partition entry the mode needs and the PKI lacks: PkiEntryMissing, the open fails."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if config.verifies_server and not fw.tls_ca_not_checked:
        ctx.load_verify_locations(cafile=pki.path(CA, config.ca_number))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = not fw.tls_host_not_checked       # KD-8: the chain alone
    else:
        if config.verifies_server:
            pki.path(CA, config.ca_number)           # (defect) loaded, never used
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if config.presents_client_cert and not fw.tls_client_cert_not_sent:
        ctx.load_cert_chain(certfile=pki.path(CERT, config.pki_number),
                            keyfile=pki.path(KEY, config.pki_number))
    return ctx


class _Outcome(enum.Enum):
    PONG_TIMEOUT = "pong timeout"       # abort: reconnect
    LOST = "connection lost"            # TCP reset/EOF/error: reconnect
    SERVER_CLOSED = "server closed"     # close frame received: no reconnect
    HOST_CLOSE_DONE = "host close done"  # the host's own close frame got no reply: the link ends


class SendResult(enum.Enum):
    SENT = "sent"
    FAILED = "failed"                   # not connected, or <timeout_ms> passed
    DISRUPTED = "disrupted"             # the connection broke during the send


class _Stream:
    """The client's receive side, read as esp_transport_read is: at most n bytes of what has
    arrived. Bytes the handshake read past the response head are served first, or (KD-6) only
    once new bytes arrive."""

    def __init__(self, reader: asyncio.StreamReader | _DelayedReader) -> None:
        self._reader = reader
        self._held = bytearray()
        self._hold_until_new = False

    def hold(self, data: bytes, until_new: bool) -> None:
        self._held += data
        self._hold_until_new = until_new and bool(data)

    async def read(self, n: int) -> bytes:
        """At most n bytes, at least one; b"" at end of stream."""
        if self._hold_until_new:
            self._held += await self._reader.read(READ_SIZE)
            self._hold_until_new = False
        if self._held:
            out = bytes(self._held[:n])
            del self._held[:n]
            return out
        return await self._reader.read(n)

    async def read_exactly(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = await self.read(n - len(buf))
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(buf), n)
            buf += chunk
        return bytes(buf)


class _DelayedReader:
    """Board-like timing: the link's receive side behind a network delay. Bytes, the end of the
    stream and a connection error reach the reader one drawn one-way delay after they arrived,
    in the order they arrived (sim/timing.py network_delay_s)."""

    def __init__(self, reader: asyncio.StreamReader, timings: Timings) -> None:
        self._reader = reader
        self._timings = timings
        self._loop = asyncio.get_running_loop()
        self._in_flight: collections.deque[tuple[float, bytes | BaseException]] = \
            collections.deque()
        self._last_due = 0.0
        self._arrived = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        self._pump = self._loop.create_task(self._run(), name="delayed-reader")

    async def _run(self) -> None:
        try:
            while True:
                data = await self._reader.read(READ_SIZE)
                self._send_on(data)
                if not data:
                    return
        except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            self._send_on(exc)

    def _send_on(self, item: bytes | BaseException) -> None:
        due = max(self._last_due, self._loop.time() + self._timings.network_delay())
        self._last_due = due
        self._in_flight.append((due, item))
        self._loop.call_at(due, self._arrive)

    def _arrive(self) -> None:
        now = self._loop.time() + TIMER_SLACK_S     # a callback may run a hair before its time
        while self._in_flight and self._in_flight[0][0] <= now:
            item = self._in_flight.popleft()[1]
            if isinstance(item, BaseException):
                self._error = item
            elif item:
                self._arrived += item
            else:
                self._eof = True
        self._changed.set()

    async def read(self, n: int) -> bytes:
        """At most n bytes of what has arrived, at least one; b"" at end of stream."""
        while not self._arrived and not self._eof and self._error is None:
            self._changed.clear()
            await self._changed.wait()
        if self._arrived:
            out = bytes(self._arrived[:n])
            del self._arrived[:n]
            return out
        if self._error is not None:
            raise self._error
        return b""

    def stop(self) -> None:
        self._pump.cancel()


_CLOSE = object()   # in a _DelayedWriter's queue: close TCP once everything before it went out


class _DelayedWriter:
    """Board-like timing: the link's send side behind a network delay. Each write is handed to
    the socket one drawn one-way delay later, in order. Until then its bytes are in flight, and
    as on a board (whose send buffer keeps bytes until they are acknowledged) they take up the
    send buffer: drain() returns once at most TCP_SEND_BUFFER bytes are in flight and the socket
    took everything handed to it. Stands in for the StreamWriter and its transport."""

    def __init__(self, writer: asyncio.StreamWriter, timings: Timings) -> None:
        self._writer = writer
        self._timings = timings
        self._loop = asyncio.get_running_loop()
        self._queue: collections.deque[tuple[float, object]] = collections.deque()
        self._last_due = 0.0
        self._closing = False
        self._progress = asyncio.Event()     # bytes left the wire (or the queue was dropped)
        self.transport = self                # send() and _write_timed_out use writer.transport

    def write(self, data: bytes) -> None:
        if not self._closing and data:
            self._enqueue(bytes(data))

    def _enqueue(self, item: object) -> None:
        due = max(self._last_due, self._loop.time() + self._timings.network_delay())
        self._last_due = due
        self._queue.append((due, item))
        self._loop.call_at(due, self._hand_over)

    def _hand_over(self) -> None:
        now = self._loop.time() + TIMER_SLACK_S     # a callback may run a hair before its time
        while self._queue and self._queue[0][0] <= now:
            item = self._queue.popleft()[1]
            if item is _CLOSE:
                self._writer.close()
            elif not self._writer.is_closing():
                self._writer.write(item)
        self._progress.set()

    def _over_limit(self) -> int:
        """Bytes written that do not fit the send buffer yet: in flight past TCP_SEND_BUFFER."""
        in_flight = sum(len(item) for _, item in self._queue if isinstance(item, bytes))
        return max(0, in_flight - TCP_SEND_BUFFER)

    async def drain(self) -> None:
        """Until the send buffer holds what was written (high-water mark 0 on the socket)."""
        while True:
            await self._writer.drain()
            if not self._over_limit():
                return
            self._progress.clear()
            await self._progress.wait()

    def get_write_buffer_size(self) -> int:
        return self._writer.transport.get_write_buffer_size() + self._over_limit()

    def is_closing(self) -> bool:
        return self._closing or self._writer.is_closing()

    def close(self) -> None:
        """FIN after what was written, one delay later."""
        if not self._closing:
            self._closing = True
            self._enqueue(_CLOSE)

    def abort(self) -> None:
        self._closing = True
        self._queue.clear()
        self._progress.set()
        self._writer.transport.abort()


class Link:
    def __init__(self, host: LinkHost, link_id: int, uri: str, ws_uri: WsUri, subprotocol: str,
                 config: LinkConfig, open_timeout_ms: int, auth: str = "") -> None:
        self.host = host
        self.fw = host.fw
        self.link_id = link_id
        self.uri = uri
        self.ws_uri = ws_uri
        self.subprotocol = subprotocol
        self._auth = auth             # AT+WSOPEN <auth> (profile auth): a secret, never logged
        self.config = config
        self.open_timeout_ms = open_timeout_ms
        self.state = LinkState.CONNECTING
        self.destroyed = False
        self.finished = False      # set by the device when it removed the link from its table
        self.was_connected = False
        self._loop = asyncio.get_running_loop()
        self._reader: asyncio.StreamReader | _DelayedReader | None = None
        self._writer: asyncio.StreamWriter | _DelayedWriter | None = None
        self._stream: _Stream | None = None
        self._lifecycle: asyncio.Task[None] | None = None
        # The ping clock starts when the client is created (BEHAVIOUR.md "Keepalive").
        self.next_ping_at = self._loop.time() + config.ping_intv_sec
        self.pong_wait_since: float | None = None
        self.close_sent_at: float | None = None  # the host sent opcode 8 itself (seed model)
        self.wait_ends_at: float | None = None   # end of the current reconnect wait (state 3)
        self._pings_off = False
        self._fragment_dropped = False           # (defect) the rest of a message is dropped
        self._text_message = False               # the message in progress is text
        self._message_opcode = OP_TEXT           # the first frame's opcode of that message
        self._message_offset = 0                 # payload bytes of its earlier frames
        self._message = bytearray()              # AT+WSDATAFMT level 2: the message so far
        self._cut_frame_left = 0                 # payload bytes a lost connection cut off
        self._data_read = asyncio.Event()        # data was read: the client loop runs (ticks)

    # ---- the lifecycle --------------------------------------------------------------------

    def _enter(self, state: LinkState) -> None:
        if state is self.state:
            return
        if state not in TRANSITIONS[self.state]:
            raise RuntimeError(f"link {self.link_id}: no transition {self.state.name} -> "
                               f"{state.name}")
        log.info("link %d: %s -> %s", self.link_id, self.state.name, state.name)
        self.state = state

    @property
    def shown_state(self) -> int:
        """The state AT+WSOPEN? prints."""
        return self.fw.shown_state(int(self.state))

    # ---- AT-facing operations -------------------------------------------------------------

    async def open(self) -> bool:
        """Connect and handshake within the open timeout. True: connected and running. On a
        failure +WS_DISCONNECTED is printed here, at the moment the firmware would print it."""
        timeout_ms = self.open_timeout_ms
        if self.fw.open_timeout_ignored:
            timeout_ms = self.host.default("AT+WSOPEN", "timeout_ms")
        timeout_s = timeout_ms / 1000 if timeout_ms else self.host.timings.network_timeout_s
        if self.fw.teardown_blocks:
            connected = await self._open_with_blocking_teardown(timeout_s)
        else:
            connected = await self._connect(timeout_s)
            if not connected and not self.destroyed:
                self._urc("+WS_DISCONNECTED")
        if not connected or self.destroyed:
            return False
        self._connected()
        if not self.fw.connected_after_ok:
            self._announce_connected()
        self._lifecycle = self._loop.create_task(self._run(), name=f"ws-link-{self.link_id}")
        return True

    def _announce_connected(self) -> None:
        for _ in range(2 if self.fw.connected_urc_twice else 1):
            self._urc("+WS_CONNECTED")

    async def _open_with_blocking_teardown(self, timeout_s: float) -> bool:
        """KD-2: the AT layer waits up to timeout_ms (less on a failure), then destroys the
        client, which blocks until the library's attempt (its own 10 s bound) has ended, or, when
        the attempt already failed, until its reconnect wait is next checked."""
        attempt = self._loop.create_task(self._connect(self.host.timings.network_timeout_s))
        done, _ = await asyncio.wait({attempt}, timeout=timeout_s)
        if attempt in done and attempt.result():
            return True
        if attempt in done:
            self._urc("+WS_DISCONNECTED")
            await asyncio.sleep(self.host.timings.reconnect_check_s)
            return False
        if await attempt:                          # connected too late: destroyed all the same
            self._drop_tcp()
        self._urc("+WS_DISCONNECTED")
        return False

    def start_retrying(self) -> None:
        """A failed open whose client lives on (defects): it waits and retries like a reconnect."""
        self._enter(LinkState.WAIT_RECONNECT)
        self._lifecycle = self._loop.create_task(self._retry_then_run(),
                                                 name=f"ws-link-{self.link_id}-retry")

    async def _retry_then_run(self) -> None:
        if await self._reconnect():
            await self._run()

    @property
    def reconnecting(self) -> bool:
        """Waiting to reconnect (state 3) or trying (state 1) after an abort."""
        return self.state in (LinkState.WAIT_RECONNECT, LinkState.CONNECTING)

    @property
    def can_send(self) -> bool:
        """Connected, and (seed model) the host has not sent its own close frame yet."""
        return (self.state == LinkState.CONNECTED and self._writer is not None
                and not self._writer.is_closing() and self.close_sent_at is None)

    async def send(self, payload: bytes, opcode: int, timeout_ms: int,
                   fin: bool = True) -> SendResult:
        """Write the frame(s) of one AT+WSSEND; SENT when every byte was handed to TCP in time.
        fin False (profile current): the last frame goes out with FIN clear too."""
        writer = self._writer
        if not self.can_send or writer is None:
            return SendResult.FAILED
        if self.fw.sent_payload_cut:
            payload = payload[:-self.fw.sent_payload_cut]
        writer.write(build_message(payload, opcode, self.config.buffer_size, self.fw,
                                   fin=fin or self.fw.fin_ignored))
        if opcode == OP_CLOSE and not self.fw.close_frame_keeps_link:
            # RFC 6455 §5.5.1: after our close frame, no more frames; wait for the reply.
            self.close_sent_at = self._loop.time()
        transport = writer.transport
        if self.fw.send_timeout_ignored:
            timeout_ms = self.host.default("AT+WSSEND", "timeout_ms")
        if timeout_ms == 0:
            # No wait at all: succeed only if TCP took everything at once (BEHAVIOUR.md "Sending").
            if transport.get_write_buffer_size() == 0 and not transport.is_closing():
                return SendResult.SENT
            return self._write_timed_out()
        try:
            await asyncio.wait_for(writer.drain(), timeout_ms / 1000)
        except asyncio.TimeoutError:
            return self._write_timed_out()
        except (ConnectionError, OSError):
            return SendResult.DISRUPTED
        return SendResult.DISRUPTED if transport.is_closing() else SendResult.SENT

    def _write_timed_out(self) -> SendResult:
        """The library treats a write that timed out as a network error and aborts the
        connection (esp_websocket_client_send_with_opcode: "esp_transport_write() returned 0"):
        what was not yet written is lost, the receive loop sees the loss, a reconnect follows."""
        log.info("link %d: send timed out: connection aborted", self.link_id)
        if self._writer is not None:
            self._writer.transport.abort()
        return SendResult.FAILED

    def destroy(self, *, keep_tcp: bool = False) -> None:
        """AT+WSCLOSE / AT+RST: stop everything, close TCP with no close frame, print nothing.
        keep_tcp (a defect) forgets the connection without closing it."""
        self.destroyed = True
        if self._lifecycle is not None and not self._lifecycle.done():
            self._lifecycle.cancel()
        if not keep_tcp:
            self._drop_tcp()
        self._enter(LinkState.CLOSED)

    def send_close_frame(self, code: int) -> None:
        self._write(encode_frame(OP_CLOSE, close_payload(code), mask=True))

    # ---- connection -----------------------------------------------------------------------

    async def _connect(self, timeout_s: float, reconnecting: bool = False) -> bool:
        self._enter(LinkState.CONNECTING)
        try:
            await asyncio.wait_for(self._connect_and_handshake(reconnecting), timeout_s)
            return True
        except (asyncio.TimeoutError, OSError, HandshakeError, asyncio.IncompleteReadError,
                ValueError, ssl.SSLError) as exc:
            log.info("link %d: connect failed: %r", self.link_id, exc)
            self._drop_tcp()
            return False

    async def _connect_and_handshake(self, reconnecting: bool) -> None:
        uri = self.ws_uri
        ssl_ctx = None
        if uri.secure and not self.fw.wss_without_tls:
            try:
                ssl_ctx = tls_context(self.config, self.host.pki, self.fw)
            except PkiEntryMissing as exc:
                raise HandshakeError(str(exc)) from None
        timings = self.host.timings
        delayed = timings.network_delay_s is not None
        if delayed:
            await asyncio.sleep(timings.network_delay())   # the SYN on its way
        reader, writer = await asyncio.open_connection(
            uri.host, uri.port, ssl=ssl_ctx, server_hostname=uri.host if ssl_ctx else None)
        self._reader, self._writer = reader, writer
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, TCP_SEND_BUFFER)
        # drain() then waits until TCP took every byte: SEND OK means "written".
        writer.transport.set_write_buffer_limits(high=0)
        if delayed:
            self._reader = reader = _DelayedReader(reader, timings)
            self._writer = writer = _DelayedWriter(writer, timings)
            await asyncio.sleep(timings.network_delay())   # the SYN-ACK on its way back
        key = new_key()
        headers = () if reconnecting and self.fw.wshead_not_on_reconnect else self.host.ws_headers
        request = build_request(uri, key, self.subprotocol, self.fw, reconnecting,
                                auth=self._auth, headers=headers)
        if len(request) > MAX_REQUEST_BYTES:
            raise HandshakeError(f"request of {len(request)} bytes does not fit")
        writer.write(request)
        await writer.drain()
        head, rest = await self._read_response_head(reader)
        check_response(head, key, self.subprotocol, self.fw)
        self._stream = _Stream(reader)
        self._stream.hold(rest, until_new=self.fw.data_after_handshake_held)
        if not self.fw.stale_fragment_after_reconnect:
            self._cut_frame_left = 0
        self._fragment_dropped = False
        self._message.clear()
        self._message_offset = 0

    async def _read_response_head(self, reader: asyncio.StreamReader | _DelayedReader
                                  ) -> tuple[bytes, bytes]:
        """Read until the blank line that ends the response head; returns it and what came
        behind it. KD-9: the firmware's reads fill a 1024-byte buffer and fail when full."""
        limit = self.fw.handshake_buffer or MAX_RESPONSE_HEADER_BYTES
        buf = bytearray()
        while True:
            chunk = await reader.read(limit - len(buf))
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

    def _drop_tcp(self) -> None:
        writer = self._writer
        self._writer = None
        if isinstance(self._reader, _DelayedReader):
            self._reader.stop()
        self._reader = None
        self._stream = None
        if writer is not None:
            writer.close()

    def _connected(self) -> None:
        self._enter(LinkState.CONNECTED)
        self.was_connected = True
        self.pong_wait_since = None

    # ---- life after the first successful open ------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                outcome = await self._serve_connection()
                self._drop_tcp()
                if outcome is _Outcome.SERVER_CLOSED:
                    if self.fw.disconnected_after_closed:
                        self._urc("+WS_DISCONNECTED")
                    if not self.fw.reconnect_after_server_close:
                        break
                elif outcome is _Outcome.HOST_CLOSE_DONE:
                    self._urc("+WS_DISCONNECTED")  # our close frame got no reply
                    break
                else:
                    self._urc_lost(self.fw.pong_timeout_urc if outcome is _Outcome.PONG_TIMEOUT
                                   else "+WS_DISCONNECTED")
                self._enter(LinkState.WAIT_RECONNECT)
                if not await self._reconnect():
                    return
            await self._finish()
        except asyncio.CancelledError:
            raise
        except Exception:  # a model bug must not leave a half-dead link behind silently
            log.exception("link %d: lifecycle failed", self.link_id)
            self._drop_tcp()
            self.host.link_finished(self)

    def _urc_lost(self, name: str) -> None:
        if self.fw.lost_connection_silent:
            return
        for _ in range(2 if self.fw.disconnected_urc_twice else 1):
            self._urc(name)

    async def _reconnect(self) -> bool:
        """State 3, wait, state 1, try; one +WS_DISCONNECTED per failed attempt. False when
        destroyed. The ping clock is not reset: an overdue ping goes out at once."""
        while True:
            wait = self.host.timings.reconnect_wait()
            self.wait_ends_at = self._loop.time() + wait
            await asyncio.sleep(wait)
            self.wait_ends_at = None
            if await self._connect(self.host.timings.network_timeout_s, reconnecting=True):
                self._connected()
                if self.fw.pings_off_after_reconnect:
                    self._pings_off = True
                self._urc("+WS_CONNECTED")
                return True
            self._enter(LinkState.WAIT_RECONNECT)
            self._urc_lost("+WS_DISCONNECTED")

    async def _finish(self) -> None:
        """The link is over (no reconnect): state 0 briefly (seed), then gone."""
        self._enter(LinkState.CLOSED)
        if not self.finished and not self.fw.closed_link_removed_at_once:
            await asyncio.sleep(self.host.timings.closed_state_linger_s)
        self.host.link_finished(self)

    async def _serve_connection(self) -> _Outcome:
        receiver = self._loop.create_task(self._receive())
        keeper = self._loop.create_task(self._keepalive())
        try:
            done, _ = await asyncio.wait({receiver, keeper}, return_when=asyncio.FIRST_COMPLETED)
            return done.pop().result()
        finally:
            for task in (receiver, keeper):
                task.cancel()
            await asyncio.gather(receiver, keeper, return_exceptions=True)

    async def _keepalive(self) -> _Outcome:
        """Ping every ping_intv_sec regardless of traffic (seed); abort on pong timeout."""
        if self.host.timings.timer_tick_s is not None:
            return await self._keepalive_on_ticks(self.host.timings.timer_tick_s)
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
                if self.fw.pong_timeout_sends_close:
                    self.send_close_frame(1001)
                return _Outcome.PONG_TIMEOUT
            if now >= self.next_ping_at:
                if not self._pings_off:
                    if not self._write(encode_frame(OP_PING, b"", mask=True)):
                        return _Outcome.LOST
                    if self.pong_wait_since is None or self.fw.pong_clock_restarts_each_ping:
                        self.pong_wait_since = self._loop.time()
                self.next_ping_at = self._loop.time() + cfg.ping_intv_sec

    async def _keepalive_on_ticks(self, tick_s: float) -> _Outcome:
        """Board-like timing: the client task's loop runs once when the connection is up, then
        each time data was read and tick_s after its last run; only then are the timers checked,
        and a timer is due once more than its value has passed (BEHAVIOUR.md Keepalive). A ping on
        a quiet link, or a pong timeout, comes one tick late; a ping whose pong came back is late
        by the pong's round trip."""
        cfg = self.config
        now = self._loop.time()
        while True:
            if self.close_sent_at is not None:
                if now - self.close_sent_at > self.host.timings.client_close_wait_s:
                    log.info("link %d: no close reply from the server", self.link_id)
                    return _Outcome.HOST_CLOSE_DONE
                self.next_ping_at = now + cfg.ping_intv_sec  # no pings after our close frame
            elif (self.pong_wait_since is not None
                  and now - self.pong_wait_since > cfg.ping_timeout_sec + _TICK_EPSILON_S):
                log.info("link %d: pong timeout", self.link_id)
                if self.fw.pong_timeout_sends_close:
                    self.send_close_frame(1001)
                return _Outcome.PONG_TIMEOUT
            elif now > self.next_ping_at + _TICK_EPSILON_S:
                if not self._pings_off:
                    if not self._write(encode_frame(OP_PING, b"", mask=True)):
                        return _Outcome.LOST
                    if self.pong_wait_since is None or self.fw.pong_clock_restarts_each_ping:
                        self.pong_wait_since = now
                self.next_ping_at = now + cfg.ping_intv_sec
            self._data_read.clear()
            next_run = now + tick_s
            try:
                await asyncio.wait_for(self._data_read.wait(),
                                       max(0.0, next_run - self._loop.time()))
                now = self._loop.time()
            except asyncio.TimeoutError:
                now = next_run                   # the loop's own clock: a tick after its last run

    async def _receive(self) -> _Outcome:
        stream = self._stream
        if stream is None:
            return _Outcome.LOST
        try:
            if self._cut_frame_left:               # (defect) a frame cut by the last connection
                left, self._cut_frame_left = self._cut_frame_left, 0
                await self._deliver_chunks(stream, OP_CONTINUATION, True, left, None, False)
            while True:
                opcode, fin, key, length = await self._read_header(stream)
                if opcode in DATA_OPCODES or (self.fw.reserved_opcodes_printed
                                              and _reserved(opcode)):
                    await self._on_data_frame(stream, opcode, fin, key, length)
                    continue
                payload = await stream.read_exactly(length) if length else b""
                if key:
                    payload = apply_mask(payload, key)
                if opcode == OP_CLOSE:
                    return await self._on_server_close(stream)
                if opcode == OP_PING:
                    self._answer_ping(payload)
                elif opcode == OP_PONG:
                    self.pong_wait_since = None
                    if self.fw.pongs_printed:
                        self._emit_data(b"", OP_PONG, True, 0, 0)
                # Reserved opcodes (3-7, 0xB-0xF): ignored, nothing printed (AT core object).
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ssl.SSLError) as exc:
            if self.close_sent_at is not None:
                return _Outcome.HOST_CLOSE_DONE
            log.info("link %d: connection lost: %r", self.link_id, exc)
            return _Outcome.LOST

    async def _read_header(self, stream: _Stream) -> tuple[int, bool, bytes | None, int]:
        first, second = await stream.read_exactly(2)
        self._data_readable()
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await stream.read_exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await stream.read_exactly(8))
        key = await stream.read_exactly(4) if second & 0x80 else None
        return first & 0x0F, bool(first & 0x80), key, length

    async def _on_data_frame(self, stream: _Stream, opcode: int, fin: bool, key: bytes | None,
                             length: int) -> None:
        """A data frame, printed as the link id's AT+WSDATAFMT level says: per read of at most
        buffer_size (level 0, the released behaviour: fragments one by one as they come,
        BEHAVIOUR.md "Data from the server"), per frame (1), or per reassembled message (2)."""
        if opcode != OP_CONTINUATION:
            self._text_message = opcode == OP_TEXT
            self._fragment_dropped = False
            self._message_opcode = opcode
            self._message_offset = 0
            self._message.clear()
        dropped = opcode == OP_CONTINUATION and self._fragment_dropped
        if fin:
            self._fragment_dropped = False
        level = self.host.data_format(self.link_id).level
        if level == CHUNK:
            if length == 0:
                if not dropped and not self.fw.empty_frames_dropped:
                    self._emit_data(b"", opcode, fin, 0, 0)
            else:
                await self._deliver_chunks(stream, opcode, fin, length, key, dropped)
        else:
            payload = await self._read_payload(stream, length, key)
            if level == MESSAGE:
                if not dropped:
                    self._message += payload
                if fin:
                    whole, self._message = bytes(self._message), bytearray()
                    if whole or not self.fw.empty_frames_dropped:
                        self._emit_data(whole, self._message_opcode, True, len(whole), 0)
            elif not dropped and (payload or not self.fw.empty_frames_dropped):
                self._emit_data(payload, opcode, fin, length, 0)
        self._message_offset = 0 if fin else self._message_offset + length

    async def _read_payload(self, stream: _Stream, length: int, key: bytes | None) -> bytes:
        """A frame's whole payload, unmasked (levels 1 and 2), read as it arrives."""
        out = bytearray()
        while len(out) < length:
            self._cut_frame_left = length - len(out)
            chunk = await stream.read(length - len(out))
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(out), length)
            self._data_readable()
            out += chunk
        self._cut_frame_left = 0
        payload = apply_mask(bytes(out), key) if key else bytes(out)
        if self.fw.text_utf8_replaced and self._text_message:
            payload = payload.decode("utf-8", "replace").encode()
        return payload

    async def _deliver_chunks(self, stream: _Stream, opcode: int, fin: bool, length: int,
                              key: bytes | None, dropped: bool) -> None:
        """One +WS_DATA per read of at most buffer_size bytes (boundaries follow arrival)."""
        chunk_size = self.config.buffer_size
        if self.fw.chunk_cap is not None:
            chunk_size = min(chunk_size, self.fw.chunk_cap)
        chunk_size += self.fw.chunk_extra
        # (defect) the offset counted from the start of the message instead of the frame
        base = self._message_offset if self.fw.wsdatafmt_offset_from_message else 0
        offset = 0
        while offset < length:
            self._cut_frame_left = length - offset    # what a lost connection would cut off
            chunk = await stream.read(min(length - offset, chunk_size))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", length - offset)
            self._data_readable()
            if key:
                rotation = offset % 4
                chunk = apply_mask(chunk, key[rotation:] + key[:rotation])
            start, offset = offset, offset + len(chunk)
            if dropped:
                continue
            if self.fw.text_utf8_replaced and self._text_message:
                chunk = chunk.decode("utf-8", "replace").encode()
            self._emit_data(chunk, opcode, fin, length, base + start)
        self._cut_frame_left = 0

    def _answer_ping(self, payload: bytes) -> None:
        """A pong with the same payload at once; nothing on the AT port (BEHAVIOUR.md)."""
        if self.fw.server_ping_urc:
            self.host.emit(b"+WS_PING:%d,%d\r\n" % (self.link_id, len(payload)))
        if self.fw.ping_ends_fragmented_message:
            self._fragment_dropped = True
        if self.fw.pong_payload_cut and len(payload) > self.config.buffer_size:
            payload = payload[:self.config.buffer_size]
        if self.fw.pong_empty:
            payload = b""
        self._write(encode_frame(OP_PONG, payload, mask=not self.fw.pong_unmasked))

    def _data_readable(self) -> None:
        self._data_read.set()                    # the client task's loop runs (board-like timing)
        if self.fw.ping_clock_restarts_on_data:
            # KD-4: the ping clock restarts whenever data is readable.
            self.next_ping_at = self._loop.time() + self.config.ping_intv_sec

    async def _on_server_close(self, stream: _Stream) -> _Outcome:
        """+WS_CLOSED at once, state 4, empty close reply, <=1 s for the server to drop TCP."""
        self._urc("+WS_CLOSED")
        if not self.fw.wscfg_survives_server_close:
            self.host.release_config(self)
        if self.fw.closed_link_removed_at_once:
            self.host.link_finished(self)  # KD-3: the link is cleaned as the close frame arrives
        self._enter(LinkState.CLOSING)
        if self.close_sent_at is None and self.fw.close_reply_payload is not None:
            self._write(encode_frame(OP_CLOSE, self.fw.close_reply_payload, mask=True))
        wait = None if self.fw.close_waits_forever else self.host.timings.close_drain_wait_s
        try:
            await asyncio.wait_for(_read_to_eof(stream), wait)
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

    def _emit_data(self, data: bytes, opcode: int, fin: bool, payload_len: int,
                   payload_offset: int) -> None:
        if not self.destroyed:
            self.host.emit(ws_data(self.link_id, self.host.data_format(self.link_id), data,
                                   opcode=opcode, fin=fin, payload_len=payload_len,
                                   payload_offset=payload_offset, fw=self.fw))


def _reserved(opcode: int) -> bool:
    return opcode not in DATA_OPCODES and opcode not in (OP_CLOSE, OP_PING, OP_PONG)


async def _read_to_eof(stream: _Stream) -> None:
    while await stream.read(READ_SIZE):
        pass


def build_request(uri: WsUri, key: str, subprotocol: str, fw: Behaviour,
                  reconnecting: bool = False, auth: str = "",
                  headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = ()) -> bytes:
    """The upgrade request in the firmware's header order (BEHAVIOUR.md "Opening"): the library's
    headers, Sec-WebSocket-Protocol, Authorization (profile auth), then each AT+WSHEAD header as
    `key: value` in the order set (profile wshead). Encoded as latin-1: the bytes as typed."""
    host = uri.host if fw.host_without_port else f"{uri.host}:{uri.port}"  # always the port (A6)
    lines = [
        f"GET {uri.target(fw, reconnecting)} HTTP/1.1",
        "Connection: Upgrade",
        f"Host: {host}",
        f"User-Agent: {USER_AGENT}",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Key: {key}",
    ]
    if subprotocol and not fw.subprotocol_not_sent:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    authorization = []
    if auth and not fw.auth_header_dropped:
        name = "authorization" if fw.auth_header_lowercase else "Authorization"
        authorization.append(f"{name}: {auth}")
    stored = [f"{name}: {value}" for name, value in headers]
    lines += stored + authorization if fw.auth_after_wshead else authorization + stored
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def check_response(head: bytes, key: str, subprotocol: str, fw: Behaviour) -> None:
    """RFC 6455 §4.1 client checks; KD-7 (`handshake_accept_key_only`) checks the key alone."""
    text = head.decode("latin-1")
    status_line, _, header_block = text.partition("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HandshakeError(f"not an HTTP response: {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_block.split("\r\n"):
        if ":" in line:
            name, _, value = line.partition(":")
            name = name.strip() if fw.header_names_case_sensitive else name.strip().lower()
            headers[name] = value.strip()

    def header(canonical: str) -> str | None:
        return headers.get(canonical if fw.header_names_case_sensitive else canonical.lower())

    if header("Sec-WebSocket-Accept") != accept_for(key):
        raise HandshakeError("missing or wrong Sec-WebSocket-Accept")
    if fw.handshake_accept_key_only:
        return
    if parts[1] != "101":
        raise HandshakeError(f"status {parts[1]}, not 101")
    if (header("Upgrade") or "").lower() != "websocket":
        raise HandshakeError("no Upgrade: websocket")
    if "upgrade" not in [t.strip().lower() for t in (header("Connection") or "").split(",")]:
        raise HandshakeError("no Connection: Upgrade")
    chosen = header("Sec-WebSocket-Protocol")
    if chosen is not None:
        offered = [p.strip() for p in subprotocol.split(",") if p.strip()]
        if chosen not in offered:
            raise HandshakeError(f"server picked subprotocol {chosen!r}, offered {offered}")


_FIXED_MASK_KEY = b"\x37\xfa\x21\x3d"


def build_message(payload: bytes, opcode: int, buffer_size: int, fw: Behaviour,
                  fin: bool = True) -> bytes:
    """One AT+WSSEND: a single masked frame, or, past buffer_size, a fragmented message (first
    frame with the opcode and FIN clear, continuations of at most buffer_size, FIN on the last).
    fin False (profile current): the last frame has FIN clear too, more fragments follow."""

    def frame(op: int, part: bytes, fin: bool) -> bytes:
        key = _FIXED_MASK_KEY if fw.mask_key_fixed else os.urandom(4)
        bits = 64 if fw.length_form_64_from is not None and len(part) >= fw.length_form_64_from \
            else None
        return encode_frame(op, part, fin=fin, mask=True, mask_key=key, length_bits=bits)

    if len(payload) <= buffer_size:
        return frame(opcode, payload, fin)
    frames = []
    for offset in range(0, len(payload), buffer_size):
        part = payload[offset:offset + buffer_size]
        last = offset + buffer_size >= len(payload)
        if fw.fragments_all_fin:
            frames.append(frame(opcode, part, True))
        else:
            frames.append(frame(opcode if offset == 0 else OP_CONTINUATION, part, last and fin))
    return b"".join(frames)
