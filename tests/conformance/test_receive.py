"""Data from the server: +WS_DATA framing and chunking by buffer_size; server pings."""
import pytest

import spec
from esp_at.commands import wscfg

SPEC = spec.load()
SERVER_WAIT_S = 5.0
DEFAULT_BUFFER = SPEC.param("AT+WSCFG", "buffer_size").default


def assert_chunks(chunks, message, buffer_size):
    sizes = [len(c) for c in chunks]
    assert b"".join(chunks) == message, f"+WS_DATA chunks do not concatenate to the message {sizes}"
    assert max(sizes) <= buffer_size, (
        f"a +WS_DATA chunk is larger than buffer_size {buffer_size}: chunk sizes {sizes}")


@pytest.mark.clause("URC.WS_DATA")
@pytest.mark.parametrize("message", [
    b"plain text",
    bytes(range(256)),
    b"\r\nOK\r\n+WS_CLOSED:0\r\n+WS_DATA:0,3,abc\r\nERROR\r\n",
    b"\x00" * 64,
    b">",
], ids=["text", "all-bytes", "framing-lookalikes", "nul", "prompt-lookalike"])
def test_binary_message_arrives_byte_exact(at, connected, ws_endpoint, message):
    connected(1)
    ws_endpoint.send_binary(message)
    assert b"".join(at.wait_ws_data(1, len(message), timeout=SERVER_WAIT_S)) == message
    at.cmd("AT").expect(b"OK")


@pytest.mark.clause("URC.WS_DATA")
def test_text_message_utf8_arrives_byte_exact(at, connected, ws_endpoint):
    connected(0)
    message = "grüße, ℃ and 🙂".encode()
    ws_endpoint.send_text(message)
    assert b"".join(at.wait_ws_data(0, len(message), timeout=SERVER_WAIT_S)) == message


@pytest.mark.clause("WSCFG.buffer_size.effect")
@pytest.mark.parametrize("buffer_size,length", [(1, 40), (100, 250), (4096, 5000), (8192, 8192)])
def test_chunks_never_exceed_buffer_size(at, connected, ws_endpoint, buffer_size, length):
    connected(0, cfg=(10, 120, buffer_size))
    message = bytes(i % 253 for i in range(length))
    ws_endpoint.send_binary(message)
    assert_chunks(at.wait_ws_data(0, length, timeout=SERVER_WAIT_S), message, buffer_size)


@pytest.mark.clause("WSCFG.buffer_size.default")
def test_default_buffer_size_is_1024(factory_defaults, connected, ws_endpoint):
    at = factory_defaults
    connected(0)
    message = bytes(i % 249 for i in range(3000))
    ws_endpoint.send_binary(message)
    chunks = at.wait_ws_data(0, len(message), timeout=SERVER_WAIT_S)
    assert_chunks(chunks, message, DEFAULT_BUFFER)
    # The message was written at once, so reads of up to buffer_size fill whole chunks: the
    # largest chunk shows the buffer size (BEHAVIOUR.md: 1024 + 1024 + 952 is the usual split).
    assert max(len(c) for c in chunks) == DEFAULT_BUFFER, (
        f"WSCFG.buffer_size.default: 3000 bytes in one frame with no AT+WSCFG; expected chunks "
        f"of up to {DEFAULT_BUFFER} with at least one full; got {[len(c) for c in chunks]}")


@pytest.mark.clause("WSCFG.before_open")
def test_wscfg_on_open_link_does_not_change_it(at, connected, ws_endpoint):
    connected(0, cfg=(10, 120, 1000))
    at.cmd(wscfg(0, 10, 120, 10))                # OK or ERROR: either way, no effect now
    message = bytes(range(200)) * 5
    ws_endpoint.send_binary(message)
    chunks = at.wait_ws_data(0, len(message), timeout=SERVER_WAIT_S)
    assert_chunks(chunks, message, 1000)
    assert max(len(c) for c in chunks) > 10, (
        f"AT+WSCFG on an open link took effect at once (chunks {[len(c) for c in chunks]}); the "
        f"seed says it must be set before AT+WSOPEN")


@pytest.mark.clause("WSCFG.example")
def test_doc_example_sets_the_buffer_of_the_next_open(at, connected, ws_endpoint):
    connected(0, cfg=(30, 60, 4096))
    message = bytes(i % 241 for i in range(6000))
    ws_endpoint.send_binary(message)
    chunks = at.wait_ws_data(0, len(message), timeout=SERVER_WAIT_S)
    assert_chunks(chunks, message, 4096)
    assert max(len(c) for c in chunks) > DEFAULT_BUFFER, (
        f"buffer_size 4096 from the doc example did not take effect: {[len(c) for c in chunks]}")


@pytest.mark.clause("PING.server")
@pytest.mark.parametrize("payload", [b"", b"are you there", bytes(range(125))],
                         ids=["empty", "text", "125-bytes"])
def test_server_ping_gets_pong_with_same_payload_and_nothing_printed(at, connected, ws_endpoint,
                                                                    payload):
    connected(0)
    ws_endpoint.send_ping(payload)
    pong = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == 0xA, timeout=SERVER_WAIT_S)
    assert pong.frame.payload == payload and pong.frame.fin and pong.frame.masked, pong
    at.expect_no_urc(b"+WS_DATA", within=0.3)


@pytest.mark.clause("PING.server.large")
def test_ping_longer_than_buffer_size_gets_exact_pong(at, connected, ws_endpoint):
    connected(0, cfg=(10, 120, 64))
    payload = bytes(range(100, 225))             # 125 bytes: the largest ping, twice buffer_size
    ws_endpoint.send_ping(payload)
    pong = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == 0xA, timeout=SERVER_WAIT_S)
    assert pong.frame.payload == payload, (
        f"PING.server.large: ping of {len(payload)} bytes with buffer_size 64; the pong carried "
        f"{len(pong.frame.payload)} bytes {pong.frame.payload[:40]!r}...")
