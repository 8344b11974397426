"""Unit tests of the reference model (sim/): the AT port to the byte, and the WebSocket wire as a
raw server sees it. The model runs in a thread (sim.SimThread) with shortened long waits; the
server is a tiny asyncio server built on wire.frames so the test sees every frame as sent."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import spec
from sim import DEFAULT_TIMINGS, SimThread
from sim.params import ParamError, Params, split_fields
from wire.frames import (OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, Frame,
                         FrameParser, close_payload, encode_frame)
from wire.handshake import accept_for

ROOT = Path(__file__).resolve().parents[2]
# Long waits of the model, shortened so the whole file runs in seconds.
FAST = dataclasses.replace(DEFAULT_TIMINGS, reconnect_wait_s=0.3, closed_state_linger_s=0.3,
                           client_close_wait_s=1.0)
WAIT_S = 3.0  # bound of any single expectation in these tests

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
# AT+WSCFG's keepalive pair at its defaults, for tests of the fields after it.
DEFAULT_INTERVALS = "{},{}".format(*(spec.load().default("AT+WSCFG", name)
                                    for name in ("ping_intv_sec", "ping_timeout_sec")))


# ---- the host side of the AT port --------------------------------------------------------

class AtPort:
    """Raw socket to the model's AT port; a thread collects everything it prints."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("socket://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=WAIT_S)
        self.sock.settimeout(None)  # the reader thread blocks; waits are bounded in expect()
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.closed = False
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.closed = True
                    self.cond.notify_all()
                    return
                self.buf += data
                self.cond.notify_all()

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def expect(self, token: bytes, timeout: float = WAIT_S) -> bytes:
        """Wait until `token` was printed; return and consume everything up to and including it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while (i := self.buf.find(token)) < 0:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise AssertionError(f"expected {token!r}, got {bytes(self.buf)!r}")
                self.cond.wait(left)
            out = bytes(self.buf[:i + len(token)])
            del self.buf[:i + len(token)]
            return out

    def expect_re(self, pattern: bytes, timeout: float = WAIT_S) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.DOTALL)
        with self.cond:
            while (m := rx.search(bytes(self.buf))) is None:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise AssertionError(f"expected /{pattern!r}/, got {bytes(self.buf)!r}")
                self.cond.wait(left)
            del self.buf[:m.end()]
            return m  # matched against a copy: m.string is what was consumed and more

    def quiet_for(self, seconds: float) -> bytes:
        """Everything printed within `seconds` (consumed)."""
        time.sleep(seconds)
        with self.cond:
            out = bytes(self.buf)
            self.buf.clear()
            return out

    def cmd(self, line: str | bytes, timeout: float = WAIT_S) -> bytes:
        """Send a command and return what came back up to its final OK/ERROR (echo included)."""
        raw = line.encode() if isinstance(line, str) else line
        self.write(raw + b"\r\n")
        m = self.expect_re(rb"\r\n(OK|ERROR)\r\n", timeout)
        return m.string[:m.end()]

    def close(self) -> None:
        self.sock.close()


def final(resp: bytes) -> bytes:
    return resp[resp.rstrip(b"\r\n").rfind(b"\r\n"):]


# ---- a raw WebSocket server that records the wire ----------------------------------------

class ServerConn:
    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter) -> None:
        self.loop = loop
        self.writer = writer
        self.request = b""
        self.frames: queue.Queue[Frame] = queue.Queue()
        self.eof = threading.Event()
        self.peercert = writer.get_extra_info("peercert")   # over TLS: the client's certificate

    def send(self, data: bytes) -> None:
        self.loop.call_soon_threadsafe(self.writer.write, data)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.writer.close)

    def next_frame(self, timeout: float = WAIT_S, skip: tuple[int, ...] = (OP_PING,)) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.frames.get(timeout=max(0.01, deadline - time.monotonic()))
            if frame.opcode not in skip:
                return frame

    def request_lines(self) -> list[str]:
        return self.request.decode().split("\r\n")[:-2]


class WsServer:
    """Accepts connections in a background loop. `respond(key)` builds the handshake answer;
    `auto_pong` answers the device's pings; with `ssl_context` it serves wss:// (a TLS handshake
    that fails never reaches `accept`)."""

    def __init__(self, respond: Callable[[str], bytes] | None = None, auto_pong: bool = True,
                 ssl_context=None) -> None:
        self.ssl_context = ssl_context
        self.respond = respond or (lambda key: (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_for(key)}\r\n\r\n").encode())
        self.auto_pong = auto_pong
        self.conns: queue.Queue[ServerConn] = queue.Queue()
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._started.wait(WAIT_S)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl_context))
        self.port = self.server.sockets[0].getsockname()[1]
        self._started.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = ServerConn(self.loop, writer)
        try:
            conn.request = await reader.readuntil(b"\r\n\r\n")
            key = re.search(rb"Sec-WebSocket-Key: (\S+)", conn.request).group(1).decode()
            self.conns.put(conn)
            writer.write(self.respond(key))
            parser = FrameParser()
            while data := await reader.read(65536):
                for frame in parser.feed(data):
                    if frame.opcode == OP_PING and self.auto_pong:
                        writer.write(encode_frame(OP_PONG, frame.payload))
                    conn.frames.put(frame)
        except (ConnectionError, asyncio.IncompleteReadError, OSError, asyncio.CancelledError):
            pass
        finally:
            conn.eof.set()
            writer.close()

    def uri(self, path: str = "/") -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def accept(self, timeout: float = WAIT_S) -> ServerConn:
        return self.conns.get(timeout=timeout)

    async def _shutdown(self) -> None:
        self.server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(WAIT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT_S)
        self.loop.close()


# ---- fixtures ----------------------------------------------------------------------------

def start_model(*defects: str, profile: str = "seed", pki=None) -> SimThread:
    return SimThread(profile, defects, timings=FAST, pki=pki).start()


@contextlib.contextmanager
def model_at(*defects: str, profile: str = "seed", pki=None):
    """A model of `profile` with these defects and a raw AT port on it, echo off."""
    with start_model(*defects, profile=profile, pki=pki) as m:
        at = AtPort(m.url)
        try:
            at.cmd("ATE0")
            yield at
        finally:
            at.close()


@contextlib.contextmanager
def running_ws_server(**options):
    srv = WsServer(**options)
    try:
        yield srv
    finally:
        srv.stop()


# The fixtures on these (a model, its AT port, a raw server) are in tests/unit/conftest.py.


@contextlib.contextmanager
def cli_model(*argv: str):
    """`python -m sim ARGV` at DEBUG; yields (its AT port, echo off, and a list that gets what
    it printed on stdout and stderr once it stopped)."""
    proc = subprocess.Popen([sys.executable, "-m", "sim", "--log-level", "DEBUG", *argv],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    printed: list[bytes] = []
    try:
        proc.stdout.readline()                       # UART0 port
        m = re.fullmatch(rb"AT port: socket://(\S+)\n", proc.stdout.readline())
        assert m, "no AT port line"
        at = AtPort(m.group(1).decode())
        try:
            at.cmd("ATE0")
            yield at, printed
        finally:
            at.close()
        proc.send_signal(signal.SIGTERM)
        printed += proc.communicate(timeout=3)
    finally:
        proc.kill()
        proc.wait(3)


def open_link(at: AtPort, server: WsServer, link_id: int = 0, extra: str = "") -> ServerConn:
    resp = at.cmd(f'AT+WSOPEN={link_id},"{server.uri()}"{extra}')
    assert resp == f"+WS_CONNECTED:{link_id}\r\n".encode() + OK, resp
    return server.accept()


def read_ws_data(at: AtPort, link_id: int, total: int) -> list[bytes]:
    """Collect +WS_DATA chunks (length-delimited) until `total` bytes arrived."""
    chunks: list[bytes] = []
    while sum(map(len, chunks)) < total:
        m = at.expect_re(rb"\+WS_DATA:%d,(\d+)," % link_id)
        n = int(m.group(1))
        body = at.expect(b"", 0) if n == 0 else b""
        deadline = time.monotonic() + WAIT_S
        with at.cond:
            while len(at.buf) < n + 2:
                assert time.monotonic() < deadline, "short +WS_DATA"
                at.cond.wait(0.05)
            body = bytes(at.buf[:n])
            assert at.buf[n:n + 2] == b"\r\n"
            del at.buf[:n + 2]
        chunks.append(body)
    return chunks


# ---- parameter syntax (pure) -------------------------------------------------------------

@pytest.mark.timeout(5)
def test_params_quoting_and_escapes():
    fields = split_fields(r'0,"ws://h/a\,b\"c\\d",,5')
    assert [f.text for f in fields] == ["0", 'ws://h/a,b"c\\d', "", "5"]
    assert fields[1].quoted and fields[2].empty
    with pytest.raises(ParamError):
        split_fields('0,"ws://h/a,b"')  # a bare comma splits even inside quotes
    for bad in ("0x9", "+1", " 1", "1 ", "", "a"):
        with pytest.raises(ParamError):
            Params(f"0,{bad}", min_count=2, max_count=2).int(1, 0, 15)
    assert Params("0,,", min_count=1, max_count=3).int(1, 0, 15, default=1) == 1


# ---- AT port basics ----------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_echo_then_ate0_and_exact_finals(sim_model):
    at = AtPort(sim_model.url)
    assert at.cmd("AT") == b"AT\r\n" + OK  # echo on after boot, then OK
    assert at.cmd("ATE0") == b"ATE0\r\n" + OK
    assert at.cmd("AT") == OK
    assert at.cmd("AT+NOPE") == ERROR
    assert at.cmd("at") == ERROR
    assert at.cmd("AT+WSOPEN=?") == ERROR
    assert at.cmd("AT+" + "A" * 300) == ERROR  # longer than 256 bytes
    at.close()


@pytest.mark.timeout(10)
def test_state_persists_across_port_reconnect(sim_model):
    at = AtPort(sim_model.url)
    at.cmd("ATE0")
    at.close()
    at2 = AtPort(sim_model.url)
    assert at2.cmd("AT") == OK  # echo stays off: device state outlives the connection
    at2.close()


@pytest.mark.timeout(10)
def test_basic_info_commands(sim_at):
    gmr = sim_at.cmd("AT+GMR")
    assert re.match(rb"AT version:.*reference model.*profile seed.*\r\nSDK version:.*\r\n"
                    rb"compile time.*\r\nBin version:.*\r\n\r\nOK\r\n$", gmr), gmr
    cmd = sim_at.cmd("AT+CMD?")
    assert b'+CMD:0,"AT",0,0,0,1\r\n' in cmd and b'"AT+WSOPEN",0,1,1,0' in cmd
    assert sim_at.cmd("AT+CWMODE?") == b"+CWMODE:1\r\n" + OK
    assert sim_at.cmd("AT+CWMODE=4") == ERROR
    assert sim_at.cmd("AT+CWJAP?") == b"No AP\r\n" + OK
    assert sim_at.cmd('AT+CWJAP="lab","secret"') == b"WIFI CONNECTED\r\nWIFI GOT IP\r\n" + OK
    assert sim_at.cmd("AT+CWJAP?").startswith(b'+CWJAP:"lab","')
    assert b'+CIPSTA:ip:"127.0.0.1"\r\n' in sim_at.cmd("AT+CIPSTA?")
    assert re.fullmatch(rb"\+SYSRAM:\d+,\d+\r\n\r\nOK\r\n", sim_at.cmd("AT+SYSRAM?"))


@pytest.mark.timeout(10)
def test_rst_prints_ready_and_resets(sim_at, raw_ws):
    conn = open_link(sim_at, raw_ws)
    sim_at.cmd("AT+WSCFG=1,5,5,16")
    sim_at.write(b"AT+RST\r\n")
    assert sim_at.expect(b"\r\nready\r\n", timeout=2) == OK + b"\r\nready\r\n"
    assert conn.eof.wait(1) and conn.frames.empty()  # dropped without a close frame
    assert sim_at.cmd("AT") == b"AT\r\n" + OK  # echo back on
    assert sim_at.cmd("ATE0") .endswith(OK)
    assert sim_at.cmd("AT+WSOPEN?") == OK  # links gone


# ---- WSCFG / WSOPEN / WSSEND / WSCLOSE parameter ranges ---------------------------------

@pytest.mark.timeout(10)
@pytest.mark.parametrize("args, ok", [
    ("0,1,1", True), ("2,7200,7200,8192", True), ("0,10,120,1", True), ("0,10,120,", True),
    ("3,10,120", False), ("-1,10,120", False), ("0,0,120", False), ("0,7201,120", False),
    ("0,10,0", False), ("0,10,7201", False), ("0,10,120,0", False), ("0,10,120,8193", False),
    ("0,10", False), ("0,,120", False), ("0,x,120", False), ("0,10,120,1024,1", False),
    ('0,"10",120', False),
])
def test_wscfg_ranges(sim_at, args, ok):
    assert sim_at.cmd(f"AT+WSCFG={args}") == (OK if ok else ERROR)


@pytest.mark.timeout(10)
def test_wsopen_parameter_checks(sim_at, raw_ws):
    uri = raw_ws.uri()
    assert sim_at.cmd(f'AT+WSOPEN=3,"{uri}"') == ERROR
    assert sim_at.cmd(f'AT+WSOPEN=0,"{uri}",,180001') == ERROR
    assert sim_at.cmd(f'AT+WSOPEN=0,"{uri}",5000') == ERROR  # positional: field 3 is a string
    assert sim_at.cmd('AT+WSOPEN=0,"http://x/"') == ERROR
    assert sim_at.cmd("AT+WSOPEN=0") == ERROR
    assert sim_at.cmd(f'AT+WSOPEN=0,"{uri}",,0') == b"+WS_CONNECTED:0\r\n" + OK  # seed: 0 allowed
    assert sim_at.cmd(f'AT+WSOPEN=0,"{uri}"') == ERROR  # link exists
    assert sim_at.cmd(f'AT+WSOPEN=1,"{uri}",,') == b"+WS_CONNECTED:1\r\n" + OK  # empty -> default


@pytest.mark.timeout(10)
def test_wssend_and_wsclose_parameter_checks(sim_at, raw_ws):
    assert sim_at.cmd("AT+WSSEND=0,5") == ERROR  # no link: ERROR before any prompt
    open_link(sim_at, raw_ws)
    for args in ("3,5", "0,0", "0,8193", "0,5,16", "0,5,-1", "0,5,0x1", "0,5,1,60001",
                 "0,126,9", "0,126,8", "0,126,10"):
        assert sim_at.cmd(f"AT+WSSEND={args}") == ERROR, args
    assert sim_at.cmd("AT+WSCLOSE=3") == ERROR
    assert sim_at.cmd("AT+WSCLOSE") == ERROR
    assert sim_at.cmd("AT+WSCLOSE=2") == OK  # no link there: OK, nothing changes
    assert b"+WSOPEN:0,2," in sim_at.cmd("AT+WSOPEN?")


# ---- opening -----------------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_wsopen_request_bytes_and_header_order(sim_at, raw_ws):
    uri = f"ws://127.0.0.1:{raw_ws.port}/a/b%2Fc?x=1&y=a\\,b"
    resp = sim_at.cmd(f'AT+WSOPEN=0,"{uri}","chat\\, superchat"')
    assert resp == b"+WS_CONNECTED:0\r\n" + OK
    lines = raw_ws.accept().request_lines()
    assert lines[0] == "GET /a/b%2Fc?x=1&y=a,b HTTP/1.1"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "Connection", "Host", "User-Agent", "Upgrade", "Sec-WebSocket-Version",
        "Sec-WebSocket-Key", "Sec-WebSocket-Protocol"]
    assert lines[2] == f"Host: 127.0.0.1:{raw_ws.port}"
    assert lines[3] == "User-Agent: ESP32 Websocket Client"
    assert lines[7] == "Sec-WebSocket-Protocol: chat, superchat"
    query = sim_at.cmd("AT+WSOPEN?")
    assert query == f'+WSOPEN:0,2,"ws://127.0.0.1:{raw_ws.port}/a/b%2Fc?x=1&y=a,b"\r\n'.encode() + OK


@pytest.mark.timeout(10)
def test_wsopen_failures_print_disconnected_then_error(sim_at):
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    assert sim_at.cmd(f'AT+WSOPEN=0,"ws://127.0.0.1:{port}/"') == b"+WS_DISCONNECTED:0\r\n" + ERROR
    bad = WsServer(respond=lambda key: b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n")
    try:
        assert sim_at.cmd(f'AT+WSOPEN=1,"{bad.uri()}"') == b"+WS_DISCONNECTED:1\r\n" + ERROR
    finally:
        bad.stop()
    assert sim_at.cmd("AT+WSOPEN?") == OK


@pytest.mark.timeout(10)
def test_wsopen_timeout_and_busy(sim_at):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts TCP, never answers the handshake
    try:
        t0 = time.monotonic()
        sim_at.write(f'AT+WSOPEN=0,"ws://127.0.0.1:{silent.getsockname()[1]}/",,400\r\n'.encode())
        time.sleep(0.1)
        sim_at.write(b"AT\r\n")
        sim_at.expect(b"\r\nbusy p...\r\n")
        sim_at.expect(b"+WS_DISCONNECTED:0\r\n" + ERROR)
        assert 0.35 < time.monotonic() - t0 < 1.5
        assert sim_at.cmd("AT") == OK  # the busy line was dropped, not queued
    finally:
        silent.close()


@pytest.mark.timeout(10)
def test_strict_handshake_refuses_200_and_kd7_accepts_it():
    respond = lambda key: (f"HTTP/1.1 200 OK\r\nSec-WebSocket-Accept: {accept_for(key)}\r\n\r\n"
                           ).encode()
    with running_ws_server(respond=respond) as srv:
        for defects, expected in (((), b"+WS_DISCONNECTED:0\r\n" + ERROR),
                                  (("KD-7",), b"+WS_CONNECTED:0\r\n" + OK)):
            with model_at(*defects) as at:
                assert at.cmd(f'AT+WSOPEN=0,"{srv.uri()}"') == expected


# ---- sending -----------------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_wssend_prompt_frame_and_send_ok(sim_at, raw_ws):
    conn = open_link(sim_at, raw_ws)
    sim_at.write(b"AT+WSSEND=0,7,2\r\n")
    assert sim_at.expect(b">") == b"\r\nOK\r\n\r\n>"
    payload = b"\x00\r\nAT\xff\n"
    sim_at.write(payload)
    assert sim_at.expect(b"\r\nSEND OK\r\n") == b"\r\nSEND OK\r\n"
    frame = conn.next_frame()
    assert (frame.opcode, frame.fin, frame.masked, frame.payload) == (OP_BINARY, True, True, payload)
    # default opcode 1; every opcode of [0, 0xF] is sent as given (reserved ones too)
    for opcode, data in ((None, b"hi"), (3, b"r3"), (0xB, b"rb"), (9, b"p" * 125)):
        extra = "" if opcode is None else f",{opcode}"
        sim_at.write(f"AT+WSSEND=0,{len(data)}{extra}\r\n".encode())
        sim_at.expect(b">")
        sim_at.write(data)
        sim_at.expect(b"SEND OK\r\n")
        frame = conn.next_frame(skip=())
        assert (frame.opcode, frame.payload) == (1 if opcode is None else opcode, data)


@pytest.mark.timeout(10)
def test_wssend_fragments_by_buffer_size_with_fresh_masks(sim_at, raw_ws):
    assert sim_at.cmd("AT+WSCFG=0,100,100,16") == OK
    conn = open_link(sim_at, raw_ws)
    data = bytes(range(40))
    sim_at.write(b"AT+WSSEND=0,40,2\r\n")
    sim_at.expect(b">")
    sim_at.write(data + b"AT\r\n")  # bytes past <length> are not executed
    sim_at.expect(b"SEND OK\r\n")
    frames = [conn.next_frame() for _ in range(3)]
    assert [(f.opcode, f.fin, len(f.payload)) for f in frames] == [
        (OP_BINARY, False, 16), (OP_CONTINUATION, False, 16), (OP_CONTINUATION, True, 8)]
    assert b"".join(f.payload for f in frames) == data
    assert all(f.masked for f in frames) and len({f.mask_key for f in frames}) == 3
    assert sim_at.cmd("AT") == OK


@pytest.mark.timeout(10)
def test_kd10_sends_oversized_control_frame():
    with running_ws_server() as srv, model_at("KD-10") as at:
        conn = open_link(at, srv)
        at.write(b"AT+WSSEND=0,200,9\r\n")
        at.expect(b">")
        at.write(b"x" * 200)
        at.expect(b"SEND OK\r\n")
        frame = conn.next_frame(skip=())
        assert (frame.opcode, len(frame.payload)) == (OP_PING, 200)


# ---- receiving ---------------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_ws_data_chunked_by_buffer_size(sim_at, raw_ws):
    conn = open_link(sim_at, raw_ws)
    message = bytes(i % 251 for i in range(3000))
    conn.send(encode_frame(OP_BINARY, message))
    chunks = read_ws_data(sim_at, 0, 3000)
    assert [len(c) for c in chunks] == [1024, 1024, 952]
    assert b"".join(chunks) == message
    # fragments arrive fragment by fragment; pings and pongs print nothing
    conn.send(encode_frame(OP_TEXT, b"He", fin=False) + encode_frame(OP_PING, b"zz")
              + encode_frame(OP_PONG, b"q")
              + encode_frame(OP_CONTINUATION, b"llo") + encode_frame(OP_TEXT, b""))
    assert read_ws_data(sim_at, 0, 5) == [b"He", b"llo"]
    sim_at.expect(b"+WS_DATA:0,0,\r\n")  # an empty message is reported with length 0
    pong = conn.next_frame()
    assert (pong.opcode, pong.payload, pong.masked) == (OP_PONG, b"zz", True)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("bad,status", [
    (encode_frame(0x3, b"r"), 1002),                      # a reserved opcode (RFC 6455 5.2)
    (encode_frame(OP_TEXT, b"\xc3\x28"), 1007),           # text that is not UTF-8 (8.1)
    (encode_frame(OP_CONTINUATION, b"orphan"), 1002),     # nothing to continue (5.4)
    (encode_frame(OP_PING, b"x" * 126), 1002),            # an oversized control frame (5.5)
], ids=["reserved", "utf8", "orphan", "ping-126"])
def test_frames_rfc6455_forbids_fail_the_connection(sim_at, raw_ws, bad, status):
    conn = open_link(sim_at, raw_ws)
    conn.send(bad + encode_frame(OP_TEXT, b"after"))
    close = conn.next_frame()
    assert close.opcode == OP_CLOSE and close.close_code() == status, close
    assert conn.eof.wait(WAIT_S), "the device kept TCP open after failing the connection"
    # nothing of the frame, nor of "after"
    assert sim_at.expect(b"+WS_DISCONNECTED:0\r\n") == b"+WS_DISCONNECTED:0\r\n"
    assert sim_at.cmd("AT+WSOPEN?") == b'+WSOPEN:0,3,"%s"\r\n' % raw_ws.uri().encode() + OK


@pytest.mark.timeout(10)
def test_shipping_library_takes_what_rfc6455_forbids(raw_ws):
    """KD-14 and KD-18: the library passes them on (traces server_opcode_3, server_text_invalid_
    utf8); the AT layer prints the text, not the reserved opcode."""
    with model_at("KD-14", "KD-18") as at:
        conn = open_link(at, raw_ws)
        conn.send(encode_frame(0x3, b"r") + encode_frame(OP_TEXT, b"\xc3\x28"))
        assert read_ws_data(at, 0, 2) == [b"\xc3\x28"]
        assert not conn.eof.is_set()


@pytest.mark.timeout(10)
def test_ping_cadence_and_pong_timeout():
    with running_ws_server(auto_pong=False) as srv, model_at() as at:
        assert at.cmd("AT+WSCFG=0,1,2") == OK
        t0 = time.monotonic()
        conn = open_link(at, srv)
        pings = [conn.next_frame(skip=()) for _ in range(2)]
        times = time.monotonic() - t0
        assert all((p.opcode, p.payload, p.fin, p.masked) == (OP_PING, b"", True, True)
                   for p in pings)
        assert 1.5 < times < 2.8
        # first unanswered ping at ~1 s, pong timeout 2 s -> abort at ~3 s
        at.expect(b"+WS_DISCONNECTED:0\r\n", timeout=3)
        assert 2.5 < time.monotonic() - t0 < 4.0
        assert conn.eof.wait(1)
        # A pong timeout aborts: no close frame of any kind (the device's frames are masked,
        # so compare opcodes, not whole frames).
        assert [f.opcode for f in list(conn.frames.queue) if f.opcode == OP_CLOSE] == []
        assert b"+WSOPEN:0,3," in at.cmd("AT+WSOPEN?")
        # reconnects after the (shortened) wait
        at.expect(b"+WS_CONNECTED:0\r\n", timeout=2)
        assert srv.accept().request.startswith(b"GET / HTTP/1.1")


@pytest.mark.timeout(10)
def test_pongs_keep_link_up(sim_at, raw_ws):
    assert sim_at.cmd("AT+WSCFG=0,1,1") == OK
    conn = open_link(sim_at, raw_ws)
    assert sim_at.quiet_for(2.5) == b""  # raw_ws answers pings: no URC
    assert conn.frames.qsize() >= 2


@pytest.mark.timeout(10)
def test_kd4_no_pings_while_server_talks():
    for defects, expect_pings in (((), True), (("KD-4",), False)):
        with running_ws_server() as srv, model_at(*defects) as at:
            at.cmd("AT+WSCFG=0,1,10")
            conn = open_link(at, srv)
            for _ in range(8):
                conn.send(encode_frame(OP_TEXT, b"x"))
                time.sleep(0.25)
            pings = [f for f in list(conn.frames.queue) if f.opcode == OP_PING]
            assert bool(pings) is expect_pings, defects


# ---- closing -----------------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_server_close_frame(sim_at, raw_ws):
    assert sim_at.cmd("AT+WSCFG=0,100,100,16") == OK
    conn = open_link(sim_at, raw_ws)
    conn.send(encode_frame(OP_CLOSE, close_payload(1000, "bye")))
    sim_at.expect(b"+WS_CLOSED:0\r\n")
    reply = conn.next_frame()
    assert (reply.opcode, reply.payload, reply.masked) == (OP_CLOSE, b"", True)
    state = sim_at.cmd("AT+WSOPEN?")
    assert state in (OK, b'+WSOPEN:0,4,"%s"\r\n' % raw_ws.uri().encode() + OK,
                     b'+WSOPEN:0,0,"%s"\r\n' % raw_ws.uri().encode() + OK)
    assert conn.eof.wait(2)  # raw_ws kept TCP open: the device dropped it within ~1 s
    time.sleep(FAST.closed_state_linger_s + 0.1)
    assert sim_at.cmd("AT+WSOPEN?") == OK
    assert b"+WS_DISCONNECTED" not in sim_at.quiet_for(0.5)
    # WSCFG was released with the link: the next open uses buffer_size 1024
    conn = open_link(sim_at, raw_ws)
    conn.send(encode_frame(OP_TEXT, b"y" * 100))
    assert read_ws_data(sim_at, 0, 100) == [b"y" * 100]


@pytest.mark.timeout(10)
def test_kd3_hides_closing_states():
    with running_ws_server() as srv, model_at("KD-3") as at:
        conn = open_link(at, srv)
        conn.send(encode_frame(OP_CLOSE, close_payload(1000)))
        at.expect(b"+WS_CLOSED:0\r\n")
        assert at.cmd("AT+WSOPEN?") == OK


@pytest.mark.timeout(10)
def test_wsclose_drops_tcp_without_close_frame(sim_at, raw_ws):
    conn = open_link(sim_at, raw_ws)
    assert sim_at.cmd("AT+WSCLOSE=0") == OK
    assert conn.eof.wait(1)
    assert [f for f in conn.frames.queue if f.opcode == OP_CLOSE] == []
    assert sim_at.cmd("AT+WSOPEN?") == OK
    assert sim_at.quiet_for(0.3) == b""  # no URC
    open_link(sim_at, raw_ws)  # the id is reusable sim_at once


@pytest.mark.timeout(10)
def test_tcp_reset_aborts_and_reconnects(sim_at, raw_ws):
    conn = open_link(sim_at, raw_ws)
    conn.close()
    sim_at.expect(b"+WS_DISCONNECTED:0\r\n")
    assert b"+WSOPEN:0,3," in sim_at.cmd("AT+WSOPEN?")
    sim_at.expect(b"+WS_CONNECTED:0\r\n", timeout=2)
    raw_ws.accept()


@pytest.mark.timeout(10)
def test_host_close_frame_then_server_reply(sim_at, raw_ws):
    conn = open_link(sim_at, raw_ws)
    sim_at.write(b"AT+WSSEND=0,2,8\r\n")
    sim_at.expect(b">")
    sim_at.write(b"\x03\xe8")
    sim_at.expect(b"SEND OK\r\n")
    assert conn.next_frame().opcode == OP_CLOSE
    assert sim_at.cmd("AT+WSSEND=0,1") == ERROR  # no frames after our close (RFC 6455 §5.5.1)
    conn.send(encode_frame(OP_CLOSE, close_payload(1000)))
    sim_at.expect(b"+WS_CLOSED:0\r\n")
    time.sleep(0.3)
    assert [f for f in conn.frames.queue if f.opcode == OP_CLOSE] == []  # no second close
