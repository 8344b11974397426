"""AT+WSSEND: the prompt flow, SEND OK, parameters, and the frames the server receives."""
import time

import pytest

import spec
from esp_at.commands import wssend
from wire.frames import OP_CONTINUATION, OP_TEXT

from fixtures.links import open_link
from tests.conformance.ranges import range_cases

SPEC = spec.load()
SERVER_WAIT_S = 5.0
CONTROL_FRAME_MAX = 125          # RFC 6455 5.5


def data_frames(endpoint):
    return [rf.frame for rf in endpoint.frames if rf.frame.opcode < 8]


@pytest.mark.clause("WSSEND.prompt", "WSSEND.send_ok")
def test_prompt_flow_bytes(at, connected, ws_endpoint):
    ws_endpoint.echo = False                     # nothing may follow SEND OK in this exchange
    connected(0)
    payload = b"hello, websocket"
    command = wssend(0, len(payload))
    response = at.send_data(command, payload)
    # Echo (ATE1), OK and the prompt with no trailing space, then SEND OK: BEHAVIOUR.md exact bytes.
    expected = command.encode() + b"\r\n" + b"\r\nOK\r\n\r\n>" + b"\r\nSEND OK\r\n"
    assert response.received == expected, (
        f"sent {command!r} + {payload!r}\n expected {expected!r}\n received {response.received!r}")


@pytest.mark.clause("WSSEND.send_ok", "URC.WS_DATA")
def test_frame_on_wire_and_echo_as_ws_data(at, connected, ws_endpoint):
    connected(0)
    payload = b"echo \x00\xff\r\nOK\r\n"
    at.send_data(wssend(0, len(payload), 2), payload).expect(b"SEND OK")
    recorded = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == 2, timeout=SERVER_WAIT_S)
    assert recorded.frame.payload == payload and recorded.frame.fin and recorded.frame.masked
    assert at.wait_ws_data(0, len(payload), timeout=SERVER_WAIT_S) == [payload]


@pytest.mark.clause("WSSEND.prompt")
@pytest.mark.parametrize("payload", [b"AT\r\n", b"+++", b"\r\nOK\r\n", bytes(range(256))],
                         ids=["at-command", "plus", "ok-lookalike", "all-bytes"])
def test_exactly_length_bytes_are_taken_whatever_they_are(at, connected, ws_endpoint, payload):
    connected(0)
    at.send_data(wssend(0, len(payload), 2), payload).expect(b"SEND OK")
    assert ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == 2).frame.payload == payload
    at.cmd("AT").expect(b"OK")                   # and the port is back in command mode


@pytest.mark.clause("WSSEND.opcode.default")
def test_default_opcode_is_text(at, connected, ws_endpoint):
    connected(0)
    at.send_data(wssend(0, 4), b"text").expect(b"SEND OK")
    recorded = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode < 8, timeout=SERVER_WAIT_S)
    assert recorded.frame.opcode == OP_TEXT and recorded.frame.payload == b"text"


@pytest.mark.clause("WSSEND.not_connected")
@pytest.mark.parametrize("link_id", [0, 2])
def test_send_without_connection_answers_error_without_prompt(at, link_id):
    response = at.send_data(wssend(link_id, 5), b"hello")
    assert not response.prompt, f"a prompt for a link with no connection: {response.received!r}"
    response.expect(b"ERROR")


@pytest.mark.parametrize("case", range_cases(SPEC, "AT+WSSEND"))
def test_parameter_range(at, ws_endpoint, case):
    values = dict(link_id=0, opcode=2, timeout_ms=None)
    values[case.param] = case.value
    if case.in_range:
        open_link(at, values["link_id"], ws_endpoint.url)
    payload = b"range"                           # short enough for a control frame too
    command = wssend(values["link_id"], len(payload), values["opcode"], values["timeout_ms"])
    response = at.send_data(command, payload)
    if not case.in_range:
        assert not response.prompt, f"out-of-range {case} gave a prompt: {response.received!r}"
        response.expect(b"ERROR")
    elif case.param == "timeout_ms" and case.value == 0:
        # BEHAVIOUR.md: timeout_ms 0 may make the send fail at once; it must not be refused.
        assert response.prompt, f"timeout_ms 0 is in range but was refused: {response.received!r}"
        assert response.final in (b"SEND OK", b"ERROR"), response.received
    else:
        response.expect(b"SEND OK")


@pytest.mark.clause("WSSEND.opcode.sent")
@pytest.mark.parametrize("opcode", range(16), ids=lambda op: f"opcode-0x{op:X}")
def test_frame_carries_the_given_opcode(at, connected, ws_endpoint, opcode):
    ws_endpoint.echo = False
    connected(0)
    payload = b"op%X" % opcode
    at.send_data(wssend(0, len(payload), opcode), payload).expect(b"SEND OK")
    recorded = ws_endpoint.wait_frame(lambda rf: rf.frame.payload == payload,
                                      timeout=SERVER_WAIT_S)
    assert recorded.frame.opcode == opcode and recorded.frame.fin, recorded


@pytest.mark.clause("WSSEND.control_frame_size")
@pytest.mark.parametrize("opcode", [8, 9, 10], ids=["close", "ping", "pong"])
def test_control_frames_over_125_bytes_are_refused(at, connected, ws_endpoint, opcode):
    connected(0, cfg=(10, 120, 100))           # and longer than buffer_size: no fragmenting either
    payload = b"c" * (CONTROL_FRAME_MAX + 1)
    response = at.send_data(wssend(0, len(payload), opcode), payload)
    assert response.final != b"SEND OK", (
        f"a {len(payload)}-byte control frame (opcode {opcode}) was sent; RFC 6455 5.5 allows "
        f"{CONTROL_FRAME_MAX}: {response.received!r}")
    at.cmd("AT").expect(b"OK")
    oversized = [rf for rf in ws_endpoint.frames if rf.frame.opcode == opcode
                 and len(rf.frame.payload) > CONTROL_FRAME_MAX or
                 (rf.frame.opcode == opcode and not rf.frame.fin)]
    assert not oversized, f"oversized or fragmented control frames on the wire: {oversized}"


@pytest.mark.clause("WSSEND.control_frame_size")
def test_control_frame_of_125_bytes_is_sent(at, connected, ws_endpoint):
    ws_endpoint.answer_pings(never=True)
    connected(0)
    payload = b"p" * CONTROL_FRAME_MAX
    at.send_data(wssend(0, len(payload), 9), payload).expect(b"SEND OK")
    recorded = ws_endpoint.wait_frame(lambda rf: rf.frame.payload == payload)
    assert recorded.frame.opcode == 9 and recorded.frame.fin


@pytest.mark.clause("WSSEND.masked")
def test_every_frame_is_masked_with_a_fresh_key(at, connected, ws_endpoint):
    ws_endpoint.echo = False
    connected(0)
    for index in range(5):
        payload = b"masked %d" % index
        at.send_data(wssend(0, len(payload)), payload).expect(b"SEND OK")
    frames = ws_endpoint.wait_frames(lambda rf: rf.frame.opcode == 1, 5, timeout=SERVER_WAIT_S)
    assert all(rf.frame.masked for rf in ws_endpoint.frames), ws_endpoint.frames
    keys = {rf.frame.mask_key for rf in frames}
    assert len(keys) > 1, f"five frames, one masking key {keys}: RFC 6455 5.3 wants a fresh one"


@pytest.mark.clause("WSSEND.fragmentation")
@pytest.mark.parametrize("buffer_size,length", [(100, 250), (1024, 3000)])
def test_send_longer_than_buffer_size_reassembles(at, connected, ws_endpoint, buffer_size, length):
    ws_endpoint.echo = False
    connected(0, cfg=(10, 120, buffer_size))
    payload = bytes(i % 251 for i in range(length))
    at.send_data(wssend(0, length, 2), payload).expect(b"SEND OK")
    frames = []
    ws_endpoint.wait_frame(lambda rf: rf.frame.opcode < 8 and rf.frame.fin, timeout=SERVER_WAIT_S)
    frames = data_frames(ws_endpoint)
    assert b"".join(f.payload for f in frames) == payload, "the frames do not reassemble"
    if len(frames) == 1:
        assert frames[0].opcode == 2 and frames[0].fin
        return
    # BEHAVIOUR.md Sending: first frame has the opcode and FIN clear, then continuations of at
    # most buffer_size bytes, FIN only on the last.
    assert frames[0].opcode == 2 and not frames[0].fin, frames[0]
    assert all(f.opcode == OP_CONTINUATION for f in frames[1:]), [f.opcode for f in frames]
    assert [f.fin for f in frames] == [False] * (len(frames) - 1) + [True]
    assert all(len(f.payload) <= buffer_size for f in frames[1:]), [len(f.payload) for f in frames]


@pytest.mark.clause("WSSEND.close_frame")
def test_nothing_follows_a_close_frame_sent_with_wssend(at, connected, ws_endpoint):
    interval = 1
    connected(0, cfg=(interval, 60))
    ws_endpoint.on_device_close(reply=True)      # answer it, keep TCP open, record what follows
    body = b"\x03\xe8bye"                        # 1000, "bye"
    at.send_data(wssend(0, len(body), 8), body).expect(b"SEND OK")
    close = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == 8, timeout=SERVER_WAIT_S)
    time.sleep(interval + 1.5)                   # a ping would be due by now
    after = [rf for rf in ws_endpoint.frames if rf.time > close.time]
    assert not after, (
        f"WSSEND.close_frame: after its close frame (and the server's close reply) the device "
        f"sent {after}; RFC 6455 5.5.1 allows nothing more")
