"""AT+WSSEND on the development line (profile current): <fin> and the frames it makes (a message
sent in parts with opcode 0, FIN clear on every fragment of a long send, the default), a send of
length 0 (one empty frame, no prompt), and the 16 KiB limits both ways (one frame out, one
+WS_DATA in). The range of <fin> is test_wssend.py's range test."""
import time

import pytest

import spec
from esp_at.commands import wsdatafmt, wssend
from wire.frames import OP_BINARY, OP_CONTINUATION, OP_PING, OP_TEXT, encode_frame

from fixtures import margins
from fixtures.verdicts import check, deviation
from tests.conformance.observe import exact_answer

SPEC = spec.load()
DEFAULT_OPCODE = SPEC.default("AT+WSSEND", "opcode")
DEFAULT_FIN = SPEC.default("AT+WSSEND", "fin")
PING_INTERVAL = SPEC.default("AT+WSCFG", "ping_intv_sec")
PONG_TIMEOUT = SPEC.default("AT+WSCFG", "ping_timeout_sec")
DEFAULT_MASK = SPEC.default("AT+WSDATAFMT", "meta_data_mask")
LEVEL = {name: number for number, name in enumerate(SPEC.wsdatafmt_levels)}
SEND_OK = b"\r\nSEND OK\r\n"                      # BEHAVIOUR.md Exact bytes
# A ping, not the text marker of fixtures/links.py, proves what reached the wire: a control frame
# may come in the middle of a fragmented message (RFC 6455 5.4), a text frame may not (a server
# fails the connection on it), and these tests leave messages open on purpose.
PING_MARKER = b"-- ping marker --"


def send_window(length: int) -> float:
    """How long a send of `length` bytes may take to answer: its UART time, then the plain bound."""
    return margins.uart_s(length) + margins.ANSWER_S


def shown(frames) -> str:
    return "[" + ", ".join(f"(opcode {f.opcode}, FIN {int(f.fin)}, "
                           f"{'masked' if f.masked else 'UNMASKED'}, {len(f.payload)} bytes "
                           f"{f.payload[:40]!r})" for f in frames) + "]"


def sent_before_ping(at, endpoint, link_id: int, since: float) -> list:
    """Every data frame the device sent on `link_id` after `since`, complete: a ping sent now
    reached the server, and frames on one TCP connection arrive in order."""
    with check("WSSEND.send_ok"):
        at.send_data(wssend(link_id, len(PING_MARKER), OP_PING), PING_MARKER).expect(b"SEND OK")
        marker = endpoint.wait_frame(lambda rf: rf.frame.opcode == OP_PING and rf.time >= since
                                     and rf.frame.payload == PING_MARKER,
                                     timeout=margins.SERVER_SEES_IT_S)
    return [rf.frame for rf in endpoint.frames
            if since <= rf.time <= marker.time and rf.frame.opcode < 8]


def one_frame(command: str, payload: bytes, frames, opcode: int, fin: bool) -> None:
    """`frames` (what `command` put on the wire) is exactly one masked frame with this opcode,
    FIN bit and `payload`."""
    assert [(f.opcode, f.fin, f.masked, f.payload) for f in frames] == \
           [(opcode, fin, True, payload)], (
        f"sent {command!r} + {payload[:40]!r} ({len(payload)} bytes); expected one masked frame "
        f"(opcode {opcode}, FIN {int(fin)}) with exactly those bytes; the wire got {shown(frames)}")


# ---- <fin> ----------------------------------------------------------------------------------

@pytest.mark.clause("WSSEND.fin.effect")
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_message_sent_in_three_parts_is_reassembled(at, connected, ws_endpoint, opcode):
    """fin 0, then opcode 0 with fin 0, then opcode 0 with fin 1: the wire shows exactly those
    three frames, and the server (aiohttp, an independent peer) reassembles the one message and
    echoes it back whole."""
    connected(0)
    parts = [b"first part, ", b"middle part, ", b"last part"]
    message = b"".join(parts)
    for op, part in ((opcode, parts[0]), (OP_CONTINUATION, parts[1])):
        command = wssend(0, len(part), op, None, 0)
        since = time.monotonic()
        with check("WSSEND.fin.effect"):
            at.send_data(command, part).expect(b"SEND OK")
        frames = sent_before_ping(at, ws_endpoint, 0, since)
        with check("WSSEND.fin.effect"):
            one_frame(command, part, frames, op, fin=False)
    command = wssend(0, len(parts[2]), OP_CONTINUATION, None, 1)
    since = time.monotonic()
    response = at.send_data(command, parts[2])
    frames = sent_before_ping(at, ws_endpoint, 0, since)
    if response.prompt and response.final == b"ERROR" and not frames:
        # KD-12's own signature: the data taken at the prompt, then ERROR, and nothing sent.
        with deviation("WSSEND.fin.effect"):
            raise AssertionError(
                f"sent {command!r} + {parts[2]!r} to end the message; expected SEND OK and one "
                f"continuation frame with FIN; the device took the data, answered ERROR and sent "
                f"nothing: {response.received!r}")
    with check("WSSEND.fin.effect"):
        assert response.final == b"SEND OK", (
            f"sent {command!r} + {parts[2]!r}; expected SEND OK, received {response.received!r}; "
            f"the wire got {shown(frames)}")
        one_frame(command, parts[2], frames, OP_CONTINUATION, fin=True)
        echoed = at.wait_ws_data(0, len(message), timeout=margins.SERVER_SEES_IT_S)
        assert b"".join(echoed) == message, (
            f"the server echoes the message it reassembled; expected {message!r}, the device "
            f"printed {echoed!r}")


@pytest.mark.clause("WSSEND.fin.effect")
def test_fin_0_send_longer_than_buffer_size_clears_fin_on_every_fragment(at, connected,
                                                                         ws_endpoint):
    buffer_size, length = 100, 250
    ws_endpoint.echo = False
    connected(0, cfg=(PING_INTERVAL, PONG_TIMEOUT, buffer_size))
    payload = bytes(i % 251 for i in range(length))
    command = wssend(0, length, OP_BINARY, None, 0)
    since = time.monotonic()
    with check("WSSEND.fin.effect"):
        at.send_data(command, payload, send_timeout=send_window(length)).expect(b"SEND OK")
    frames = sent_before_ping(at, ws_endpoint, 0, since)
    sent = (f"sent {command!r} + {length} bytes with buffer_size {buffer_size}; the wire got "
            f"{shown(frames)}")
    with check("WSSEND.fin.effect"):
        assert frames and b"".join(f.payload for f in frames) == payload, (
            f"{sent}: the frames do not carry the bytes sent")
        # BEHAVIOUR.md Sending: one frame, or the opcode first and continuations of at most
        # buffer_size; with fin 0 the message goes on after all of them, so no FIN anywhere.
        assert frames[0].opcode == OP_BINARY, f"{sent}: the first frame's opcode is not 2"
        assert all(f.opcode == OP_CONTINUATION for f in frames[1:]), (
            f"{sent}: every fragment after the first must be a continuation (opcode 0)")
        assert not any(f.fin for f in frames), f"{sent}: fin 0 wants FIN clear on every fragment"
        assert all(f.masked for f in frames), f"{sent}: every client frame is masked"
        assert all(len(f.payload) <= buffer_size for f in frames[1:]), (
            f"{sent}: a continuation longer than buffer_size")


@pytest.mark.clause("WSSEND.fin.range")
@pytest.mark.parametrize("timeout_ms", [None, SPEC.default("AT+WSSEND", "timeout_ms")],
                         ids=["opcode-last", "timeout-ms-last"])
def test_fin_left_off_ends_the_message(at, connected, ws_endpoint, timeout_ms):
    """<fin> left off is its default, 1 (the clause's "Default: 1"): one frame with FIN, a whole
    message the server echoes."""
    connected(0)
    payload = b"fin left off"
    command = wssend(0, len(payload), OP_BINARY, timeout_ms)
    since = time.monotonic()
    with check("WSSEND.fin.range"):
        at.send_data(command, payload).expect(b"SEND OK")
    frames = sent_before_ping(at, ws_endpoint, 0, since)
    with check("WSSEND.fin.range"):
        one_frame(command, payload, frames, OP_BINARY, fin=bool(DEFAULT_FIN))
        echoed = at.wait_ws_data(0, len(payload), timeout=margins.SERVER_SEES_IT_S)
        assert b"".join(echoed) == payload, f"the server's echo came back as {echoed!r}"


# ---- length 0 ---------------------------------------------------------------------------------

@pytest.mark.clause("WSSEND.length.zero")
@pytest.mark.parametrize("opcode,fin", [(None, None), (OP_BINARY, None), (OP_TEXT, 0)],
                         ids=["defaults", "binary", "text-fin-0"])
def test_length_zero_sends_one_empty_frame_without_prompt(at, connected, ws_endpoint, opcode, fin):
    ws_endpoint.echo = False
    connected(0)
    command = wssend(0, 0, opcode, None, fin)
    since = time.monotonic()
    # No prompt, no data: the echo, then SEND OK (VERSIONS.md current; AMBIGUITIES L-4).
    exact_answer(at.cmd(command), SEND_OK, "WSSEND.length.zero")
    frames = sent_before_ping(at, ws_endpoint, 0, since)
    want_opcode = DEFAULT_OPCODE if opcode is None else opcode
    want_fin = bool(DEFAULT_FIN if fin is None else fin)
    with check("WSSEND.length.zero"):
        one_frame(command, b"", frames, want_opcode, want_fin)


# ---- the 16 KiB limits ----------------------------------------------------------------------

@pytest.mark.clause("WSSEND.length.large")
def test_largest_send_goes_out_as_one_frame(at, connected, ws_endpoint, profile):
    buffer_size, length = profile.buffer_size_max, profile.wssend_length_max
    ws_endpoint.echo = False
    connected(0, cfg=(PING_INTERVAL, PONG_TIMEOUT, buffer_size))
    payload = bytes((i * 7 + i // 256) % 256 for i in range(length))
    command = wssend(0, length, OP_BINARY)
    since = time.monotonic()
    with check("WSSEND.length.large"):
        at.send_data(command, payload, send_timeout=send_window(length)).expect(b"SEND OK")
    frames = sent_before_ping(at, ws_endpoint, 0, since)
    with check("WSSEND.length.large"):
        one_frame(command, payload, frames, OP_BINARY, fin=True)


@pytest.mark.clause("WSSEND.length.large")
@pytest.mark.parametrize("level", [None, LEVEL["frame"], LEVEL["message"]],
                         ids=["no-wsdatafmt", "level-frame", "level-message"])
def test_largest_message_arrives_in_one_ws_data(at, connected, ws_endpoint, profile, level):
    """A message of the largest buffer_size, with that buffer_size. One +WS_DATA is asserted only
    where the model and a board must both give one: at level 1 (frame) and 2 (message) the device
    gathers the whole frame or message before it prints (AMBIGUITIES L-5), whatever the arrival.
    With no AT+WSDATAFMT (level 0) one +WS_DATA is one read, and a read takes what TCP has
    delivered so far (BEHAVIOUR.md Data from the server): 16 KiB is about a dozen TCP segments, so
    a board's first read may end before the message does, and the model's reads follow arrival
    too; there the chunks need only be at most buffer_size and concatenate to the message."""
    buffer_size = length = profile.buffer_size_max
    if level is not None:
        with check("WSDATAFMT.set"):
            at.cmd(wsdatafmt(0, level, DEFAULT_MASK)).expect(b"OK", lines=[])
    connected(0, cfg=(PING_INTERVAL, PONG_TIMEOUT, buffer_size))
    message = bytes((i * 13 + i // 256) % 256 for i in range(length))
    ws_endpoint.send_raw(encode_frame(OP_BINARY, message))
    timeout = margins.SERVER_SEES_IT_S + margins.uart_s(length)
    with check("WSSEND.length.large"):
        if level is None:
            chunks = at.wait_ws_data(0, length, timeout=timeout)
            sizes = [len(c) for c in chunks]
            assert b"".join(chunks) == message and max(sizes) <= buffer_size, (
                f"a {length}-byte message with buffer_size {buffer_size}: chunks of {sizes} "
                f"bytes, which must be at most {buffer_size} and concatenate to the message")
            return
        event = at.wait_urc(b"+WS_DATA", 0, timeout=timeout)
        header = b"+WS_DATA:0,%d," % length
        assert event.header == header and event.data == message, (
            f"a {length}-byte message at level {level} (mask {DEFAULT_MASK}); expected one "
            f"{header!r} with the whole message, the first +WS_DATA was {event.header!r} with "
            f"{len(event.data)} bytes {event.data[:40]!r}...")
        at.expect_no_urc(b"+WS_DATA", 0, within=0)
