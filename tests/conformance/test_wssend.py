"""AT+WSSEND: the prompt flow to the byte, exactly <length> bytes, every range on an open link (a
refusal shows no prompt and sends nothing), the frames the server receives, the send timeout, and
sends that cannot complete."""
import time

import pytest

import spec
from esp_at.commands import wsclose, wssend
from wire.frames import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT

from fixtures import margins
from fixtures.run_record import observe
from fixtures.timeline import timed
from fixtures.links import (Pending, frames_until_marker, link_states, lose_connection, open_link,
                            reconnect_in_progress, send_ok, state_of, with_buffer)
from fixtures.verdicts import check, deviation
from tests.conformance.ranges import range_cases

SPEC = spec.load()
CONTROL_MAX = SPEC.at.control_payload_max
# The seed's largest send, which every profile takes (the development line's 16 KiB is tested
# under its own clause, WSSEND.length.large).
LENGTH_MAX = SPEC.profiles[spec.DEFAULT_PROFILE].wssend_length_max
WAIT_RECONNECT = SPEC.state("wait_reconnect")
RECONNECTING = SPEC.state("reconnecting")


def data_frames(frames):
    return [rf.frame for rf in frames if rf.frame.opcode < 8]


def reassembled(frames) -> bytes:
    return b"".join(f.payload for f in data_frames(frames))


def send_window(length: int) -> float:
    """How long a send of `length` bytes may take to answer: the UART time of the data, then the
    plain answer bound."""
    return margins.uart_s(length) + margins.ANSWER_S


def refused_and_nothing_sent(at, endpoints: dict, command: str, payload: bytes, clause: str):
    """`command` answers ERROR without a prompt, and no frame reaches any of the open links
    (`endpoints`: link id -> endpoint) before a marker sent after it."""
    since = time.monotonic()
    response = at.send_data(command, payload, send_timeout=send_window(len(payload)))
    with check(clause):
        assert not response.prompt, f"{command!r} should be refused, yet gave a prompt: " \
                                    f"{response.received!r}"
        response.expect(b"ERROR")
        for link_id, endpoint in endpoints.items():
            sent = frames_until_marker(at, endpoint, link_id, since)
            assert not sent, f"the refused {command!r} still sent on link {link_id}: {sent}"


@pytest.mark.clause("WSSEND.prompt")
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
    recorded = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == OP_BINARY,
                                      timeout=margins.SERVER_SEES_IT_S)
    assert recorded.frame.payload == payload and recorded.frame.fin and recorded.frame.masked, recorded
    assert at.wait_ws_data(0, len(payload), timeout=margins.SERVER_SEES_IT_S) == [payload]
    received = b"".join(data for _, way, data in at.transcript_entries() if way == "<<")
    echo, send_ok = received.find(b"+WS_DATA:0,"), received.find(b"SEND OK")
    observe("the echo's +WS_DATA and SEND OK", "+WS_DATA first" if echo < send_ok else "SEND OK first")


@pytest.mark.clause("WSSEND.prompt")
@pytest.mark.parametrize("payload", [b"AT\r\n", b"+++", b"\r\nOK\r\n", bytes(range(256))],
                         ids=["at-command", "plus", "ok-lookalike", "all-bytes"])
def test_exactly_length_bytes_are_taken_whatever_they_are(at, connected, ws_endpoint, payload):
    ws_endpoint.echo = False
    connected(0)
    at.send_data(wssend(0, len(payload), 2), payload).expect(b"SEND OK")
    frame = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == OP_BINARY).frame
    assert frame.payload == payload, f"sent {payload!r}; the frame carried {frame.payload!r}"
    at.cmd("AT").expect(b"OK")                   # and the port is back in command mode


@pytest.mark.clause("WSSEND.overrun")
def test_bytes_beyond_length_are_neither_sent_nor_executed(at, connected, ws_endpoint):
    ws_endpoint.echo = False
    connected(0)
    payload, extra = b"0123456789", b"AT\r\n"
    since = time.monotonic()
    response = at.send_data(wssend(0, len(payload), 2), payload + extra)
    response.expect(b"SEND OK")
    time.sleep(margins.QUIET_S)                  # the extra line would be answered by now
    at.assert_no_unexpected_output()             # busy p... or silence, never its OK
    sent = frames_until_marker(at, ws_endpoint, 0, since)
    assert [f.payload for f in data_frames(sent)] == [payload], (
        f"AT+WSSEND=0,{len(payload)} followed by {len(payload + extra)} bytes; the wire got {sent}")


@pytest.mark.clause("WSSEND.opcode.default")
def test_default_opcode_is_text(at, connected, ws_endpoint):
    connected(0)
    at.send_data(wssend(0, 4), b"text").expect(b"SEND OK")
    recorded = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode < 8,
                                      timeout=margins.SERVER_SEES_IT_S)
    assert recorded.frame.opcode == OP_TEXT and recorded.frame.payload == b"text", recorded


@pytest.mark.clause("WSSEND.not_connected")
@pytest.mark.parametrize("link_id", [0, 2])
def test_send_without_connection_answers_error_without_prompt(at, link_id):
    response = at.send_data(wssend(link_id, 5), b"hello")
    assert not response.prompt, f"a prompt for a link with no connection: {response.received!r}"
    response.expect(b"ERROR")


def not_sent(at, link_id: int, what: str) -> None:
    """AT+WSSEND on a link that is not connected: ERROR (before the prompt or, taking the data,
    after it), never SEND OK (AMBIGUITIES D-1)."""
    response = at.send_data(wssend(link_id, 5), b"hello")
    assert response.final == b"ERROR", (
        f"AT+WSSEND on a link {what} answered {response.final!r}: {response.received!r}")


@pytest.mark.clause("WSSEND.not_connected")
def test_send_while_waiting_to_reconnect_answers_error(at, connected, ws_endpoint):
    connected(1)
    lose_connection(at, ws_endpoint, 1)
    not_sent(at, 1, "waiting to reconnect (state 3)")


@pytest.mark.clause("WSSEND.not_connected")
def test_send_after_a_server_close_answers_error(at, connected, ws_endpoint):
    connected(0)
    ws_endpoint.close(code=1000, drop_tcp=True)
    with check("URC.WS_CLOSED"):
        at.wait_urc(b"+WS_CLOSED", 0, timeout=margins.SERVER_SEES_IT_S)
    not_sent(at, 0, "closed by the server")


@pytest.mark.slow
@pytest.mark.clause("WSSEND.not_connected")
def test_send_while_reconnecting_answers_error(at, connected, ws_endpoint):
    connected(0)
    reconnect_in_progress(at, ws_endpoint, 0)
    with check("WSOPEN.state.reconnecting"):
        assert state_of(at, 0) == RECONNECTING
    not_sent(at, 0, "reconnecting (state 1)")


@pytest.mark.parametrize("case", range_cases(SPEC, "AT+WSSEND"))
def test_parameter_range(at, new_endpoint, profile, case):
    """Every case runs on open links, so a refusal means the value, not "not connected"."""
    endpoints = {0: new_endpoint("link0"), 2: new_endpoint("link2")}
    for link_id, endpoint in endpoints.items():
        endpoint.record_only()                   # whole frames, reserved opcodes too, no echo
        open_link(at, link_id, endpoint.url)
    values = dict(link_id=0, length=5, opcode=OP_BINARY, timeout_ms=None)
    value = values[case.param] = case.value(profile)
    payload = b"r" * max(values["length"], 0)
    command = wssend(values["link_id"], values["length"], values["opcode"], values["timeout_ms"],
                     values.get("fin"))
    if not case.in_range and case.param == "length" and value == 0:
        # BEHAVIOUR.md: 0 answers ERROR with no prompt (released firmware), or sends one empty
        # frame with no prompt (development line); it never waits at a prompt.
        since = time.monotonic()
        response = at.cmd(command)               # a '>' here would be a line that never ends
        assert b">" not in response.received, f"length 0 gave a prompt: {response.received!r}"
        sent = data_frames(frames_until_marker(at, endpoints[0], 0, since))
        assert (response.final == b"ERROR" and not sent) or (
            response.final in (b"OK", b"SEND OK") and [f.payload for f in sent] == [b""]), (
            f"length 0: answered {response.final!r}, sent {sent}")
        return
    if not case.in_range:
        refused_and_nothing_sent(at, endpoints, command, payload, case.clause)
        return
    response = at.send_data(command, payload, send_timeout=send_window(len(payload)))
    assert response.prompt, f"{case} is in range but got no prompt: {response.received!r}"
    if case.param == "timeout_ms" and value == 0:
        # BEHAVIOUR.md: timeout_ms 0 may make the send fail at once; it must not be refused.
        assert response.final in (b"SEND OK", b"ERROR"), response.received
        return
    response.expect(b"SEND OK")
    endpoint = endpoints[values["link_id"]]
    if values.get("fin") == 0:                   # profile current: the message stays open
        frame = endpoint.wait_frame(lambda rf: True, timeout=margins.SERVER_SEES_IT_S).frame
        assert not frame.fin and frame.payload == payload, f"fin 0 sent {frame}"
        return
    endpoint.wait_frame(lambda rf: rf.frame.fin, timeout=margins.SERVER_SEES_IT_S)
    frames = endpoint.frames
    carried = reassembled(frames) if values["opcode"] < 8 else frames[0].frame.payload
    assert frames[0].frame.opcode == values["opcode"] and carried == payload, frames[:3]


@pytest.mark.clause("WSSEND.opcode.sent")
@pytest.mark.parametrize("opcode", range(16), ids=lambda op: f"opcode-0x{op:X}")
def test_frame_carries_the_given_opcode(at, connected, ws_endpoint, opcode):
    ws_endpoint.record_only()                    # a strict server would refuse reserved opcodes
    connected(0)
    payload = b"op%X" % opcode
    at.send_data(wssend(0, len(payload), opcode), payload).expect(b"SEND OK")
    recorded = ws_endpoint.wait_frame(lambda rf: rf.frame.payload == payload,
                                      timeout=margins.SERVER_SEES_IT_S)
    assert recorded.frame.opcode == opcode and recorded.frame.fin, recorded


@pytest.mark.clause("WSSEND.control_frame_size")
@pytest.mark.parametrize("opcode", [8, 9, 10], ids=["close", "ping", "pong"])
def test_control_frames_over_125_bytes_are_refused(at, connected, ws_endpoint, opcode):
    ws_endpoint.record_only()                    # a strict server would fail it at the header
    connected(0, cfg=with_buffer(100))    # and longer than buffer_size: no fragmenting either
    payload = b"c" * (CONTROL_MAX + 1)
    since = time.monotonic()
    response = at.send_data(wssend(0, len(payload), opcode), payload)
    if response.prompt:
        def oversized_frame(rf) -> bool:
            return rf.time >= since and rf.frame.opcode == opcode and (
                len(rf.frame.payload) > CONTROL_MAX or not rf.frame.fin)
        try:                                      # what went out, once it reached the server
            ws_endpoint.wait_frame(oversized_frame, timeout=margins.SERVER_SEES_IT_S)
        except AssertionError:
            pass
        oversized = [rf for rf in ws_endpoint.frames if oversized_frame(rf)]
        message = (f"a {len(payload)}-byte control frame (opcode {opcode}) was taken; RFC 6455 5.5 "
                   f"allows {CONTROL_MAX}: {response.received!r}; on the wire: {oversized}")
        if response.final == b"SEND OK" and oversized:
            with deviation("WSSEND.control_frame_size"):   # KD-10: sent as given
                raise AssertionError(message)
        raise AssertionError(message)
    response.expect(b"ERROR")
    assert not frames_until_marker(at, ws_endpoint, 0, since), "a refused control frame was sent"


@pytest.mark.clause("WSSEND.control_frame_size")
def test_control_frame_of_125_bytes_is_sent(at, connected, ws_endpoint):
    ws_endpoint.answer_pings(never=True)
    connected(0)
    payload = b"p" * CONTROL_MAX
    at.send_data(wssend(0, len(payload), 9), payload).expect(b"SEND OK")
    recorded = ws_endpoint.wait_frame(lambda rf: rf.frame.payload == payload)
    assert recorded.frame.opcode == OP_PING and recorded.frame.fin


@pytest.mark.clause("WSSEND.control_frame_size")
def test_control_frame_longer_than_buffer_size_is_not_fragmented(at, connected, ws_endpoint):
    """RFC 6455 5.5: a control frame is never fragmented, whatever buffer_size says."""
    ws_endpoint.record_only()                    # a strict server would fail it at the header
    buffer_size = 64
    connected(0, cfg=with_buffer(buffer_size))
    payload = bytes(range(100))                  # a ping the RFC allows, longer than the buffer
    since = time.monotonic()
    at.send_data(wssend(0, len(payload), 9), payload).expect(b"SEND OK")
    frames = [rf.frame for rf in frames_until_marker(at, ws_endpoint, 0, since)]
    message = (f"a {len(payload)}-byte ping with buffer_size {buffer_size} went out as "
               f"{[(f.opcode, int(f.fin), len(f.payload)) for f in frames]} (opcode, fin, bytes)")
    fragmented = (len(frames) > 1 and frames[0].opcode == OP_PING and not frames[0].fin
                  and all(f.opcode == OP_CONTINUATION for f in frames[1:])
                  and b"".join(f.payload for f in frames) == payload)
    if fragmented:
        with deviation("WSSEND.control_frame_size"):   # KD-10: split at buffer_size
            raise AssertionError(message)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [(9, True, payload)], message


@pytest.mark.clause("WSSEND.masked")
def test_every_frame_is_masked_with_a_fresh_key(at, connected, ws_endpoint):
    ws_endpoint.echo = False
    connected(0)
    count = 5
    for index in range(count):
        send_ok(at, 0, b"masked %d" % index)
    frames = ws_endpoint.wait_frames(lambda rf: rf.frame.opcode == OP_TEXT, count,
                                     timeout=margins.SERVER_SEES_IT_S)
    assert all(rf.frame.masked for rf in ws_endpoint.frames), ws_endpoint.frames
    keys = [rf.frame.mask_key for rf in frames]
    # RFC 6455 5.3: a fresh, unpredictable key per frame; five equal 32-bit draws are no chance.
    assert len(set(keys)) == count, f"{count} frames, keys {keys}: each frame needs its own"


@pytest.mark.clause("WSSEND.length_encoding")
@pytest.mark.parametrize("length", [125, 126, 1000, LENGTH_MAX])
def test_frames_use_the_minimal_length_encoding(at, connected, ws_endpoint, length):
    ws_endpoint.echo = False
    connected(0, cfg=with_buffer(LENGTH_MAX))     # one frame per send
    payload = bytes(i % 256 for i in range(length))
    at.send_data(wssend(0, length, 2), payload, send_timeout=send_window(length)).expect(b"SEND OK")
    frame = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == OP_BINARY,
                                   timeout=margins.SERVER_SEES_IT_S).frame
    assert frame.payload == payload
    assert frame.minimal_length, (
        f"a {length}-byte payload was sent with a {frame.length_bits}-bit length; RFC 6455 5.2 "
        f"wants the minimal form")


@pytest.mark.clause("WSSEND.fragmentation")
@pytest.mark.parametrize("buffer_size,length", [(100, 250), (1024, 3000)])
def test_send_longer_than_buffer_size_reassembles(at, connected, ws_endpoint, buffer_size, length):
    ws_endpoint.echo = False
    connected(0, cfg=with_buffer(buffer_size))
    payload = bytes(i % 251 for i in range(length))
    at.send_data(wssend(0, length, 2), payload, send_timeout=send_window(length)).expect(b"SEND OK")
    since = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode < 8, timeout=margins.SERVER_SEES_IT_S)
    frames = data_frames(frames_until_marker(at, ws_endpoint, 0, since.time))
    assert b"".join(f.payload for f in frames) == payload, "the frames do not reassemble"
    if len(frames) == 1:
        assert frames[0].opcode == OP_BINARY and frames[0].fin
        return
    # BEHAVIOUR.md Sending: first frame has the opcode and FIN clear, then continuations of at
    # most buffer_size bytes, FIN only on the last.
    assert frames[0].opcode == OP_BINARY and not frames[0].fin, frames[0]
    assert all(f.opcode == OP_CONTINUATION for f in frames[1:]), [f.opcode for f in frames]
    assert [f.fin for f in frames] == [False] * (len(frames) - 1) + [True]
    assert all(len(f.payload) <= buffer_size for f in frames[1:]), [len(f.payload) for f in frames]


@pytest.mark.clause("WSSEND.close_frame")
def test_nothing_follows_a_close_frame_sent_with_wssend(at, connected, ws_endpoint):
    interval = 1
    connected(0, cfg=(interval, 60))
    ws_endpoint.on_device_close(reply=True)      # answer it, keep TCP open, record what follows
    body = b"\x03\xe8bye"                        # 1000, "bye"
    send_ok(at, 0, body, OP_CLOSE)
    with check("WSSEND.send_ok"):
        close = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == OP_CLOSE,
                                       timeout=margins.SERVER_SEES_IT_S)
    time.sleep(margins.ping_gap_bounds(interval)[1])   # a ping would be due by now
    after = [rf for rf in ws_endpoint.frames if rf.time > close.time]
    message = (f"after its close frame (and the server's close reply) the device sent {after}; "
               f"RFC 6455 5.5.1 allows nothing more")
    kd5 = after and all(rf.frame.opcode == OP_PING
                        or (rf.frame.opcode == OP_CLOSE and not rf.frame.payload) for rf in after)
    if kd5:
        with deviation("WSSEND.close_frame"):    # KD-5: pings go on, a second empty close
            raise AssertionError(message)
    assert not after, message


def stalled_send(at, endpoint, timeout_ms: int | None):
    """Stop the server reading, then send 8 KiB messages until one cannot complete; returns that
    send's answer and how long after its data the answer came."""
    endpoint.stall_reading()
    payload = bytes(LENGTH_MAX)
    wait = (timeout_ms if timeout_ms is not None else SPEC.default("AT+WSSEND", "timeout_ms")) / 1000
    for _ in range(8):
        response = at.send_data(wssend(0, len(payload), 2, timeout_ms), payload,
                                send_timeout=wait + send_window(len(payload)) + margins.TIMER_TICK_S)
        if response.data_sent_at is None:
            raise AssertionError(f"AT+WSSEND on an open link gave no prompt: {response.received!r}")
        if response.final != b"SEND OK":
            return response, time.monotonic() - response.data_sent_at
    raise AssertionError(f"eight sends of {len(payload)} bytes to a server that reads nothing all "
                         f"answered SEND OK: the send timeout never came into play")


def send_times_out(at, endpoint, timeout_ms: int | None) -> None:
    """A send the server never reads answers ERROR about <timeout_ms> (or the default) after its
    data; the device keeps answering."""
    open_link(at, 0, endpoint.url)
    timeout_s = (timeout_ms if timeout_ms is not None
                 else SPEC.default("AT+WSSEND", "timeout_ms")) / 1000
    response, took = stalled_send(at, endpoint, timeout_ms)
    response.expect(b"ERROR")
    lo, hi = margins.send_timeout_bounds(timeout_s)
    hi += margins.uart_s(LENGTH_MAX)             # the device's clock starts after the data's UART time
    timed("send timeout", response.data_sent_at, (lo, hi), response.data_sent_at + took,
          f"timeout_ms {timeout_ms if timeout_ms is not None else 'default'}, from the data to ERROR")
    given = f"timeout_ms {timeout_ms}" if timeout_ms is not None else "no timeout_ms (default)"
    assert lo <= took <= hi, (
        f"{given} for a send the server never reads: ERROR came {took:.2f} s after the data; "
        f"expected {lo:.2f}-{hi:.2f} s")
    at.cmd("AT").expect(b"OK")


@pytest.mark.timer
@pytest.mark.clause("WSSEND.timeout_ms.effect")
def test_timeout_ms_bounds_a_send_that_cannot_complete(at, tight_endpoint):
    send_times_out(at, tight_endpoint, 2000)


@pytest.mark.slow
@pytest.mark.timer
@pytest.mark.clause("WSSEND.timeout_ms.default")
def test_default_send_timeout_holds(at, tight_endpoint):
    send_times_out(at, tight_endpoint, None)


@pytest.mark.clause("WSSEND.disrupted")
def test_connection_lost_during_a_send_answers_error(at, tight_endpoint):
    open_link(at, 0, tight_endpoint.url)
    tight_endpoint.stall_reading()
    payload = bytes(LENGTH_MAX)
    command = wssend(0, len(payload), 2, 30000)
    for _ in range(8):                           # until a send blocks on the full window
        pending = Pending(lambda: at.send_data(command, payload, send_timeout=35.0), 36.0)
        if not pending.done(within=send_window(len(payload))):
            break
        assert pending.result().final == b"SEND OK", pending.result().received
    else:
        raise AssertionError("no send of 8 KiB ever blocked on a server that reads nothing")
    tight_endpoint.drop()                        # TCP reset while the device is sending
    response = pending.result()
    assert response.final == b"ERROR", (
        f"the connection was reset during the send; expected ERROR, got {response.final!r}: "
        f"{response.received!r}")
    at.cmd("AT").expect(b"OK")                   # still answering, and (checked for every test)
    time.sleep(margins.QUIET_S)                  # no `ready`: it did not reboot
    assert state_of(at, 0) in (WAIT_RECONNECT, RECONNECTING), link_states(at)
    at.cmd(wsclose(0), timeout=margins.WSCLOSE_WAITING_ANSWER_S).expect(b"OK")
