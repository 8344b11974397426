"""One link as ESP-AT's AT layer keeps it: a WebSocket client (sim/client.py) and what the AT
port shows of it.

The AT layer prints one URC per library event (BEHAVIOUR.md): CONNECTED -> +WS_CONNECTED,
DISCONNECTED -> +WS_DISCONNECTED, a DATA event of a data frame -> +WS_DATA in the link id's
AT+WSDATAFMT form, a DATA event of a close frame -> +WS_CLOSED; pings, pongs and reserved opcodes
print nothing. AT+WSOPEN waits for CONNECTED or a failure within <timeout_ms>; a failed open and
AT+WSCLOSE stop the client (at once in the conforming model; KD-2: the real library finishes its
current pass first). AT+WSOPEN? shows the client's state.
Where a firmware defect changes behaviour, the code reads its knob (`self.fw.*`,
sim/behaviour.py).
"""
from __future__ import annotations

import asyncio
import enum
import logging
from typing import Protocol

from sim.behaviour import Behaviour
from sim.client import MAX_CONTROL_PAYLOAD, ClientState, Reason, SendResult, WsClient
from sim.handshake import MAX_REQUEST_BYTES
from sim.pki import Pki
from sim.timing import Timings
from sim.uri import LinkConfig, WsUri, parse_uri
from sim.ws_data import CHUNK, MESSAGE, DataFormat, ws_data
from wire.frames import DATA_OPCODES, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT

__all__ = ["Link", "LinkConfig", "LinkState", "SendResult", "parse_uri", "MAX_CONTROL_PAYLOAD",
           "MAX_REQUEST_BYTES"]

log = logging.getLogger("sim.link")

LinkState = ClientState        # AT+WSOPEN? prints the client library's state
UTF8_BOM = "\ufeff".encode()


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


class _Open(enum.Enum):
    CONNECTED = "connected"
    FAILED = "failed"


class Link:
    def __init__(self, host: LinkHost, link_id: int, uri: str, ws_uri: WsUri, subprotocol: str,
                 config: LinkConfig, open_timeout_ms: int, auth: str = "") -> None:
        self.host = host
        self.fw = host.fw
        self.link_id = link_id
        self.uri = uri
        self.ws_uri = ws_uri
        self.open_timeout_ms = open_timeout_ms
        self.destroyed = False
        self.finished = False      # set by the device when it removed the link from its table
        self.was_connected = False
        self._loop = asyncio.get_running_loop()
        self.client = WsClient(host, self, f"link {link_id}", ws_uri, subprotocol, config, auth)
        self._opening: asyncio.Future[_Open] | None = None
        self._closed_by_server = False
        # +WS_DATA assembly (AT+WSDATAFMT levels) and the data defects' state
        self._fragment_dropped = False           # (defect) the rest of a message is dropped
        self._frame_dropped = False
        self._text_message = False               # the message in progress is text
        self._message_opcode = OP_TEXT           # the first frame's opcode of that message
        self._message_offset = 0                 # payload bytes of its earlier frames
        self._message = bytearray()              # level 2: the message so far
        self._frame = bytearray()                # level 1: the frame so far

    # ---- what AT commands see ------------------------------------------------------------------

    @property
    def config(self) -> LinkConfig:
        return self.client.config

    @config.setter
    def config(self, config: LinkConfig) -> None:
        self.client.config = config              # (defect) AT+WSCFG reaching a live link

    @property
    def state(self) -> ClientState:
        return self.client.state

    @property
    def shown_state(self) -> int:
        """The state AT+WSOPEN? prints."""
        return self.fw.shown_state(int(self.client.state))

    @property
    def reconnecting(self) -> bool:
        """Waiting to reconnect (state 3) or trying (state 1) after an abort."""
        return self.client.state in (ClientState.WAIT_TIMEOUT, ClientState.INIT)

    @property
    def can_send(self) -> bool:
        return self.client.is_connected

    @property
    def wait_ends_at(self) -> float | None:
        return self.client.wait_ends_at if self.client.state is ClientState.WAIT_TIMEOUT else None

    async def open(self) -> bool:
        """Start the client and wait for CONNECTED or a failure within the open timeout. True:
        connected. False: the caller stops the client (or, with a defect, lets it retry)."""
        timeout_ms = self.open_timeout_ms
        if self.fw.open_timeout_ignored:
            timeout_ms = self.host.default("AT+WSOPEN", "timeout_ms")
        timeout_s = timeout_ms / 1000 if timeout_ms else self.host.timings.network_timeout_s
        self._opening = self._loop.create_future()
        # The conforming AT layer gives the library timeout_ms for the attempt; the real one
        # leaves the library's own network timeout (KD-2).
        self.client.start(None if self.fw.teardown_blocks else timeout_s)
        try:
            outcome = await asyncio.wait_for(asyncio.shield(self._opening), timeout_s)
        except asyncio.TimeoutError:                 # (unless it came in the same instant)
            outcome = self._opening.result() if self._opening.done() else None
        self._opening = None
        if outcome is _Open.CONNECTED and not self.destroyed:
            return True
        if outcome is None and not self.fw.teardown_blocks:
            self.client.stop_now()               # the conforming model gives up at timeout_ms
            self._urc("+WS_DISCONNECTED")
        return False

    async def stop_after_failed_open(self) -> None:
        """The AT layer destroys a client whose open failed (KD-2: this blocks until the
        library's current attempt or reconnect wait ends, its URCs still printed)."""
        await self.client.stop()
        self.destroyed = True

    async def send(self, payload: bytes, opcode: int, timeout_ms: int,
                   fin: bool = True) -> SendResult:
        """The frame(s) of one AT+WSSEND; SENT when every byte was handed to TCP in time.
        fin False (profile current): the last frame goes out with FIN clear too."""
        if self.fw.sent_payload_cut:
            payload = payload[:-self.fw.sent_payload_cut]
        if self.fw.send_timeout_ignored:
            timeout_ms = self.host.default("AT+WSSEND", "timeout_ms")
        return await self.client.send(payload, opcode, timeout_ms, fin or self.fw.fin_ignored)

    async def close(self, *, keep_tcp: bool = False) -> None:
        """AT+WSCLOSE: stop the client, TCP closed with no close frame, nothing printed.
        keep_tcp (a defect) forgets the connection without closing it."""
        self.destroyed = True
        await self.client.stop(keep_tcp=keep_tcp)

    def destroy(self) -> None:
        """AT+RST, a power loss: everything stops at once."""
        self.destroyed = True
        self.client.stop_now()

    def send_close_frame(self, code: int) -> None:
        self.client.send_close_frame(code)

    # ---- the library's events (ClientEvents) ------------------------------------------------------

    def connected(self) -> None:
        self.was_connected = True
        opening = self._opening
        if opening is not None:
            if not self.fw.connected_after_ok:
                self._announce_connected()
            if not opening.done():
                opening.set_result(_Open.CONNECTED)
            return
        self._urc("+WS_CONNECTED")               # a reconnect

    def _announce_connected(self) -> None:
        for _ in range(2 if self.fw.connected_urc_twice else 1):
            self._urc("+WS_CONNECTED")

    def disconnected(self, reason: Reason) -> None:
        opening = self._opening
        if opening is not None and not self.was_connected:
            self._urc("+WS_DISCONNECTED")        # the open failed
            if not opening.done():
                opening.set_result(_Open.FAILED)
            return
        if reason is Reason.NO_CLOSE_REPLY:
            self._urc("+WS_DISCONNECTED")        # our close frame got no reply: the link ends
            return
        name = self.fw.pong_timeout_urc if reason is Reason.PONG_TIMEOUT else "+WS_DISCONNECTED"
        if self.fw.lost_connection_silent:
            return
        for _ in range(2 if self.fw.disconnected_urc_twice else 1):
            self._urc(name)

    def data(self, opcode: int, fin: bool, payload_len: int, offset: int, data: bytes) -> None:
        fw = self.fw
        if opcode == OP_CLOSE:
            if offset == 0:
                self._server_closed()
        elif opcode == OP_PING:
            if offset == 0:
                if fw.server_ping_urc:
                    self.host.emit(b"+WS_PING:%d,%d\r\n" % (self.link_id, payload_len))
                if fw.ping_ends_fragmented_message:
                    self._fragment_dropped = True
        elif opcode == OP_PONG:
            if offset == 0 and fw.pongs_printed:
                self._emit_data(b"", OP_PONG, True, 0, 0)
        elif opcode in DATA_OPCODES or fw.reserved_opcodes_printed:
            self._data_frame(opcode, fin, payload_len, offset, data)
        # Reserved opcodes (3-7, 0xB-0xF): nothing printed (AT core object).

    def closed(self) -> None:
        """The close handshake is over (CLOSED)."""
        if self.fw.disconnected_after_closed:
            self._urc("+WS_DISCONNECTED")

    def task_ended(self) -> None:
        """The client's task ended: the link is over. State 0 briefly (seed), then gone."""
        if self.destroyed or self.finished:
            return
        if self.fw.closed_link_removed_at_once and self._closed_by_server:
            return                               # KD-3: already gone
        self._loop.call_later(self.host.timings.closed_state_linger_s, self.host.link_finished,
                              self)

    def _server_closed(self) -> None:
        """A close frame from the server: +WS_CLOSED at once, the link's AT+WSCFG released."""
        self._closed_by_server = True
        self._urc("+WS_CLOSED")
        if not self.fw.wscfg_survives_server_close:
            self.host.release_config(self)
        if self.fw.closed_link_removed_at_once:
            self.host.link_finished(self)        # KD-3: the link is cleaned as the frame arrives

    # ---- +WS_DATA ----------------------------------------------------------------------------------

    def _data_frame(self, opcode: int, fin: bool, payload_len: int, offset: int,
                    chunk: bytes) -> None:
        """A read of a data frame, printed as the link id's AT+WSDATAFMT level says: per read of
        at most buffer_size (level 0, the released behaviour: fragments one by one as they come,
        BEHAVIOUR.md "Data from the server"), per frame (1), or per reassembled message (2)."""
        fw = self.fw
        if offset == 0:
            if opcode != OP_CONTINUATION:
                self._text_message = opcode == OP_TEXT
                self._fragment_dropped = False
                self._message_opcode = opcode
                self._message_offset = 0
                self._message.clear()
            self._frame_dropped = opcode == OP_CONTINUATION and self._fragment_dropped
            if fin:
                self._fragment_dropped = False
            self._frame.clear()
        dropped = self._frame_dropped
        frame_done = offset + len(chunk) >= payload_len
        level = self.host.data_format(self.link_id).level
        if level == CHUNK:
            if payload_len == 0:
                if not dropped and not fw.empty_frames_dropped:
                    self._emit_data(b"", opcode, fin, 0, 0)
            elif not dropped:
                # (defect) the offset counted from the start of the message instead of the frame
                base = self._message_offset if fw.wsdatafmt_offset_from_message else 0
                if fw.text_bom_stripped and opcode == OP_TEXT and offset == 0:
                    chunk = chunk.removeprefix(UTF8_BOM)
                self._emit_data(self._utf8_replaced(chunk), opcode, fin, payload_len,
                                base + offset)
        else:
            self._frame += chunk
            if not frame_done:
                return
            payload = self._utf8_replaced(bytes(self._frame))
            if level == MESSAGE:
                if not dropped:
                    self._message += payload
                if fin:
                    whole, self._message = bytes(self._message), bytearray()
                    if whole or not fw.empty_frames_dropped:
                        self._emit_data(whole, self._message_opcode, True, len(whole), 0)
            elif not dropped and (payload or not fw.empty_frames_dropped):
                self._emit_data(payload, opcode, fin, payload_len, 0)
        if frame_done:
            self._message_offset = 0 if fin else self._message_offset + payload_len

    def _utf8_replaced(self, data: bytes) -> bytes:
        if self.fw.text_utf8_replaced and self._text_message:
            return data.decode("utf-8", "replace").encode()
        return data

    # ---- output helpers -----------------------------------------------------------------------------

    def _urc(self, name: str) -> None:
        if not self.destroyed:
            self.host.emit(f"{name}:{self.link_id}\r\n".encode())

    def _emit_data(self, data: bytes, opcode: int, fin: bool, payload_len: int,
                   payload_offset: int) -> None:
        if not self.destroyed:
            self.host.emit(ws_data(self.link_id, self.host.data_format(self.link_id), data,
                                   opcode=opcode, fin=fin, payload_len=payload_len,
                                   payload_offset=payload_offset, fw=self.fw))
