"""Closing: AT+WSCLOSE, a close frame from the server, lost connections, and the states shown
meanwhile (AT+WSOPEN? 0, 1, 3, 4)."""
import time

import pytest

import spec
from esp_at.commands import wsclose

from fixtures.links import link_states, open_link
from tests.conformance.ranges import range_cases

SPEC = spec.load()
SERVER_WAIT_S = 5.0
CLOSE_REPLY_S = 2.0          # BEHAVIOUR.md: the device answers a close at once, drops TCP within 1 s
WSCLOSE_ANSWER_S = 7.0       # BEHAVIOUR.md: OK within about 1 s, up to about 5 s while reconnecting
# BEHAVIOUR.md: after an abort the link waits about 10 or about 15 s before reconnecting.
RECONNECT_WAIT_MAX_S = 17.0
POLL_S = 0.05


@pytest.mark.clause("WSCLOSE.set", "WSOPEN.state.closed")
def test_close_answers_ok_and_link_is_gone(at, connected, ws_endpoint):
    connected(1)
    at.cmd(wsclose(1), timeout=WSCLOSE_ANSWER_S).expect(b"OK", lines=[])
    ws_endpoint.wait_disconnect(timeout=SERVER_WAIT_S)
    state = link_states(at).get(1, (0,))[0]
    assert state == 0, f"AT+WSOPEN? shows link 1 in state {state} after AT+WSCLOSE; expected 0 or gone"
    at.cmd("AT+WSSEND=1,1").expect(b"ERROR")     # nothing left to send on


@pytest.mark.parametrize("case", range_cases(SPEC, "AT+WSCLOSE"))
def test_parameter_range(at, ws_endpoint, case):
    if case.in_range:
        open_link(at, case.value, ws_endpoint.url)
        at.cmd(wsclose(case.value), timeout=WSCLOSE_ANSWER_S).expect(b"OK")
    else:
        at.cmd(wsclose(case.value)).expect(b"ERROR")


@pytest.mark.clause("WSCLOSE.set")
def test_close_of_one_link_leaves_the_others(at, connected, new_endpoint):
    endpoints = [new_endpoint("a"), new_endpoint("b")]
    connected(0, endpoint=endpoints[0])
    connected(2, endpoint=endpoints[1])
    at.cmd(wsclose(0), timeout=WSCLOSE_ANSWER_S).expect(b"OK")
    states = link_states(at)
    assert states.get(2, (None,))[0] == 2 and states.get(0, (0,))[0] == 0, states
    assert endpoints[1].connections[0].is_open


@pytest.mark.clause("URC.WS_CLOSED", "WSOPEN.state.closing")
def test_server_close_frame(at, connected, ws_endpoint):
    connected(0)
    ws_endpoint.close(code=1000, reason="bye")
    at.wait_urc(b"+WS_CLOSED", 0, timeout=SERVER_WAIT_S)
    # Right after +WS_CLOSED the link shows 4 (closing) or is already gone; never established.
    state = link_states(at).get(0, (None,))[0]
    assert state in (4, 0, None), f"AT+WSOPEN? shows state {state} right after +WS_CLOSED:0"
    reply = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == 0x8, timeout=CLOSE_REPLY_S)
    assert reply.frame.fin and reply.frame.masked, reply
    assert len(reply.frame.payload) != 1, f"RFC 6455 5.5.1: a close body is empty or >= 2 bytes: {reply}"
    ws_endpoint.wait_disconnect(timeout=CLOSE_REPLY_S)
    deadline = time.monotonic() + CLOSE_REPLY_S
    while link_states(at).get(0, (0,))[0] != 0 and time.monotonic() < deadline:
        time.sleep(POLL_S)
    state = link_states(at).get(0, (0,))[0]
    assert state == 0, f"link 0 still in state {state} {CLOSE_REPLY_S} s after the close handshake"


@pytest.mark.clause("URC.WS_CLOSED")
def test_no_reconnect_after_server_close(at, connected, ws_endpoint):
    connected(0)
    ws_endpoint.close(code=1001, reason="going away", drop_tcp=True)
    at.wait_urc(b"+WS_CLOSED", 0, timeout=SERVER_WAIT_S)
    at.expect_no_urc(b"+WS_CONNECTED", 0, within=1.0)
    assert len(ws_endpoint.connections) == 1, "the device reconnected after a server close"
    state = link_states(at).get(0, (0,))[0]
    assert state in (0, 4), f"after a server close link 0 shows state {state}; expected 0, 4 or gone"


@pytest.mark.clause("URC.WS_DISCONNECTED", "WSOPEN.state.wait_reconnect")
def test_lost_connection_prints_disconnected_and_waits(at, connected, ws_endpoint):
    connected(2)
    ws_endpoint.drop()
    at.wait_urc(b"+WS_DISCONNECTED", 2, timeout=SERVER_WAIT_S)
    state = link_states(at).get(2, (None,))[0]
    assert state == 3, f"after a TCP reset AT+WSOPEN? must show state 3; shows {state}"


def poll_state(at, link_id, wanted, timeout):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = link_states(at).get(link_id, (None,))[0]
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == wanted:
            return seen
        time.sleep(POLL_S)
    raise AssertionError(f"link {link_id} never showed state {wanted} within {timeout:g} s; "
                         f"states seen in order: {seen}")


@pytest.mark.slow
@pytest.mark.clause("WSOPEN.state.reconnecting", "URC.WS_DISCONNECTED")
def test_reconnects_after_a_lost_connection(at, connected, ws_endpoint):
    connected(0)
    ws_endpoint.drop()
    at.wait_urc(b"+WS_DISCONNECTED", 0, timeout=SERVER_WAIT_S)
    at.wait_urc(b"+WS_CONNECTED", 0, timeout=RECONNECT_WAIT_MAX_S + SERVER_WAIT_S)
    assert len(ws_endpoint.connections) >= 2
    assert link_states(at)[0][0] == 2


@pytest.mark.slow
@pytest.mark.clause("WSOPEN.state.reconnecting")
def test_state_1_while_reconnecting(at, connected, ws_endpoint):
    connected(0)
    ws_endpoint.stall_handshake()               # the reconnect attempt hangs in its handshake
    ws_endpoint.drop()
    at.wait_urc(b"+WS_DISCONNECTED", 0, timeout=SERVER_WAIT_S)
    seen = poll_state(at, 0, 1, RECONNECT_WAIT_MAX_S)
    assert seen[0] == 3, f"expected 3 (waiting) before 1 (reconnecting); saw {seen}"
    ws_endpoint.wait_connection(timeout=SERVER_WAIT_S, count=2)
