"""Links the server or the network ends: a close frame from the server (URC, the close handshake,
states 4 and 0, no reconnect), a lost connection (URC, state 3), and the reconnection that
follows (states 1 and 2, its timing, the request it repeats, a clean start)."""
import time

import pytest

import spec
from wire.frames import OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, encode_frame

from fixtures import margins
from fixtures.progress import waiting_for
from fixtures.timeline import Timing, timed
from fixtures.links import lose_connection, open_link, state_of, wait_link_closed
from fixtures.verdicts import check, deviation

SPEC = spec.load()
ESTABLISHED = SPEC.state("established")
WAIT_RECONNECT = SPEC.state("wait_reconnect")
RECONNECTING = SPEC.state("reconnecting")
CLOSING = SPEC.state("closing")
CLOSED = SPEC.state("closed")
POLL_S = 0.05


def server_closes(at, connected, endpoint, link_id=0, **close):
    """Open the link, have the server send a close frame; returns when +WS_CLOSED came."""
    connected(link_id)
    endpoint.close(**{"code": 1000, **close})
    with check("URC.WS_CLOSED"):
        return at.wait_urc(b"+WS_CLOSED", link_id, timeout=margins.SERVER_SEES_IT_S)


@pytest.mark.clause("URC.WS_CLOSED")
def test_server_close_prints_closed_once_and_nothing_after(at, connected, ws_endpoint):
    urc = server_closes(at, connected, ws_endpoint, drop_tcp=True)
    assert urc.raw == b"+WS_CLOSED:0\r\n", f"+WS_CLOSED is not byte-exact: {urc.raw!r}"
    ws_endpoint.wait_disconnect(timeout=margins.TCP_GONE_S)
    # Neither a second +WS_CLOSED nor a +WS_DISCONNECTED follows, also once TCP is gone.
    at.expect_no_urc(b"+WS_CLOSED", 0, within=margins.QUIET_S)
    at.expect_no_urc(b"+WS_DISCONNECTED", 0, within=0)


@pytest.mark.slow
@pytest.mark.clause("URC.WS_CLOSED")
def test_no_reconnect_after_server_close(at, connected, ws_endpoint):
    server_closes(at, connected, ws_endpoint, code=1001, reason="going away", drop_tcp=True)
    # A wrongful reconnect would come after the reconnect wait: watch longer than that.
    at.expect_no_urc(b"+WS_CONNECTED", 0, within=margins.NO_RECONNECT_WATCH_S)
    at.expect_no_urc(b"+WS_DISCONNECTED", 0, within=0)
    assert len(ws_endpoint.connections) == 1, "the device reconnected after a server close"
    assert state_of(at, 0) in (None, CLOSED)


@pytest.mark.timer
@pytest.mark.clause("CLOSE.server.handshake")
@pytest.mark.parametrize("reason", [b"", b"bye", b"r" * 100], ids=["no-reason", "reason", "long"])
def test_close_frame_is_answered_and_tcp_dropped(at, connected, ws_endpoint, reason):
    """The server closes and keeps TCP open: the device answers with one close frame and drops
    TCP itself within about 1 s."""
    server_closes(at, connected, ws_endpoint, code=1001, reason=reason)
    sent = ws_endpoint.connections[-1].close_sent_at
    # Measured at the server: the close's way there and the answer's way back.
    answer = Timing("close reply", sent, (0.0, margins.AT_ONCE_S + 2 * margins.NETWORK_JITTER_S),
                    "one close frame answers the server's, at once")
    dropped = Timing("TCP dropped by the device", sent,
                     (0.0, margins.TCP_GONE_S + margins.NETWORK_JITTER_S),
                     "the device drops TCP itself, within about 1 s")
    replies = ws_endpoint.wait_frames(lambda rf: rf.frame.opcode == OP_CLOSE, 1,
                                      timeout=margins.AT_ONCE_S)
    window = answer.came(replies[0].time)
    assert window.holds, (f"the close reply came {replies[0].time - sent:.2f} s after the "
                          f"server's close; at once is within {window.high:g} s")
    reply = replies[0].frame
    assert reply.fin and reply.masked, replies
    # BEHAVIOUR.md: empty (the status code is not echoed); RFC 6455 5.5.1 allows echoing it.
    assert reply.payload in (b"", (1001).to_bytes(2, "big")) or (
        len(reply.payload) >= 2 and reply.close_code() == 1001), (
        f"the close reply must be empty or carry the server's code 1001: {replies}")
    gone = ws_endpoint.wait_disconnect(timeout=margins.TCP_GONE_S).closed_at
    window = dropped.came(gone)
    assert window.holds, (f"the device dropped TCP {gone - sent:.2f} s after the server's close; "
                          f"it must within {window.high:g} s")
    closes = [rf for rf in ws_endpoint.frames if rf.frame.opcode == OP_CLOSE]
    assert len(closes) == 1, f"one close frame answers the server's; the device sent {closes}"


@pytest.mark.clause("WSOPEN.state.closing")
def test_state_4_while_the_server_holds_tcp(at, connected, ws_endpoint):
    """Right after +WS_CLOSED the device waits (up to about 1 s) for the server to drop TCP; the
    server keeps it, so the link shows state 4 meanwhile."""
    server_closes(at, connected, ws_endpoint, code=1000)
    state = state_of(at, 0)
    if state is None:
        with deviation("WSOPEN.state.closing"):   # KD-3: removed as soon as the close came
            raise AssertionError("link 0 is no longer listed right after +WS_CLOSED:0, while "
                                 f"the device should still be closing (state {CLOSING})")
    assert state == CLOSING, (
        f"right after +WS_CLOSED:0, with the server holding TCP, link 0 shows state {state}; "
        f"expected {CLOSING}")


@pytest.mark.clause("WSOPEN.state.closed")
def test_closed_link_shows_0_or_is_gone(at, connected, ws_endpoint):
    server_closes(at, connected, ws_endpoint, code=1000, drop_tcp=True)
    ws_endpoint.wait_disconnect(timeout=margins.TCP_GONE_S)
    wait_link_closed(at, 0, margins.TCP_GONE_S)
    deadline = time.monotonic() + margins.QUIET_S   # and it stays closed or gone
    while time.monotonic() < deadline:
        assert state_of(at, 0) in (None, CLOSED)
        time.sleep(POLL_S)


@pytest.mark.clause("URC.WS_DISCONNECTED")
def test_lost_connection_prints_disconnected_once(at, connected, ws_endpoint):
    connected(2)
    urc = lose_connection(at, ws_endpoint, 2)
    assert urc.raw == b"+WS_DISCONNECTED:2\r\n", f"+WS_DISCONNECTED is not byte-exact: {urc.raw!r}"
    at.expect_no_urc(b"+WS_DISCONNECTED", 2, within=margins.QUIET_S)
    at.expect_no_urc(b"+WS_CLOSED", 2, within=0)


@pytest.mark.clause("WSOPEN.state.wait_reconnect")
def test_lost_connection_waits_in_state_3(at, connected, ws_endpoint):
    connected(2)
    lose_connection(at, ws_endpoint, 2)
    state = state_of(at, 2)
    assert state == WAIT_RECONNECT, f"after a TCP reset AT+WSOPEN? must show state 3; shows {state}"


def poll_state(at, link_id, wanted, timeout):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = state_of(at, link_id)
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == wanted:
            return seen
        time.sleep(POLL_S)
    raise AssertionError(f"link {link_id} never showed state {wanted} within {timeout:g} s; "
                         f"states seen in order: {seen}")


@pytest.mark.slow
@pytest.mark.clause("WSOPEN.state.reconnecting")
def test_state_1_while_reconnecting(at, connected, ws_endpoint):
    connected(0)
    ws_endpoint.stall_handshake()                # the reconnect attempt hangs in its handshake
    lose_connection(at, ws_endpoint, 0)
    seen = poll_state(at, 0, RECONNECTING, margins.RECONNECT_MAX_S)
    assert seen[0] == WAIT_RECONNECT, f"expected 3 (waiting) before 1 (reconnecting); saw {seen}"
    ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S, count=2)


@pytest.mark.slow
@pytest.mark.timer
@pytest.mark.clause("WSOPEN.reconnect")
def test_reconnects_after_the_wait_with_the_same_request(at, ws_endpoint):
    """BEHAVIOUR.md: state 3 for about 10 or 15 s, then the same handshake again, +WS_CONNECTED,
    state 2, and pings at the configured interval (the first within about a second)."""
    interval = 2
    ws_endpoint.require_subprotocol("chat.v1")
    with check("WSCFG.set"):
        at.cmd(f"AT+WSCFG=0,{interval},60").expect(b"OK")
    open_link(at, 0, f"{ws_endpoint.url}?token=abc%20def", subprotocol="chat.v1")
    first = ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S)
    lose_connection(at, ws_endpoint, 0)
    lost_at = first.closed_at
    timing = Timing("reconnect wait", lost_at, (margins.RECONNECT_MIN_S, margins.RECONNECT_MAX_S),
                    "about 10 or 15 s from the lost connection to the next handshake")
    with waiting_for("the reconnect (about 10 or 15 s in state 3)",
                     margins.RECONNECT_MAX_S + margins.SERVER_SEES_IT_S):
        again = ws_endpoint.wait_connection(
            timeout=margins.RECONNECT_MAX_S + margins.SERVER_SEES_IT_S, count=2)
    timing.came(again.handshake.time)
    waited = again.handshake.time - lost_at
    assert margins.RECONNECT_MIN_S <= waited <= margins.RECONNECT_MAX_S, (
        f"the device reconnected {waited:.2f} s after the connection was lost; BEHAVIOUR.md: "
        f"about 10 or 15 s ({margins.RECONNECT_MIN_S:g}-{margins.RECONNECT_MAX_S:g} s)")
    assert (again.handshake.path, again.handshake.query) == \
        (first.handshake.path, first.handshake.query), (again.handshake, first.handshake)
    assert again.header("Sec-WebSocket-Protocol") == "chat.v1", again.handshake
    at.wait_urc(b"+WS_CONNECTED", 0, timeout=margins.SERVER_SEES_IT_S)
    assert state_of(at, 0) == ESTABLISHED
    pings = ws_endpoint.wait_frames(
        lambda rf: rf.frame.opcode == OP_PING and rf.time > again.handshake.time, 2,
        timeout=2 * margins.ping_gap_bounds(interval)[1] + 1)
    # The ping clock ran on through the wait, so the first ping is overdue: within about a tick.
    first_after = pings[0].time - again.handshake.time
    timed("first ping after the reconnect", again.handshake.time,
          (0.0, margins.TIMER_TICK_S + 2 * margins.NETWORK_JITTER_S), pings[0].time,
          "overdue: within about a timer tick")
    timed("ping after the reconnect", pings[0].time, margins.ping_gap_bounds(interval),
          pings[1].time, f"ping_intv_sec {interval}")
    assert first_after <= margins.TIMER_TICK_S + 2 * margins.NETWORK_JITTER_S, (
        f"the first ping came {first_after:.2f} s after the reconnect; BEHAVIOUR.md: within about "
        f"{margins.TIMER_TICK_S:g} s")
    gap = pings[1].time - pings[0].time
    lo, hi = margins.ping_gap_bounds(interval)
    assert lo <= gap <= hi, f"pings after the reconnect are {gap:.2f} s apart; expected {interval} s"


@pytest.mark.slow
@pytest.mark.clause("WSOPEN.reconnect")
def test_one_disconnected_per_failed_attempt(at, connected, ws_endpoint):
    connected(1)
    ws_endpoint.refuse_handshake(503)            # every reconnect attempt fails
    lose_connection(at, ws_endpoint, 1)
    for attempt in (2, 3):                       # two failed attempts
        ws_endpoint.wait_connection(timeout=margins.RECONNECT_MAX_S + margins.SERVER_SEES_IT_S,
                                    count=attempt)
        at.wait_urc(b"+WS_DISCONNECTED", 1, timeout=margins.SERVER_SEES_IT_S)
        at.expect_no_urc(b"+WS_DISCONNECTED", 1, within=margins.QUIET_S)
        with check("WSOPEN.state.wait_reconnect"):
            assert state_of(at, 1) == WAIT_RECONNECT


@pytest.mark.slow
@pytest.mark.clause("WSOPEN.reconnect.clean")
def test_message_cut_by_a_lost_connection_leaves_nothing_behind(at, connected, ws_endpoint):
    """FD F4: a frame cut off mid-payload must not swallow the first bytes after the reconnect."""
    connected(0, cfg=(10, 120, SPEC.default("AT+WSCFG", "buffer_size")))
    head = encode_frame(OP_BINARY, bytes(3000))[:4]       # a 3000-byte frame's header
    ws_endpoint.send_raw(head + bytes(range(200)) * 5)   # and 1000 of its bytes
    with check("URC.WS_DATA"):
        at.wait_ws_data(0, 1000, timeout=margins.SERVER_SEES_IT_S)
    lose_connection(at, ws_endpoint, 0)
    with check("WSOPEN.reconnect"):
        ws_endpoint.wait_connection(timeout=margins.RECONNECT_MAX_S + margins.SERVER_SEES_IT_S,
                                    count=2)
        at.wait_urc(b"+WS_CONNECTED", 0, timeout=margins.SERVER_SEES_IT_S)
    at.drain()                                   # nothing of the old frame may come from here on
    ws_endpoint.send_raw(encode_frame(OP_TEXT, b"fresh"))
    chunks = at.wait_ws_data(0, 5, timeout=margins.SERVER_SEES_IT_S)
    assert chunks == [b"fresh"], (
        f"after the reconnect the first message is {chunks!r}; expected b'fresh' alone")
