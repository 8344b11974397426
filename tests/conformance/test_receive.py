"""Data from the server: +WS_DATA to the byte, chunking by buffer_size, empty and fragmented
messages, frames that must print nothing, and the pongs that answer server pings."""
import pytest

import spec
from wire.frames import OP_BINARY, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, encode_frame

from fixtures import margins
from fixtures.links import with_buffer
from fixtures.verdicts import check, deviation
from tests.conformance.observe import WITNESS_LENGTH

SPEC = spec.load()
DEFAULT_BUFFER = SPEC.default("AT+WSCFG", "buffer_size")
BUFFER_MAX = SPEC.bounds("AT+WSCFG", "buffer_size")[1]
CONTROL_MAX = SPEC.at.control_payload_max


def assert_chunks(chunks, message, buffer_size):
    sizes = [len(c) for c in chunks]
    assert b"".join(chunks) == message, f"+WS_DATA chunks do not concatenate to the message {sizes}"
    assert max(sizes) <= buffer_size, (
        f"a +WS_DATA chunk is larger than buffer_size {buffer_size}: chunk sizes {sizes}")


def next_data(at, link_id: int, size: int) -> list[bytes]:
    with check("URC.WS_DATA"):
        return at.wait_ws_data(link_id, size, timeout=margins.SERVER_SEES_IT_S)


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
    events = [at.wait_urc(b"+WS_DATA", 1, timeout=margins.SERVER_SEES_IT_S)]
    assert events[0].header == b"+WS_DATA:1,%d," % len(message), (
        f"+WS_DATA header {events[0].header!r}; expected +WS_DATA:1,{len(message)},")
    assert events[0].data == message
    at.cmd("AT").expect(b"OK")


@pytest.mark.clause("URC.WS_DATA")
def test_text_message_utf8_arrives_byte_exact(at, connected, ws_endpoint):
    connected(0)
    message = "grüße, ℃ and 🙂".encode()
    ws_endpoint.send_text(message)
    assert b"".join(at.wait_ws_data(0, len(message), timeout=margins.SERVER_SEES_IT_S)) == message


@pytest.mark.clause("WSCFG.buffer_size.effect")
@pytest.mark.parametrize("buffer_size,length", [(1, 40), (100, 250), (512, WITNESS_LENGTH)])
def test_chunks_fill_small_buffers(at, connected, ws_endpoint, buffer_size, length):
    """A message that fits one TCP segment is all there at the first read: every chunk but the
    last is exactly buffer_size."""
    connected(0, cfg=with_buffer(buffer_size))
    message = bytes(i % 253 for i in range(length))
    ws_endpoint.send_binary(message)
    chunks = next_data(at, 0, length)
    assert_chunks(chunks, message, buffer_size)
    sizes = [len(c) for c in chunks]
    assert all(size == buffer_size for size in sizes[:-1]), (
        f"buffer_size {buffer_size}, a {length}-byte message written at once: every chunk but "
        f"the last should be full: {sizes}")


@pytest.mark.clause("WSCFG.buffer_size.effect")
@pytest.mark.parametrize("buffer_size,length", [(4096, 5000), (BUFFER_MAX, BUFFER_MAX)])
def test_chunks_of_large_buffers(at, connected, ws_endpoint, buffer_size, length):
    """Past one TCP segment the boundaries follow arrival (BEHAVIOUR.md); while the device prints
    one chunk on its UART the rest arrives, so a read takes more than the default's 1024."""
    connected(0, cfg=with_buffer(buffer_size))
    message = bytes(i % 253 for i in range(length))
    ws_endpoint.send_binary(message)
    chunks = next_data(at, 0, length)
    assert_chunks(chunks, message, buffer_size)
    assert max(len(c) for c in chunks) > DEFAULT_BUFFER, (
        f"buffer_size {buffer_size} did not take effect: chunks {[len(c) for c in chunks]}, none "
        f"larger than the default {DEFAULT_BUFFER}")


@pytest.mark.clause("WSCFG.buffer_size.default")
def test_default_buffer_size_holds(factory_defaults, connected, ws_endpoint):
    at = factory_defaults
    connected(0)
    message = bytes(i % 249 for i in range(WITNESS_LENGTH))
    ws_endpoint.send_binary(message)
    chunks = next_data(at, 0, len(message))
    assert_chunks(chunks, message, DEFAULT_BUFFER)
    assert max(len(c) for c in chunks) == DEFAULT_BUFFER, (
        f"{len(message)} bytes in one frame with no AT+WSCFG; expected chunks of up to "
        f"{DEFAULT_BUFFER} with one full; got {[len(c) for c in chunks]}")


@pytest.mark.clause("WSCFG.example")
def test_doc_example_sets_the_buffer_of_the_next_open(at, connected, ws_endpoint):
    connected(0, cfg=(30, 60, 4096))
    message = bytes(i % 241 for i in range(6000))
    ws_endpoint.send_binary(message)
    chunks = next_data(at, 0, len(message))
    assert_chunks(chunks, message, 4096)
    assert max(len(c) for c in chunks) > DEFAULT_BUFFER, (
        f"buffer_size 4096 from the doc example did not take effect: {[len(c) for c in chunks]}")


@pytest.mark.clause("RECV.empty")
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_empty_message_prints_zero_length_data(at, connected, ws_endpoint, opcode):
    connected(0)
    ws_endpoint.send_raw(encode_frame(opcode, b"") + encode_frame(OP_TEXT, b"next"))
    first = at.wait_urc(b"+WS_DATA", 0, timeout=margins.SERVER_SEES_IT_S)
    assert first.header == b"+WS_DATA:0,0," and first.data == b"", (
        f"an empty message must print +WS_DATA:0,0, (AMBIGUITIES R-2); the first +WS_DATA was "
        f"{first.header + first.data!r}")
    assert at.wait_ws_data(0, 4, timeout=margins.AT_ONCE_S) == [b"next"]


@pytest.mark.clause("RECV.fragmented")
def test_fragments_with_a_ping_between_arrive_in_order(at, connected, ws_endpoint):
    connected(0)
    ws_endpoint.send_raw(encode_frame(OP_TEXT, b"He", fin=False)
                         + encode_frame(OP_PING, b"mid")
                         + encode_frame(OP_CONTINUATION, b"ll", fin=False)
                         + encode_frame(OP_CONTINUATION, b"o")
                         + encode_frame(OP_TEXT, b"World"))
    chunks = at.wait_ws_data(0, 10, timeout=margins.SERVER_SEES_IT_S)
    # BEHAVIOUR.md: fragment by fragment, then the next message alone.
    assert chunks == [b"He", b"ll", b"o", b"World"], (
        f"fragments He/ll/o then the message World arrived as {chunks!r}")
    with check("PING.server"):
        pong = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == OP_PONG,
                                      timeout=margins.AT_ONCE_S)
        assert pong.frame.payload == b"mid", pong
    at.expect_no_urc(b"+WS_DATA", 0, within=0)


@pytest.mark.clause("RECV.control_silent")
def test_pongs_print_nothing(at, connected, ws_endpoint):
    """(Reserved opcodes fail the connection: tests/conformance/test_server_frames.py.)"""
    connected(0)
    ws_endpoint.send_raw(encode_frame(OP_PONG, b"") + encode_frame(OP_PONG, b"abc")
                         + encode_frame(OP_TEXT, b"marker-1"))
    first = at.wait_urc(b"+WS_DATA", 0, timeout=margins.SERVER_SEES_IT_S)
    assert first.data == b"marker-1", f"pongs from the server printed {first.header + first.data!r}"


@pytest.mark.clause("RECV.raw_text")
def test_text_arrives_as_its_raw_bytes(at, connected, ws_endpoint):
    """Valid UTF-8 that a re-encoding would change: a byte order mark, NUL, CR-LF, a 4-byte
    character, U+FFFD itself. (Text that is not UTF-8 fails the connection: RECV.utf8.)"""
    connected(0)
    message = "\ufeffBOM first, NUL \x00, CR-LF \r\n, 🙂, \ufffd".encode()
    ws_endpoint.send_raw(encode_frame(OP_TEXT, message))
    got = b"".join(at.wait_ws_data(0, len(message), timeout=margins.SERVER_SEES_IT_S))
    assert got == message, f"the text {message!r} arrived as {got!r}"


@pytest.mark.clause("PING.server")
@pytest.mark.parametrize("payload", [b"", b"are you there", b"\x00\x01\x00",
                                     bytes(range(CONTROL_MAX))],
                         ids=["empty", "text", "nul", "largest"])
def test_server_ping_gets_pong_with_same_payload_and_nothing_printed(at, connected, ws_endpoint,
                                                                    payload):
    connected(0)
    ws_endpoint.send_ping(payload)
    pong = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == OP_PONG, timeout=margins.AT_ONCE_S)
    assert pong.frame.payload == payload and pong.frame.fin and pong.frame.masked, pong
    ws_endpoint.send_text(b"after")              # the ping printed nothing before this
    first = at.wait_urc(b"+WS_DATA", 0, timeout=margins.SERVER_SEES_IT_S)
    assert first.data == b"after", f"a server ping printed {first.header + first.data!r}"


BUFFER = 64                                      # under half the largest ping


def receive_buffer_after(payload: bytes, buffer_size: int) -> bytes:
    """What a receive buffer of buffer_size holds after reading `payload` in reads of at most
    buffer_size, each landing at the buffer's start: the last read, then the rest of the one
    before it."""
    buffer = bytearray(buffer_size)
    for start in range(0, len(payload), buffer_size):
        chunk = payload[start:start + buffer_size]
        buffer[:len(chunk)] = chunk
    return bytes(buffer)


@pytest.mark.clause("PING.server.large")
def test_ping_longer_than_buffer_size_gets_exact_pong(at, connected, ws_endpoint):
    connected(0, cfg=with_buffer(BUFFER))
    payload = bytes(range(100, 100 + CONTROL_MAX))   # the largest ping, twice buffer_size
    ws_endpoint.send_ping(payload)
    with check("PING.server"):
        pong = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == OP_PONG,
                                      timeout=margins.AT_ONCE_S)
    got = pong.frame.payload
    message = (f"ping of {len(payload)} bytes with buffer_size {BUFFER}; the pong carried "
               f"{len(got)} bytes {got[:40]!r}...")
    # KD-11's signature (traces server_ping_100_buf64): a pong of the ping's length built from
    # the receive buffer as the last read left it, then bytes read past its end.
    last_read = len(payload) - BUFFER * ((len(payload) - 1) // BUFFER)
    if len(got) == len(payload) and got[:BUFFER] == receive_buffer_after(payload, BUFFER):
        with deviation("PING.server.large"):
            raise AssertionError(
                f"{message}: its first {BUFFER} bytes are the receive buffer after the last read "
                f"(the ping's last {last_read} bytes, then {BUFFER - last_read} stale ones), the "
                f"other {len(payload) - BUFFER} were read past the {BUFFER}-byte buffer. The "
                f"library masks that payload in place, so it also WRITES {len(payload) - BUFFER} "
                f"bytes past a heap buffer: any server can corrupt the device's heap "
                f"(BEHAVIOUR.md; with 1.8.0 the device crashed here)")
    assert got == payload, message
