"""The WebSocket test server, driven by a hand-rolled raw-socket client so that what the recorder
reports can be checked against the exact bytes sent."""
from __future__ import annotations

import errno
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.pki import fresh_pki
from servers import Endpoint, NoLiveConnection, ServerWaitTimeout, WsTestServer
from wire.frames import (OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, Frame,
                         FrameParser, close_payload, encode_frame)
from wire.handshake import accept_for, new_key

pytestmark = pytest.mark.timeout(10)
KEY = b"\x01\x02\x03\x04"
ROOT = Path(__file__).resolve().parents[2]


class RawClient:
    """Just enough of a WebSocket client to put chosen bytes on the wire and read the answer."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock)
        self.key = new_key()
        self.buffer = b""
        self.parser = FrameParser()

    def request(self, target: str, extra: list[tuple[str, str]] = ()) -> bytes:
        headers = [("Host", "127.0.0.1"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                   ("Sec-WebSocket-Key", self.key), ("Sec-WebSocket-Version", "13"), *extra]
        head = f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        return head.encode()

    def handshake(self, target: str, extra: list[tuple[str, str]] = (), then: bytes = b"") -> bytes:
        """Send the upgrade request (and `then` in the same write); return the response head."""
        self.sock.sendall(self.request(target, extra) + then)
        return self.response_head()

    def response_head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before a response head: {self.buffer!r}")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n"

    def send(self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
             mask: bool = True, mask_key: bytes | None = KEY) -> bytes:
        data = encode_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, mask_key=mask_key)
        self.sock.sendall(data)
        return data

    def frames(self, count: int, timeout: float = 2.0) -> list[Frame]:
        frames = self.parser.feed(self.buffer)
        self.buffer = b""
        self.sock.settimeout(timeout)
        while len(frames) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {frames!r}")
            frames += self.parser.feed(chunk)
        return frames

    def nothing_within(self, seconds: float) -> bool:
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        raise AssertionError(f"expected silence, got {data!r}")

    def eof_within(self, seconds: float) -> bytes:
        """Read until the server closes TCP; return what came before."""
        self.sock.settimeout(seconds)
        seen, self.buffer = self.buffer, b""
        try:
            while chunk := self.sock.recv(65536):
                seen += chunk
        except ConnectionResetError:
            pass
        return seen

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def server() -> WsTestServer:
    with WsTestServer() as srv:
        yield srv


@pytest.fixture
def ep(server: WsTestServer, request: pytest.FixtureRequest) -> Endpoint:
    endpoint = server.endpoint(request.node.name)
    yield endpoint
    endpoint.close_endpoint()


@pytest.fixture
def client(server: WsTestServer) -> RawClient:
    c = RawClient(server.port)
    yield c
    c.close()


def upgraded(client: RawClient, ep: Endpoint, query: str = "", **kwargs) -> None:
    head = client.handshake(ep.path + query, **kwargs)
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert f"Sec-WebSocket-Accept: {accept_for(client.key)}".encode() in head


PATH_SHAPE = re.compile(r"/ep/([A-Za-z0-9_-]{16})/(\d+)-my-test-1")


def test_url_names_the_endpoint_behind_a_fresh_token(server: WsTestServer) -> None:
    ep = server.endpoint("my test[1]")
    shape = PATH_SHAPE.fullmatch(ep.path)
    assert shape, ep.path
    assert ep.url == f"ws://127.0.0.1:{server.port}{ep.path}"
    assert (ep.host, ep.port) == ("127.0.0.1", server.port)
    again = PATH_SHAPE.fullmatch(server.endpoint("my test[1]").path)
    assert again and again.group(1) != shape.group(1)   # the same name, another token
    assert server.endpoint(path="/exact/1").path == "/exact/1"


def test_uri_of_the_longest_name_fits_an_at_line(server: WsTestServer) -> None:
    # fixtures/ws_server.py cuts names to 60 characters; the AT+WSOPEN line must hold the URI,
    # its quotes, a subprotocol and a timeout within 256 bytes.
    ep = server.endpoint("n" * 60)
    uri = f"wss://127.0.0.1:65535{ep.path}"
    assert len(uri) <= 128, uri


def test_a_second_connection_is_refused_while_the_first_is_open(ep: Endpoint,
                                                                client: RawClient) -> None:
    upgraded(client, ep)
    device = ep.wait_connection(timeout=2)
    stranger = RawClient(ep.port)
    try:
        head = stranger.handshake(ep.path, then=encode_frame(OP_TEXT, b"injected", mask_key=KEY))
        assert head.startswith(b"HTTP/1.1 409 "), head
        body = stranger.eof_within(2)
        assert body == b"busy" and ep.path.encode() not in head + body
        address = "%s:%d" % stranger.sock.getsockname()[:2]
    finally:
        stranger.close()
    client.send(OP_TEXT, b"from the device")
    ep.wait_frame(lambda rf: rf.frame.payload == b"from the device", timeout=2)
    assert ep.connections == [device] and device.is_open
    assert [rf.frame.payload for rf in ep.frames] == [b"from the device"]
    (anomaly,) = ep.anomalies()
    device_address = "%s:%d" % client.sock.getsockname()[:2]
    assert f"from {address} " in anomaly and f"GET {ep.path} HTTP/1.1" in anomaly
    assert f"while the device's connection from {device_address} was open" in anomaly
    assert re.match(r"t=\d+\.\d{3} ", anomaly), anomaly
    assert anomaly in ep.describe() and "injected" not in ep.describe()


def test_the_device_reconnects_once_its_connection_closed(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    client.close()
    ep.wait_disconnect(timeout=2)
    again = RawClient(ep.port)
    try:
        upgraded(again, ep)
        again.send(OP_TEXT, b"back")
        ep.wait_frame(lambda rf: rf.frame.payload == b"back", timeout=2)
        assert len(ep.connections) == 2 and ep.connections[1].is_open
    finally:
        again.close()
    assert ep.anomalies() == []


def test_manual_server_takes_several_links_to_one_path() -> None:
    with WsTestServer(accept_any_path=True) as srv:
        links = [RawClient(srv.port) for _ in range(2)]
        try:
            for link in links:
                assert link.handshake("/").startswith(b"HTTP/1.1 101 ")
        finally:
            for link in links:
                link.close()


def test_handshake_recorded_as_sent(ep: Endpoint, client: RawClient) -> None:
    extra = [("X-Zeta", "1"), ("x-alpha", " spaced "), ("Sec-WebSocket-Protocol", "a, b")]
    request = client.request(f"{ep.path}?id=3&q=a%20b", extra)
    upgraded(client, ep, "?id=3&q=a%20b", extra=extra)
    conn = ep.wait_connection(timeout=2)
    hs = conn.handshake
    assert (hs.method, hs.path, hs.query) == ("GET", ep.path, "id=3&q=a%20b")
    assert hs.raw == request
    assert [k for k, _ in hs.headers] == ["Host", "Upgrade", "Connection", "Sec-WebSocket-Key",
                                          "Sec-WebSocket-Version", "X-Zeta", "x-alpha",
                                          "Sec-WebSocket-Protocol"]
    assert conn.header("X-ALPHA") == "spaced"
    assert conn.header("sec-websocket-protocol") == "a, b"
    assert conn.header("Origin") is None
    assert conn.upgraded


def test_query_empty_when_absent(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    assert ep.wait_connection(timeout=2).handshake.query == ""


def test_echo_text_and_binary(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    client.send(OP_TEXT, "héllo".encode())
    client.send(OP_BINARY, b"\x00\r\n\xff")
    assert client.frames(2) == [Frame(OP_TEXT, "héllo".encode()), Frame(OP_BINARY, b"\x00\r\n\xff")]


def test_echo_off_sends_nothing(ep: Endpoint, client: RawClient) -> None:
    ep.echo = False
    upgraded(client, ep)
    client.send(OP_TEXT, b"quiet")
    ep.wait_frame(lambda rf: rf.frame.payload == b"quiet", timeout=2)
    assert client.nothing_within(0.2)


def test_fragments_recorded_unjoined_and_echoed_joined(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    client.send(OP_TEXT, b"ab", fin=False)
    client.send(OP_CONTINUATION, b"cd", fin=False)
    client.send(OP_CONTINUATION, b"ef", fin=True)
    recorded = ep.wait_frames(lambda rf: True, 3, timeout=2)
    assert [(rf.frame.opcode, rf.frame.payload, rf.frame.fin) for rf in recorded] == [
        (OP_TEXT, b"ab", False), (OP_CONTINUATION, b"cd", False), (OP_CONTINUATION, b"ef", True)]
    assert client.frames(1) == [Frame(OP_TEXT, b"abcdef")]


def test_mask_bit_and_key_recorded(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    client.send(OP_BINARY, b"masked", mask_key=b"\xde\xad\xbe\xef")
    client.send(OP_BINARY, b"bare", mask=False)
    masked, bare = ep.wait_frames(lambda rf: True, 2, timeout=2)
    assert (masked.frame.masked, masked.frame.mask_key, masked.frame.payload) == (
        True, b"\xde\xad\xbe\xef", b"masked")
    assert (bare.frame.masked, bare.frame.mask_key, bare.frame.payload) == (False, None, b"bare")


def test_rsv_bits_and_reserved_opcode_recorded(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    client.sock.sendall(encode_frame(OP_TEXT, b"r", rsv=5, mask=True, mask_key=KEY)
                        + encode_frame(0xB, b"odd", mask=True, mask_key=KEY))
    rsv, odd = ep.wait_frames(lambda rf: True, 2, timeout=2)
    assert (rsv.frame.rsv, rsv.frame.payload) == (5, b"r")
    assert (odd.frame.opcode, odd.frame.payload) == (0xB, b"odd")
    # aiohttp, a strict server, answers a protocol error with close 1002 and drops TCP
    answer = client.frames(1)[0]
    assert (answer.opcode, answer.close_code()) == (OP_CLOSE, 1002)
    assert ep.wait_disconnect(timeout=2).close_initiator == "server"


def test_device_close_answered_and_later_frames_recorded(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    client.send(OP_CLOSE, close_payload(1001, "away"))
    reply = client.frames(1)[0]
    assert (reply.opcode, reply.payload) == (OP_CLOSE, close_payload(1001))
    client.send(OP_PING, b"still here")
    client.send(OP_TEXT, b"after")
    frames = ep.wait_frames(lambda rf: True, 3, timeout=2)
    assert [rf.frame.opcode for rf in frames] == [OP_CLOSE, OP_PING, OP_TEXT]
    assert frames[0].frame.close_code() == 1001 and frames[0].frame.close_reason() == b"away"
    assert client.nothing_within(0.2)  # no echo, no pong after the closing handshake
    assert ep.connections[-1].is_open  # default: TCP stays until the device drops it
    client.close()
    assert ep.wait_disconnect(timeout=2).close_initiator == "device"


def test_device_close_policy_drops_tcp(ep: Endpoint, client: RawClient) -> None:
    ep.on_device_close(reply=False, drop_tcp_after_ms=100)
    upgraded(client, ep)
    started = time.monotonic()
    client.send(OP_CLOSE, b"")
    assert client.eof_within(2) == b""  # no close reply, just FIN
    conn = ep.wait_disconnect(timeout=2)
    assert conn.close_initiator == "server" and conn.closed_at - started >= 0.09


def test_refused_handshake(ep: Endpoint, client: RawClient) -> None:
    ep.refuse_handshake(status=403, body=b"go away")
    head = client.handshake(ep.path)
    assert head.startswith(b"HTTP/1.1 403 ")
    assert client.eof_within(2) == b"go away"
    conn = ep.wait_connection(timeout=2)
    assert conn.refused_status == 403 and not conn.upgraded
    with pytest.raises(NoLiveConnection):
        ep.send_text("nobody there")


def test_stalled_handshake_then_hand_made_response(ep: Endpoint, client: RawClient) -> None:
    ep.stall_handshake()
    client.sock.sendall(client.request(ep.path))
    conn = ep.wait_connection(timeout=2)
    assert conn.handshake.path == ep.path
    assert client.nothing_within(0.5)
    # send_raw can answer it by hand, e.g. with a status other than 101 (KD-7)
    accept = accept_for(conn.header("Sec-WebSocket-Key"))
    ep.send_raw(f"HTTP/1.1 200 OK\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode())
    assert client.response_head().startswith(b"HTTP/1.1 200 OK")
    client.send(OP_TEXT, b"x")
    assert ep.wait_frame(lambda rf: rf.frame.payload == b"x", timeout=2).frame.opcode == OP_TEXT


def test_subprotocol_required_and_missing(ep: Endpoint, client: RawClient) -> None:
    ep.require_subprotocol("chat")
    head = client.handshake(ep.path, extra=[("Sec-WebSocket-Protocol", "mqtt")])
    assert head.startswith(b"HTTP/1.1 400 ")
    assert ep.wait_connection(timeout=2).refused_status == 400


def test_subprotocol_required_and_offered(ep: Endpoint, client: RawClient) -> None:
    ep.require_subprotocol("chat")
    head = client.handshake(ep.path, extra=[("Sec-WebSocket-Protocol", "mqtt, chat")])
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Protocol: chat\r\n" in head


def test_ping_answered_at_once_with_its_payload(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    client.send(OP_PING, b"p1")
    assert client.frames(1) == [Frame(OP_PONG, b"p1")]
    assert [payload for _, payload in ep.pongs_sent] == [b"p1"]
    assert [rf.frame.payload for rf in ep.pings_received] == [b"p1"]


def test_pong_delayed(ep: Endpoint, client: RawClient) -> None:
    ep.answer_pings(delay_ms=300)
    upgraded(client, ep)
    sent = time.monotonic()
    client.send(OP_PING, b"late")
    assert client.frames(1) == [Frame(OP_PONG, b"late")]
    assert time.monotonic() - sent >= 0.3
    assert ep.pongs_sent[0][0] - ep.pings_received[0].time >= 0.3


def test_pong_never(ep: Endpoint, client: RawClient) -> None:
    ep.answer_pings(never=True)
    upgraded(client, ep)
    client.send(OP_PING, b"void")
    assert client.nothing_within(0.4)
    assert ep.pongs_sent == [] and len(ep.pings_received) == 1


def test_server_sends_exact_frames(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    ep.wait_connection(timeout=2)
    ep.send_text("hi")
    ep.send_text(b"\xff raw")
    ep.send_binary(b"\x00\x01")
    ep.send_ping(b"pp")
    ep.send_pong(b"qq")
    ep.close(code=4000, reason="bye")
    assert client.frames(6) == [Frame(OP_TEXT, b"hi"), Frame(OP_TEXT, b"\xff raw"),
                                Frame(OP_BINARY, b"\x00\x01"), Frame(OP_PING, b"pp"),
                                Frame(OP_PONG, b"qq"), Frame(OP_CLOSE, close_payload(4000, "bye"))]


def test_server_close_keeps_tcp_until_device_drops(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    conn = ep.wait_connection(timeout=2)
    ep.close(code=None)
    assert client.frames(1) == [Frame(OP_CLOSE, b"")]
    client.send(OP_CLOSE, b"")
    client.send(OP_TEXT, b"no echo after close")
    ep.wait_frame(lambda rf: rf.frame.opcode == OP_TEXT, timeout=2)
    assert client.nothing_within(0.2) and conn.is_open
    client.close()
    assert ep.wait_disconnect(timeout=2).close_initiator == "device"
    assert conn.closed_at >= conn.close_sent_at


def test_server_close_with_drop_tcp(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    ep.wait_connection(timeout=2)
    ep.close(code=1000, reason="", drop_tcp=True)
    assert client.frames(1) == [Frame(OP_CLOSE, close_payload(1000))]
    client.send(OP_CLOSE, close_payload(1000))
    assert client.eof_within(2) == b""
    assert ep.wait_disconnect(timeout=2).close_initiator == "server"


def test_drop_resets_without_close_frame(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    ep.wait_connection(timeout=2)
    ep.drop()
    assert client.eof_within(2) == b""
    assert ep.wait_disconnect(timeout=2).close_initiator == "server"
    with pytest.raises(NoLiveConnection):
        ep.drop()


def test_device_disconnect_recorded(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    ep.wait_connection(timeout=2)
    client.close()
    conn = ep.wait_disconnect(timeout=2)
    assert conn.close_initiator == "device" and conn.closed_at is not None


def test_greeting_written_with_the_101(ep: Endpoint, client: RawClient) -> None:
    ep.on_connect_send(text="welcome", binary=b"\x01")
    upgraded(client, ep)
    assert client.frames(2) == [Frame(OP_TEXT, b"welcome"), Frame(OP_BINARY, b"\x01")]
    first_write = ep.wait_connection(timeout=2).written[0][1]
    assert first_write.startswith(b"HTTP/1.1 101 ")
    assert first_write.endswith(encode_frame(OP_TEXT, b"welcome") + encode_frame(OP_BINARY, b"\x01"))


def test_wait_timeout_is_an_assertion_with_a_transcript(ep: Endpoint, client: RawClient) -> None:
    upgraded(client, ep)
    client.send(OP_TEXT, b"not a ping")
    ep.wait_frame(lambda rf: rf.frame.opcode == OP_TEXT, timeout=2)
    with pytest.raises(ServerWaitTimeout) as caught:
        ep.wait_frame(lambda rf: rf.frame.opcode == OP_PING, timeout=0.2)
    message = str(caught.value)
    assert isinstance(caught.value, AssertionError)
    assert "waited 0.2 s" in message and "rf.frame.opcode == OP_PING" in message
    assert "TEXT fin=1 masked (key 01020304), 10 bytes: b'not a ping'" in message and ep.path in message


def test_wait_connection_times_out_listing_stray_paths(server: WsTestServer, ep: Endpoint,
                                                       client: RawClient) -> None:
    client.handshake(ep.path + "-typo")
    with pytest.raises(ServerWaitTimeout, match="(?s)no connection.*-typo HTTP"):
        ep.wait_connection(timeout=0.2)


def test_unknown_path_is_404(server: WsTestServer, client: RawClient) -> None:
    head = client.handshake("/nowhere?x=1")
    assert head.startswith(b"HTTP/1.1 404 ")
    body = client.eof_within(2)
    assert body == b"not found" and b"nowhere" not in head + body   # nothing of the request
    assert any(hs.path == "/nowhere" and hs.query == "x=1" for hs in server.unmatched_handshakes())


def test_endpoints_are_independent(server: WsTestServer) -> None:
    one, two = server.endpoint("one"), server.endpoint("two")
    a, b = RawClient(server.port), RawClient(server.port)
    try:
        upgraded(a, one)
        upgraded(b, two)
        a.send(OP_TEXT, b"for one")
        b.send(OP_TEXT, b"for two")
        assert a.frames(1) == [Frame(OP_TEXT, b"for one")]
        assert b.frames(1) == [Frame(OP_TEXT, b"for two")]
        assert [rf.frame.payload for rf in one.frames] == [b"for one"]
        assert [rf.frame.payload for rf in two.frames] == [b"for two"]
        one.close_endpoint()  # its connection is dropped; its path is gone
        assert one.wait_disconnect(timeout=2).close_initiator == "server"
        assert two.connections[0].is_open and len(two.frames) == 1
    finally:
        a.close()
        b.close()
    c = RawClient(server.port)
    try:
        assert c.handshake(one.path).startswith(b"HTTP/1.1 404 ")
    finally:
        c.close()
    assert len(one.connections) == 1


def test_start_stop_and_bind_failure() -> None:
    srv = WsTestServer(advertised_host="192.0.2.7")
    srv.start()
    ep = srv.endpoint()
    assert ep.url == f"ws://192.0.2.7:{srv.port}{ep.path}"
    c = RawClient(srv.port)
    try:
        upgraded(c, ep)
        taken = srv.port
        with pytest.raises(OSError):
            WsTestServer(port=taken).start()
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 2
        assert c.eof_within(2) == b""
        assert ep.connections[0].close_initiator == "server"
    finally:
        c.close()
    with pytest.raises(RuntimeError):
        ep.send_text("server is gone")


def test_wire_tap_byte_by_byte() -> None:
    from servers.recorder import WireTap

    head = b"GET /p?q HTTP/1.1\r\nA: 1\r\n\r\n"
    stream = head + encode_frame(OP_TEXT, b"xy", mask=True, mask_key=KEY)
    tap, seen = WireTap(), []
    for at, byte in enumerate(stream):
        tap.feed(bytes([byte]), float(at))
    raw, head_time = tap.take_head()
    assert (raw, head_time) == (head, float(len(head) - 1))
    tap.start_frames(seen.append)
    assert [(rf.time, rf.frame.payload) for rf in seen] == [(float(len(stream) - 1), b"xy")]
    assert tap.pending == 0


def test_wss_records_decrypted_frames(tmp_path: Path) -> None:
    context = fresh_pki(tmp_path, "127.0.0.1").server_context("verified")
    client_context = ssl.create_default_context()
    client_context.check_hostname, client_context.verify_mode = False, ssl.CERT_NONE
    with WsTestServer(ssl=context) as srv:
        ep = srv.endpoint("tls")
        assert ep.url.startswith("wss://")
        client = RawClient(srv.port, tls=client_context)
        try:
            upgraded(client, ep)
            client.send(OP_BINARY, b"secret", rsv=2)
            recorded = ep.wait_frame(lambda rf: rf.frame.payload == b"secret", timeout=2)
            assert (recorded.frame.rsv, recorded.frame.mask_key) == (2, KEY)
        finally:
            client.close()


def cli_stderr(host: str) -> str:
    """What `python -m servers --host HOST` writes on stderr up to its serving line."""
    proc = subprocess.Popen([sys.executable, "-m", "servers", "--host", host, "--port", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith(f"serving echo on ws://{host}:")
    finally:
        proc.terminate()
        proc.wait(3)
    return proc.stderr.read()


def test_cli_warns_when_listening_beyond_loopback() -> None:
    warning = cli_stderr("0.0.0.0")
    assert warning.startswith("python -m servers: warning: listening on 0.0.0.0: any host")
    assert warning.count("\n") == 1
    assert cli_stderr("127.0.0.1") == ""


def test_cli_on_a_busy_port_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "servers", "--port", str(port)], cwd=ROOT,
                                capture_output=True, text=True, timeout=8)
    assert result.returncode == 2
    assert result.stderr == (f"python -m servers: cannot listen on 127.0.0.1:{port}: "
                             f"{os.strerror(errno.EADDRINUSE)}\n")
