"""The WebSocket client under one link, run as Espressif's esp_websocket_client runs it (its task
loop: traces/SUMMARY.md C123/C180), with the conforming model's fixes where the seed or RFC 6455
asks for them.

One task, one loop. Each pass (it costs the library LOOP_PASS_S) acts on the state:
- INIT (1): connect and handshake within the network timeout; CONNECTED or, on a failure, an
  abort into WAIT_TIMEOUT with a DISCONNECTED event.
- CONNECTED (2): unless a close frame was sent, a ping when more than ping_intv_sec passed since
  the ping clock last restarted, and an abort when more than ping_timeout_sec passed since the
  first unanswered ping; then, if the last poll saw bytes, one frame is read (`_recv`).
- WAIT_TIMEOUT (3): back to INIT once more than the reconnect timeout has passed.
- CLOSING (4): the close frame answered (a server's close), then the wait for TCP to end.
After the switch the task waits: CONNECTED polls the socket for up to POLL_S, WAIT_TIMEOUT sleeps
(half the reconnect timeout per pass on 1.2.3, `reconnect_waits_in_halves`; until it is over,
woken by a stop, on 1.8.0 and the conforming model), CLOSING waits up to close_drain_s for the
server to drop TCP, then the CLOSED event ends the task.

Clocks are integer milliseconds compared with `>`, as `_tick_get_ms() - tick > value` is. A stop
(AT+WSCLOSE, a failed AT+WSOPEN) ends the task at once in the conforming model; the real library
(`teardown_blocks`, KD-2) only notices at the top of its next pass, after whatever it is blocked
in: a connect attempt, a poll, a reconnect sleep.

What reaches the AT layer are the library's events (`ClientEvents`): connected, disconnected,
data (one per read of at most buffer_size), closed, and the task's end.
"""
from __future__ import annotations

import asyncio
import codecs
import enum
import logging
import ssl
import struct
from typing import Protocol

import spec
from sim.behaviour import Behaviour
from sim.handshake import HandshakeError
from sim.pki import Pki
from sim.timing import Timings
from sim.uri import LinkConfig, WsUri
from sim.ws_transport import FrameHeader, TransportError, WsTransport
from wire.frames import (DATA_OPCODES, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
                         RESERVED_OPCODES, close_payload, encode_frame)

log = logging.getLogger("sim.client")

_SPEC = spec.load()
# RFC 6455 §5.5: control frame payloads are at most 125 bytes.
MAX_CONTROL_PAYLOAD = _SPEC.at.control_payload_max
POLL_S = 1.0                 # esp_transport_poll_read(transport, 1000) in the CONNECTED state
# One pass of the library's loop (the lock, the checks) on the traces' host: about 0.1 ms. The
# task's clock advances by it per pass (the model itself does not spend it).
LOOP_PASS_S = 0.0001
# A poll's 1000 ms timeout ends about 1.5 ms late on that host (pings every ~1001.6 ms at
# ping_interval_sec 1), so a clock checked one poll after it restarted has passed its value (`>`);
# a reconnect wait, slept in exact ticks, has not (1.2.3 reconnects after 1.5 x the timeout).
POLL_OVERRUN_S = 0.0015
# The model's own scheduling lateness taken out of its clock, at most this much (a busy host).
MAX_LAG_S = 0.050
EARLY_WAKE_S = 0.004         # timed waits wake this early and spin to their deadline
# Close status codes a server may send (RFC 6455 §7.4.1-7.4.2): 1000-1003, 1007-1011, 3000-4999.
VALID_CLOSE_CODES = set(range(1000, 1004)) | set(range(1007, 1012)) | set(range(3000, 5000))
PROTOCOL_ERROR, INVALID_DATA = 1002, 1007


class ClientState(enum.IntEnum):
    UNKNOWN = _SPEC.state("closed")
    INIT = _SPEC.state("reconnecting")
    CONNECTED = _SPEC.state("established")
    WAIT_TIMEOUT = _SPEC.state("wait_reconnect")
    CLOSING = _SPEC.state("closing")


# The client's lifecycle, all of it: a change not listed here is a model bug and raises.
TRANSITIONS: dict[ClientState, frozenset[ClientState]] = {
    # handshake done / attempt failed, wait to reconnect / stopped
    ClientState.INIT: frozenset({ClientState.CONNECTED, ClientState.WAIT_TIMEOUT,
                                 ClientState.UNKNOWN}),
    # abort (pong timeout, TCP lost, a protocol error) / a close frame came / stopped
    ClientState.CONNECTED: frozenset({ClientState.WAIT_TIMEOUT, ClientState.CLOSING,
                                      ClientState.UNKNOWN}),
    ClientState.WAIT_TIMEOUT: frozenset({ClientState.INIT, ClientState.UNKNOWN}),
    # the close handshake ended / (defect reconnect_after_server_close) reconnect anyway
    ClientState.CLOSING: frozenset({ClientState.UNKNOWN, ClientState.WAIT_TIMEOUT}),
    ClientState.UNKNOWN: frozenset(),
}


class Reason(enum.Enum):
    CONNECT_FAILED = "connect failed"
    PONG_TIMEOUT = "pong timeout"
    LOST = "connection lost"
    PROTOCOL_ERROR = "protocol error"      # the conforming model failed the connection
    NO_CLOSE_REPLY = "no close reply"      # the host's own close frame got no answer


class SendResult(enum.Enum):
    SENT = "sent"
    FAILED = "failed"                   # not connected, or <timeout_ms> passed
    DISRUPTED = "disrupted"             # the connection broke during the send


class ClientEvents(Protocol):
    """What the AT layer hears (esp_websocket_event_id_t)."""

    def connected(self) -> None: ...

    def disconnected(self, reason: Reason) -> None: ...

    def data(self, opcode: int, fin: bool, payload_len: int, offset: int, data: bytes) -> None: ...

    def closed(self) -> None: ...

    def task_ended(self) -> None: ...


class ClientHost(Protocol):
    timings: Timings
    fw: Behaviour
    pki: Pki
    ws_headers: list[tuple[str, str]]


class WsClient:
    def __init__(self, host: ClientHost, events: ClientEvents, name: str, ws_uri: WsUri,
                 subprotocol: str, config: LinkConfig, auth: str = "") -> None:
        self.host = host
        self.fw = host.fw
        self.timings = host.timings
        self.events = events
        self.name = name
        self.ws_uri = ws_uri
        self.subprotocol = subprotocol
        self._auth = auth                      # a secret (profile auth), never logged
        self.config = config
        self.state = ClientState.INIT
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._run = False
        self._wake = asyncio.Event()           # a stop wakes a reconnect wait (1.8.0, conforming)
        self.transport: WsTransport | None = None
        self._forgotten: WsTransport | None = None
        self._keep_tcp = False                 # (defect) a stop that forgets TCP, not closes it
        self._first_attempt_s: float | None = None
        self.connections = 0
        # The task's clock: the loop's time when it last woke for something that happened, its
        # own schedule when a wait timed out (a late wake-up does not push the next one back).
        self._clock = self._loop.time()
        self._lag = 0.0                        # how late the last timed wait woke
        # esp_websocket_client_init: the clocks start when the client is made (BEHAVIOUR.md)
        now = self._tick()
        self.ping_tick = self.reconnect_tick = self.pong_tick = now
        self.waiting_for_pong = False
        self._read_select = False
        self.close_sent = False
        self.close_sent_at: float | None = None  # the host's own close frame (conforming)
        self._pings_off = False
        self._message_open = False             # a fragmented data message is in progress
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._text = False
        self._cut_frame_left = 0               # (defect) bytes of a frame a lost connection cut
        self.wait_ends_at: float | None = None  # the end of the current reconnect wait
        self._wait_ms = 0                      # this reconnect wait
        self._slept_ms = 0                     # its halves slept so far (1.2.3)

    # ---- the clock ----------------------------------------------------------------------------

    def _tick(self) -> int:
        return int(self._clock * 1000)

    def _woke(self) -> None:
        """Something happened (bytes, a connect's end, a stop): the clock is the loop's now, less
        how late this process runs its timers (its writes went out that late, so what answers
        them comes that late too; the library on its own CPU would not be)."""
        self._clock = max(self._clock, self._loop.time() - self._lag)

    def _timed_out(self, deadline: float) -> None:
        """A wait ended by its timeout: the clock moves to the deadline exactly."""
        self._lag = min(max(0.0, self._loop.time() - deadline), MAX_LAG_S)
        self._clock = max(self._clock, deadline)

    def _on_time(self, deadline: float) -> None:
        """A timed wait woke EARLY_WAKE_S before its deadline (asyncio's timers run up to a few
        ms late): spin the rest, so what the task then writes leaves when the library's would.
        The library's own timing has sub-ms jitter, and its decisions (a ping due or not) can
        hinge on a millisecond."""
        while self._loop.time() < deadline:
            pass
        self._timed_out(deadline)

    async def _sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - EARLY_WAKE_S - self._loop.time()))
        self._on_time(deadline)

    def _enter(self, state: ClientState) -> None:
        if state is self.state:
            return
        if state not in TRANSITIONS[self.state]:
            raise RuntimeError(f"{self.name}: no transition {self.state.name} -> {state.name}")
        log.info("%s: %s -> %s", self.name, self.state.name, state.name)
        self.state = state

    # ---- start and stop -------------------------------------------------------------------------

    def start(self, first_attempt_s: float | None = None) -> None:
        """first_attempt_s: the first connect's bound (None: the network timeout)."""
        self._run = True
        self._first_attempt_s = first_attempt_s
        self._task = self._loop.create_task(self._main(), name=self.name)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self, keep_tcp: bool = False) -> None:
        """esp_websocket_client_stop/destroy: the task ends, TCP is closed with no close frame.
        Conforming: at once. The real library (`teardown_blocks`): once its current pass ends.
        keep_tcp (a defect): the connection is forgotten, not closed."""
        self._run = False
        self._keep_tcp = keep_tcp                # the task's own end must leave it open too
        self._wake.set()
        task = self._task
        if task is None or task.done():
            self._drop(keep_tcp)
            self._final_state()
            return
        if self.fw.teardown_blocks:
            await asyncio.shield(task)
        else:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._drop(keep_tcp)
        self._final_state()

    def stop_now(self) -> None:
        """AT+RST and power loss: the task is gone at once, whatever the library would do."""
        self._run = False
        if self._task is not None:
            self._task.cancel()
        self._drop(False)
        if self._forgotten is not None:
            self._forgotten.close()
            self._forgotten = None
        self._final_state()

    def _final_state(self) -> None:
        if self.state is not ClientState.UNKNOWN:
            self._enter(ClientState.UNKNOWN)

    def _drop(self, keep_tcp: bool = False, discard_unread: bool = False) -> None:
        transport, self.transport = self.transport, None
        if transport is None:
            return
        if keep_tcp:
            self._forgotten = transport          # (defect) open until the chip resets
        else:
            transport.close(discard_unread)

    # ---- the task ---------------------------------------------------------------------------------

    async def _main(self) -> None:
        try:
            while self._run:
                await asyncio.sleep(0)
                self._clock += LOOP_PASS_S
                if not self._run:
                    break
                await self._pass()
        except asyncio.CancelledError:
            raise
        except Exception:       # a model bug must not leave a half-dead client behind silently
            log.exception("%s: the client task failed", self.name)
        finally:
            self._drop(self._keep_tcp)
            if self.state is not ClientState.UNKNOWN:
                self._enter(ClientState.UNKNOWN)
            self.events.task_ended()

    async def _pass(self) -> None:
        state = self.state
        if state is ClientState.INIT:
            await self._connect(self._first_attempt_s if not self.connections else None)
        elif state is ClientState.CONNECTED:
            await self._connected_pass()
        elif state is ClientState.WAIT_TIMEOUT:
            if self.fw.reconnect_waits_in_halves:
                # the sleeps are exact ticks: the check sees the halves slept since the abort
                # (plus a board's jitter) and `>` is false at exactly the timeout
                due = self._slept_ms + self.timings.tick_jitter_ms() > self._wait_ms
            else:
                due = self._tick() - self.reconnect_tick >= self._wait_ms
            if due:
                self._enter(ClientState.INIT)
                self.reconnect_tick = self._tick()
        elif state is ClientState.CLOSING and not self.close_sent:
            # the server's close frame is answered (not the status code: BEHAVIOUR.md Close)
            if self.fw.close_reply_payload is not None:
                self._write(OP_CLOSE, self.fw.close_reply_payload)
            self.close_sent = True
        await self._wait()

    async def _wait(self) -> None:
        """What the loop blocks in after a pass."""
        state = self.state
        if state is ClientState.CONNECTED:
            transport = self.transport
            if transport is None:
                return
            deadline = self._clock + POLL_S + POLL_OVERRUN_S
            try:
                self._read_select = await transport.poll_read(
                    max(0.0, deadline - EARLY_WAKE_S - self._loop.time()))
            except TransportError as exc:
                self._woke()
                self._lost(str(exc))
                return
            if self._read_select:
                self._woke()
            else:
                self._on_time(deadline)
        elif state is ClientState.WAIT_TIMEOUT:
            if self.fw.reconnect_waits_in_halves:
                # vTaskDelay(T/2): a stop waits for it. Counted once slept, not per check: a
                # loss the poll finds is checked once before any sleep (5 s early otherwise).
                half_ms = self.timings.reconnect_wait_ms() // 2
                await self._sleep_until(self._clock + half_ms / 1000)
                self._slept_ms += half_ms
            else:
                deadline = (self.reconnect_tick + self._wait_ms) / 1000
                self._wake.clear()
                if self._run and deadline > self._clock:
                    try:
                        await asyncio.wait_for(self._wake.wait(),
                                               max(0.0, deadline - EARLY_WAKE_S - self._loop.time()))
                        self._woke()
                    except asyncio.TimeoutError:
                        self._on_time(deadline)
        elif state is ClientState.CLOSING and self.close_sent:
            if self.transport is not None:
                wait = None if self.fw.close_waits_forever else self.timings.close_drain_wait_s
                await self.transport.wait_closed_by_peer(wait)
            self._woke()
            self._drop()
            self.events.closed()
            if self.fw.reconnect_after_server_close:
                self._enter(ClientState.WAIT_TIMEOUT)
                self.reconnect_tick = self._tick()
                self._new_wait()
                self.close_sent = False
            else:
                self._run = False

    # ---- INIT ---------------------------------------------------------------------------------------

    async def _connect(self, timeout_s: float | None = None) -> bool:
        transport = WsTransport(self.fw, self.timings)
        self.transport = transport
        reconnecting = self.connections > 0
        headers = () if reconnecting and self.fw.wshead_not_on_reconnect else \
            self.host.ws_headers
        try:
            await asyncio.wait_for(
                transport.connect(self.ws_uri, self.config, self.host.pki, self.subprotocol,
                                  self._auth, headers, reconnecting),
                timeout_s if timeout_s is not None else self.timings.network_timeout_s)
        except (asyncio.TimeoutError, OSError, HandshakeError, asyncio.IncompleteReadError,
                ValueError, ssl.SSLError, TransportError) as exc:
            self._woke()
            log.info("%s: connect failed: %r", self.name, exc)
            self._abort(Reason.CONNECT_FAILED, repr(exc))
            return False
        self._woke()
        if self.state is ClientState.UNKNOWN:
            # stopped at once (AT+RST) just as the connect ended: asyncio.wait_for in 3.11 can
            # return the result and lose the cancel; the chip's task would be gone
            self._drop()
            return False
        self.connections += 1
        self._enter(ClientState.CONNECTED)
        self.waiting_for_pong = False
        self._read_select = False
        self.close_sent = False
        self.close_sent_at = None
        self._message_open = False
        if not self.fw.stale_fragment_after_reconnect:
            self._cut_frame_left = 0
        if self.fw.pings_off_after_reconnect and reconnecting:
            self._pings_off = True
        self.events.connected()
        return True

    def _abort(self, reason: Reason, why: str = "") -> None:
        """esp_websocket_client_abort_connection: TCP closed (no close frame), the reconnect
        clock restarted, WAIT_TIMEOUT, then the DISCONNECTED event."""
        log.info("%s: abort (%s) %s", self.name, reason.value, why)
        self._drop()
        self.reconnect_tick = self._tick()
        self._enter(ClientState.WAIT_TIMEOUT)
        self._new_wait()
        self.wait_ends_at = self._clock + self._wait_ms / 1000
        self.events.disconnected(reason)

    def _new_wait(self) -> None:
        """A reconnect wait starts. 1.2.3 waits exactly the timeout, in halves (its 10-or-15 s
        is the tick jitter's); the conforming library's late share is drawn here."""
        self._wait_ms = self.timings.reconnect_wait_ms() if self.fw.reconnect_waits_in_halves \
            else self.timings.drawn_reconnect_wait_ms()
        self._slept_ms = 0

    # ---- CONNECTED -----------------------------------------------------------------------------------

    async def _connected_pass(self) -> None:
        cfg = self.config
        now = self._tick()
        if not self.close_sent:
            if now - self.ping_tick > cfg.ping_intv_sec * 1000:
                self.ping_tick = now
                if not self._pings_off:
                    self._write(OP_PING, b"")
                    if not self.waiting_for_pong or self.fw.pong_clock_restarts_each_ping:
                        self.pong_tick = now
                        self.waiting_for_pong = True
            if now - self.pong_tick > cfg.ping_timeout_sec * 1000 and self.waiting_for_pong:
                if self.fw.pong_timeout_sends_close:
                    self._write(OP_CLOSE, close_payload(1001))
                self._abort(Reason.PONG_TIMEOUT, f"no pong within {cfg.ping_timeout_sec} s")
                return
        elif self.close_sent_at is not None and \
                self._clock - self.close_sent_at > self.timings.client_close_wait_s:
            # conforming: the host's close frame got no reply; the link ends (no reconnect)
            self._drop()
            self._run = False
            self.events.disconnected(Reason.NO_CLOSE_REPLY)
            return
        if not self._read_select:
            return
        self._read_select = False
        if self.fw.ping_clock_restarts_on_data:
            self.ping_tick = self._tick()        # KD-4: any readable byte restarts the ping clock
        try:
            await self._recv()
        except TransportError as exc:
            self._woke()
            if self.state is ClientState.CONNECTED:
                self._lost(str(exc))
            return
        self._woke()

    def _lost(self, why: str) -> None:
        """TCP went under a read. After the host's own close frame (conforming) the link just
        ends; otherwise an abort and a reconnect."""
        if self.close_sent_at is not None:
            self._drop()
            self._run = False
            self.events.disconnected(Reason.NO_CLOSE_REPLY)
            return
        self._abort(Reason.LOST, why)

    # ---- reading one frame (esp_websocket_client_recv) --------------------------------------------

    async def _recv(self) -> None:
        transport = self.transport
        if transport is None:
            return
        timeout = self.timings.network_timeout_s
        if self._cut_frame_left:                 # (defect) the rest of a frame cut earlier
            left, self._cut_frame_left = self._cut_frame_left, 0
            await self._read_payload(transport, FrameHeader(OP_CONTINUATION, True, 0, False,
                                                            b"", left))
            return
        header = await transport.read_header(timeout)
        violation = self._violation(header)
        if violation is not None:
            self._fail(PROTOCOL_ERROR, violation)
            return
        if header.opcode in DATA_OPCODES:
            if header.opcode != OP_CONTINUATION:
                self._text = header.opcode == OP_TEXT
                self._utf8.reset()
            self._message_open = not header.fin
        read = await self._read_payload(transport, header)
        if read is None:
            return
        payload, reads = read
        if header.opcode == OP_CLOSE:
            problem = self._bad_close_body(payload)
            if problem is not None:
                self._fail(*problem)
                return
        for offset, chunk in reads:              # a control frame's reads, once it is checked
            self.events.data(header.opcode, header.fin, header.length, offset, chunk)
        if header.opcode == OP_PING:
            self._answer_ping(payload, header.length)
        elif header.opcode == OP_PONG:
            self.waiting_for_pong = False
        elif header.opcode == OP_CLOSE:
            self._enter(ClientState.CLOSING)

    def _violation(self, h: FrameHeader) -> str | None:
        """What RFC 6455 makes the client fail the connection for, unless the library lets it
        through (KD-13 to KD-17)."""
        fw = self.fw
        if h.rsv and not fw.rsv_ignored:
            return f"RSV bits {h.rsv} with no extension (§5.2)"
        if h.opcode in RESERVED_OPCODES and not fw.reserved_opcodes_accepted:
            return f"reserved opcode {h.opcode:#x} (§5.2)"
        if h.masked and not fw.masked_server_frames_accepted:
            return "a masked frame from the server (§5.1)"
        if h.opcode >= 0x8 and (not h.fin or h.length > MAX_CONTROL_PAYLOAD) \
                and not fw.control_frame_checks_skipped:
            return f"a control frame {'fragmented' if not h.fin else f'of {h.length} bytes'} (§5.5)"
        if h.opcode == OP_CONTINUATION and not self._message_open \
                and not fw.orphan_continuation_accepted:
            return "a continuation frame with no message to continue (§5.4)"
        if h.opcode in (0x1, 0x2) and self._message_open and not fw.orphan_continuation_accepted:
            return "a new message inside a fragmented one (§5.4)"
        return None

    def _bad_close_body(self, payload: bytes) -> tuple[int, str] | None:
        if self.fw.close_body_unchecked:
            return None
        if len(payload) == 1:
            return PROTOCOL_ERROR, "a close frame with a 1-byte body (§5.5.1)"
        if len(payload) >= 2:
            code = struct.unpack("!H", payload[:2])[0]
            if code not in VALID_CLOSE_CODES:
                return PROTOCOL_ERROR, f"close status {code} (§7.4.1)"
            try:
                payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return INVALID_DATA, "a close reason that is not UTF-8 (§8.1)"
        return None

    async def _read_payload(self, transport: WsTransport, h: FrameHeader
                            ) -> tuple[bytes, list[tuple[int, bytes]]] | None:
        """Reads of at most buffer_size, one DATA event each (a frame of length 0: one empty
        event); a data frame's go out as they are read. For a control frame: its payload (as
        the library's rx buffer holds it) and its reads, whose events wait until it is checked.
        None: the connection was failed."""
        chunk_size = self.config.buffer_size
        if self.fw.chunk_cap is not None:
            chunk_size = min(chunk_size, self.fw.chunk_cap)
        chunk_size += self.fw.chunk_extra
        control = h.opcode >= 0x8
        rx = bytearray(chunk_size)               # the library's receive buffer (KD-11)
        whole = bytearray()
        reads: list[tuple[int, bytes]] = []
        if h.length == 0:
            reads.append((0, b""))
        offset = 0
        while offset < h.length:
            self._cut_frame_left = h.length - offset
            chunk = await transport.read(min(h.length - offset, chunk_size),
                                         self.timings.network_timeout_s)
            chunk = transport.unmask(chunk, h.key, offset, self.fw.masked_server_frames_accepted)
            if self._text and h.opcode in DATA_OPCODES and not self.fw.invalid_utf8_accepted:
                try:
                    self._utf8.decode(chunk, final=h.fin and offset + len(chunk) == h.length)
                except UnicodeDecodeError:
                    self._cut_frame_left = 0
                    self._fail(INVALID_DATA, "text that is not UTF-8 (§8.1)")
                    return None
            if control:
                rx[:len(chunk)] = chunk          # each read lands at the buffer's start
                whole += chunk
                reads.append((offset, chunk))
            else:
                self.events.data(h.opcode, h.fin, h.length, offset, chunk)
            offset += len(chunk)
        self._cut_frame_left = 0
        if not control:
            for _, chunk in reads:               # an empty data frame
                self.events.data(h.opcode, h.fin, 0, 0, chunk)
            return b"", []
        if self.fw.pong_payload_overread and h.length > chunk_size:
            # KD-11: the pong is built from the receive buffer (the last read over the earlier
            # ones) with the ping's full length, read past the buffer's end (heap bytes).
            return (bytes(rx) + OVERREAD_FILL * h.length)[:h.length], reads
        return bytes(whole), reads

    def _answer_ping(self, payload: bytes, length: int) -> None:
        """A pong with the ping's payload at once (nothing on the AT port)."""
        if self.fw.pong_payload_cut and length > self.config.buffer_size:
            payload = payload[:self.config.buffer_size]
        if self.fw.pong_empty:
            payload = b""
        if self.fw.pong_unmasked:
            self._write_unmasked(OP_PONG, payload)
        else:
            self._write(OP_PONG, payload)

    def _fail(self, code: int, why: str) -> None:
        """RFC 6455 §7.1.7 Fail the WebSocket Connection: a close frame with the status, TCP
        closed, then as any abort (DISCONNECTED, reconnect)."""
        log.info("%s: failing the connection: %s", self.name, why)
        self._write(OP_CLOSE, close_payload(code))
        self._drop(discard_unread=True)          # what came after is read away: no reset
        self._abort(Reason.PROTOCOL_ERROR, why)

    # ---- writing --------------------------------------------------------------------------------------

    def _write(self, opcode: int, payload: bytes, fin: bool = True) -> bool:
        transport = self.transport
        return transport is not None and transport.write_frame(opcode, payload, fin)

    def _write_unmasked(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None:
            self.transport.write_raw(encode_frame(opcode, payload))

    @property
    def is_connected(self) -> bool:
        return (self.state is ClientState.CONNECTED and self.transport is not None
                and not self.transport.writer_closing and self.close_sent_at is None)

    async def send(self, payload: bytes, opcode: int, timeout_ms: int, fin: bool = True
                   ) -> SendResult:
        """esp_websocket_client_send_with_opcode: fragments of at most buffer_size (the first
        with the opcode, continuations after it, FIN on the last unless fin is False); a
        control frame is split like any other (KD-10) unless the model conforms."""
        if not self.is_connected or self.transport is None:
            return SendResult.FAILED
        transport = self.transport
        size = self.config.buffer_size
        control = opcode >= 0x8
        if control and not self.fw.control_frame_size_unchecked:
            size = max(size, len(payload))       # RFC 6455 §5.5: never fragmented
        parts = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if self.fw.fragments_all_fin:
                op, frame_fin = opcode, True
            else:
                op, frame_fin = (opcode if index == 0 else OP_CONTINUATION), last and fin
            transport.write_frame(op, part, frame_fin)
        if opcode == OP_CLOSE and not self.fw.close_frame_keeps_link:
            # RFC 6455 §5.5.1: after our close frame no more frames; wait for the reply.
            self.close_sent = True
            self.close_sent_at = self._clock = max(self._clock, self._loop.time())
        if timeout_ms == 0:
            # No wait at all: succeed only if TCP took everything at once (BEHAVIOUR.md "Sending").
            if transport.write_buffer_size() == 0 and not transport.writer_closing:
                return SendResult.SENT
            return self._write_timed_out()
        try:
            await asyncio.wait_for(transport.drain(), timeout_ms / 1000)
        except asyncio.TimeoutError:
            return self._write_timed_out()
        except (ConnectionError, OSError):
            return SendResult.DISRUPTED
        return SendResult.DISRUPTED if transport.writer_closing else SendResult.SENT

    def _write_timed_out(self) -> SendResult:
        """The library treats a write that timed out as a network error and aborts the
        connection (esp_websocket_client_send_with_opcode: "esp_transport_write() returned 0"):
        what was not yet written is lost, the next poll sees the loss, a reconnect follows."""
        log.info("%s: send timed out: connection aborted", self.name)
        if self.transport is not None:
            self.transport.abort()
        return SendResult.FAILED

    def send_close_frame(self, code: int) -> None:
        self._write(OP_CLOSE, close_payload(code))


# What a pong over-read past the receive buffer carries (unknown heap bytes on a board).
OVERREAD_FILL = b"\xa5"
