"""A raw WebSocket server that plays a golden trace's server script (traces/FORMAT.md) and
records what the client did in the trace's own format.

It runs on its own thread and event loop, like WsTestServer, but below HTTP: every byte it writes
is the script's (a 200 with the right key, a missing Upgrade header, frames in the 101's segment,
masked or reserved frames, a frame cut short), and every byte the client sends is recorded as it
came: the request head, each frame with the time its first and its last byte arrived, the RFC
6455 rules it breaks, TCP opens and closes (with the bytes of a frame cut short by the close).
Automatic reactions (answer pings, echo data, answer the client's close) follow the policies the
script sets. Times are milliseconds since `origin` (a time.monotonic() the driver sets when it
tells the device to open).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from replay.trace import FrameSpec, Step
from wire.frames import (DATA_OPCODES, OP_CLOSE, OP_PING, OP_PONG, Frame, FrameParser)
from wire.handshake import accept_for
from wire.rfc6455 import ClientFrameChecker

HEAD_END = b"\r\n\r\n"
HEX_SHOWN = 64                      # bytes of a payload or a write kept as hex (FORMAT.md)
START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0
WAIT_FOR_TIMEOUT_MS = 60000
WRONG_ACCEPT = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
READ_SIZE = 65536
_OPCODE_WORDS = {0: "CONT", 1: "TEXT", 2: "BIN", 8: "CLOSE", 9: "PING", 10: "PONG"}


def frame_label(frame: Frame) -> str:
    return f"{_OPCODE_WORDS.get(frame.opcode, f'OP{frame.opcode}')} fin={int(frame.fin)}"


@dataclass
class Policies:
    """The automatic reactions in force on one connection (FORMAT.md "policies")."""

    pong_delay_ms: float | None = 0.0    # None: never answer a ping
    echo_data: bool = False
    close_reply: str = "echo"            # echo | empty | none | a hex payload
    close_then: str = "close_tcp"        # close_tcp | fin | rst | hold
    close_delay_ms: float = 0.0
    reply_when_server_closed: bool = False


@dataclass
class ServerRecord:
    """What the server saw and did, in the trace's `observed` shape (times in ms since origin)."""

    client_frames: list[dict[str, Any]] = field(default_factory=list)
    tcp: list[dict[str, Any]] = field(default_factory=list)
    handshakes: list[dict[str, Any]] = field(default_factory=list)
    server_sent: list[dict[str, Any]] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)   # each client frame's whole payload


class _Conn(asyncio.Protocol):
    """One accepted TCP connection: its reader, its policies and its copy of the script."""

    def __init__(self, server: "ScriptServer", index: int) -> None:
        self.server = server
        self.index = index
        self.policies = Policies()
        self.transport: asyncio.Transport | None = None
        self.head: bytes | None = None
        self.key = ""
        self._pre = bytearray()
        self._parser = FrameParser()
        self._checker = ClientFrameChecker()
        self._changed = asyncio.Event()
        self.frames: list[Frame] = []
        self.eof = False
        self.closed = False
        self.server_closed_ws = False        # the server sent a close frame
        self._client_close_seen = False
        self.events_since_accept: dict[str, int] = {}
        self._tasks: list[asyncio.Task] = []

    # ---- asyncio.Protocol ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.note_tcp(self, "accept")
        self._tasks.append(asyncio.get_running_loop().create_task(self._run_script()))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.head is None:
            self._pre += data
            end = self._pre.find(HEAD_END)
            if end < 0:
                return
            end += len(HEAD_END)
            self.head, rest = bytes(self._pre[:end]), bytes(self._pre[end:])
            self._pre.clear()
            self._record_head(now)
            data = rest
        for frame, first in self._parser.feed_timed(data, now):
            self._on_frame(frame, first, now)
        self._changed.set()

    def eof_received(self) -> bool:
        self.eof = True
        self.server.note_tcp(self, "client_fin")
        self._changed.set()
        # The client sent FIN: the server closes its side too (FORMAT.md).
        self.close("server_close", cause="client_fin")
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, ConnectionResetError) and not self.closed:
            self.server.note_tcp(self, "client_rst")
        self.closed = True
        self._changed.set()
        for task in self._tasks:
            task.cancel()

    # ---- recording ----

    def _record_head(self, now: float) -> None:
        assert self.head is not None
        lines = self.head[:-len(HEAD_END)].decode("latin-1").split("\r\n")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append([name.strip(), value.strip()])
            if name.strip().lower() == "sec-websocket-key":
                self.key = value.strip()
        self.server.record.handshakes.append({
            "t": self.server.ms(now), "conn": self.index, "request_line": lines[0],
            "headers": headers, "raw_length": len(self.head)})

    def _on_frame(self, frame: Frame, first: float, last: float) -> None:
        self.frames.append(frame)
        payload = frame.payload
        entry = {"t": self.server.ms(last), "t_first_byte": self.server.ms(first),
                 "conn": self.index, "fin": int(frame.fin), "rsv": frame.rsv,
                 "opcode": frame.opcode, "masked": int(frame.masked),
                 "len_encoding": str(frame.length_bits), "length": len(payload),
                 "payload_hex": payload[:HEX_SHOWN].hex(),
                 "sha256": hashlib.sha256(payload).hexdigest(),
                 "rfc_issues": self._checker.issues(frame)}
        if len(payload) > HEX_SHOWN:
            entry["payload_tail_hex"] = payload[-HEX_SHOWN:].hex()
        self.server.record.client_frames.append(entry)
        self.server.record.payloads.append(payload)
        self._react(frame)

    def unparsed(self) -> int:
        return self._parser.pending + len(self._pre)

    # ---- policies ----

    def _react(self, frame: Frame) -> None:
        loop = asyncio.get_running_loop()
        policies = self.policies
        if frame.opcode == OP_PING and policies.pong_delay_ms is not None:
            pong = FrameSpec(opcode=OP_PONG, payload=frame.payload)
            loop.call_later(policies.pong_delay_ms / 1000, self.send_frames, [pong], "frame")
        elif frame.opcode in DATA_OPCODES and policies.echo_data:
            self.send_frames([FrameSpec(opcode=frame.opcode, payload=frame.payload,
                                        fin=frame.fin)], "frame")
        elif frame.opcode == OP_CLOSE and not self._client_close_seen:
            self._client_close_seen = True
            loop.call_later(policies.close_delay_ms / 1000, self._answer_close, frame.payload)

    def _answer_close(self, payload: bytes) -> None:
        policies = self.policies
        if not self.server_closed_ws or policies.reply_when_server_closed:
            reply = {"echo": payload, "empty": b"", "none": None}.get(
                policies.close_reply, None)
            if policies.close_reply not in ("echo", "empty", "none"):
                reply = bytes.fromhex(policies.close_reply)
            if reply is not None:
                self.send_frames([FrameSpec(opcode=OP_CLOSE, payload=reply)], "frame")
        self.drop(policies.close_then)

    # ---- actions ----

    def write(self, data: bytes, kind: str, desc: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        self.server.record.server_sent.append({
            "t": self.server.ms(time.monotonic()), "conn": self.index, "kind": kind,
            "desc": desc, "length": len(data), "hex": data[:HEX_SHOWN].hex()})

    def send_frames(self, frames: Sequence[FrameSpec], kind: str) -> None:
        for spec in frames:
            if spec.opcode == OP_CLOSE:
                self.server_closed_ws = True
        desc = frames[0].describe() if len(frames) == 1 else \
            " + ".join(f.describe() for f in frames)
        self.write(b"".join(f.encode() for f in frames), kind, desc)

    def drop(self, how: str) -> None:
        """close_tcp/close: FIN after what is buffered; fin: shutdown(SHUT_WR), keep reading;
        rst: SO_LINGER 0 and close; hold: nothing."""
        if how in ("close_tcp", "close"):
            self.close("server_close")
        elif how == "fin":
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write_eof()
                self.server.note_tcp(self, "server_fin")
        elif how == "rst":
            self.reset()

    def close(self, what: str, cause: str | None = None) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.server.note_tcp(self, what, cause)
        self.transport.close()

    def reset(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.server.note_tcp(self, "server_rst")
        transport.abort()

    async def wait_until(self, check: Callable[[], bool], timeout_ms: float) -> bool:
        deadline = time.monotonic() + timeout_ms / 1000
        while not check():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                return check()
        return True

    # ---- the script ----

    async def _run_script(self) -> None:
        accepted = time.monotonic()
        try:
            for step in self.server.script:
                if not step.runs_on(self.index):
                    continue
                if step.at_ms is not None:
                    await asyncio.sleep(max(0.0, accepted + step.at_ms / 1000 - time.monotonic()))
                if step.after_ms:
                    await asyncio.sleep(step.after_ms / 1000)
                await self._run_step(step)
        except asyncio.CancelledError:
            pass

    async def _run_step(self, step: Step) -> None:
        p = step.params
        kind = step.kind
        if kind == "read_request":
            await self.wait_until(lambda: self.head is not None or self.eof or self.closed,
                                  WAIT_FOR_TIMEOUT_MS)
        elif kind == "handshake":
            await self._handshake(step)
        elif kind in ("send_frame", "send_frames"):
            self.send_frames(step.frames, "frame" if kind == "send_frame" else "frames")
        elif kind == "send_raw":
            self.write(bytes.fromhex(p.get("hex", "")), "raw", p.get("desc", "raw bytes"))
        elif kind == "close":
            if "payload_hex" in p:
                payload = bytes.fromhex(p["payload_hex"])
            elif "code" in p:
                reason = bytes.fromhex(p["reason_hex"]) if "reason_hex" in p else \
                    str(p.get("reason", "")).encode()
                payload = struct.pack("!H", p["code"]) + reason
            else:
                payload = b""
            self.send_frames([FrameSpec(opcode=OP_CLOSE, payload=payload)], "frame")
        elif kind == "answer_pings":
            self.policies.pong_delay_ms = None if p.get("never") else float(p.get("delay_ms", 0))
        elif kind == "echo_data":
            self.policies.echo_data = bool(p.get("enabled", True))
        elif kind == "on_client_close":
            self.policies.close_reply = p.get("reply", "echo")
            self.policies.close_then = p.get("then", "close_tcp")
            self.policies.close_delay_ms = float(p.get("delay_ms", 0))
            self.policies.reply_when_server_closed = bool(p.get("reply_when_server_closed"))
        elif kind == "periodic":
            self._tasks.append(asyncio.get_running_loop().create_task(self._periodic(step)))
        elif kind == "wait":
            await asyncio.sleep(float(p.get("ms", 0)) / 1000)
        elif kind == "wait_for":
            await self._wait_for(p)
        elif kind == "hold":
            if "ms" in p:
                await asyncio.sleep(float(p["ms"]) / 1000)
        elif kind == "drop_tcp":
            self.drop(p.get("how", "close"))

    async def _handshake(self, step: Step) -> None:
        p = step.params
        if not await self.wait_until(lambda: self.head is not None or self.closed,
                                     WAIT_FOR_TIMEOUT_MS) or self.head is None:
            return
        if p.get("delay_ms"):
            await asyncio.sleep(float(p["delay_ms"]) / 1000)
        status = int(p.get("status", 101))
        reason = p.get("reason", "Switching Protocols" if status == 101 else "OK")
        accept = p.get("accept", "auto")
        value = {"auto": accept_for(self.key), "wrong": WRONG_ACCEPT}.get(accept, accept)
        headers = p.get("headers") or [["Upgrade", "websocket"], ["Connection", "Upgrade"],
                                       ["Sec-WebSocket-Accept", "{accept}"]]
        headers = list(headers) + list(p.get("extra_headers", []))
        lines = [f"HTTP/1.1 {status} {reason}"]
        for name, text in headers:
            if accept == "omit" and name.lower() == "sec-websocket-accept":
                continue
            lines.append(f"{name}: {str(text).replace('{accept}', value)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        extra = bytes.fromhex(p.get("extra_bytes_hex", "")) + \
            b"".join(f.encode() for f in step.frames)
        desc = f"HTTP {status}" + (f" + {len(extra)} extra bytes" if extra else "")
        self.write(head + extra, "handshake", desc)

    async def _periodic(self, step: Step) -> None:
        p = step.params
        every = float(p["every_ms"]) / 1000
        count = p.get("count")
        started = time.monotonic()
        ends = started + float(p["for_ms"]) / 1000 if "for_ms" in p else None
        i = 1
        while not self.closed:
            # the first frame one period after the step, then one per period
            await asyncio.sleep(max(0.0, started + i * every - time.monotonic()))
            if (count is not None and i > count) or (ends is not None
                                                     and time.monotonic() >= ends):
                return
            self.send_frames([step.frames[0].with_index(i)], "frame")
            i += 1

    async def _wait_for(self, p: dict) -> None:
        what, nth = p["what"], int(p.get("nth", 1))
        timeout = float(p.get("timeout_ms", WAIT_FOR_TIMEOUT_MS))
        if what == "client_frame":
            opcode = p.get("opcode")
            await self.wait_until(lambda: sum(opcode is None or f.opcode == opcode
                                              for f in self.frames) >= nth, timeout)
        elif what == "client_eof":
            await self.wait_until(lambda: self.eof or self.closed, timeout)
        else:
            name = p.get("event")
            await self.wait_until(lambda: self.events_since_accept.get(name, 0) >= nth, timeout)
        if p.get("delay_ms"):
            await asyncio.sleep(float(p["delay_ms"]) / 1000)


class ScriptServer:
    """Serves one trace's script on 127.0.0.1 (or nothing, `listen=False`: the port then refuses
    connections). `origin` is the time.monotonic() that times are counted from."""

    def __init__(self, script: Sequence[Step], *, listen: bool = True,
                 host: str = "127.0.0.1") -> None:
        self.script = tuple(script)
        self.listen = listen
        self.host = host
        self.port = 0
        self.origin = time.monotonic()
        self.record = ServerRecord()
        self._conns: list[_Conn] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._stopped: asyncio.Event | None = None

    def ms(self, t: float) -> float:
        return round((t - self.origin) * 1000, 1)

    def note_tcp(self, conn: _Conn, what: str, cause: str | None = None) -> None:
        entry: dict[str, Any] = {"t": self.ms(time.monotonic()), "conn": conn.index,
                                 "what": what}
        if cause:
            entry["cause"] = cause
        if what != "accept" and conn.unparsed():
            entry["unparsed_bytes"] = conn.unparsed()
        self.record.tcp.append(entry)

    def note_event(self, name: str) -> None:
        """A device event (CONNECTED, DATA, ...) the driver saw: counted per connection for
        wait_for event steps. Thread-safe."""
        def count() -> None:
            for conn in self._conns:
                conn.events_since_accept[name] = conn.events_since_accept.get(name, 0) + 1
                conn._changed.set()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(count)

    # ---- lifecycle ----

    def __enter__(self) -> "ScriptServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, args=(started,), name="script-server",
                                        daemon=True)
        self._thread.start()
        started.result(START_TIMEOUT_S)

    def _main(self, started: concurrent.futures.Future[None]) -> None:
        asyncio.run(self._serve(started))

    async def _serve(self, started: concurrent.futures.Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        try:
            if self.listen:
                self._listener = await self._loop.create_server(self._accept, self.host, 0)
                self.port = self._listener.sockets[0].getsockname()[1]
            else:
                self.port = _refusing_port(self.host)
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        await self._stopped.wait()
        if self._listener is not None:
            self._listener.close()
        for conn in self._conns:
            if conn.transport is not None:
                conn.transport.abort()
        await asyncio.sleep(0)

    def _accept(self) -> _Conn:
        conn = _Conn(self, len(self._conns))
        self._conns.append(conn)
        return conn

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and self._thread is not None \
                and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(STOP_TIMEOUT_S)


def _refusing_port(host: str) -> int:
    """A port nothing listens on: bound for a moment to get a free number, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
