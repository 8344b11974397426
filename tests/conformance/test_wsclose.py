"""AT+WSCLOSE: the answer to the byte, its range (a refusal closes nothing), what the close does
on the wire (TCP gone, no close frame, no URC, the id free again), on a link waiting to reconnect,
and on an id with no link."""
import time

import pytest

import spec
from esp_at.commands import wsclose, wsopen

from wire.frames import OP_CLOSE

from fixtures import margins
from fixtures.timeline import timed
from fixtures.links import (configure, link_states, lose_connection, open_link,
                            reconnect_in_progress, state_of, wait_link_closed,
                            wsopen_answer_timeout, with_buffer)
from fixtures.verdicts import check, deviation
from tests.conformance.observe import (ERROR, OK, WITNESS_BUFFER, buffer_size_in_force,
                                       exact_answer, links_unchanged)
from tests.conformance.ranges import range_cases

SPEC = spec.load()
ESTABLISHED = SPEC.state("established")
WAIT_RECONNECT = SPEC.state("wait_reconnect")
RECONNECTING = SPEC.state("reconnecting")


def timed_close(at, link_id: int, timeout: float = margins.WSCLOSE_WAITING_ANSWER_S
                + margins.ANSWER_S):
    started = time.monotonic()
    response = at.cmd(wsclose(link_id), timeout=timeout)
    return response, time.monotonic() - started


@pytest.mark.clause("WSCLOSE.set")
def test_close_answers_ok_and_the_link_is_gone(at, connected, ws_endpoint):
    connected(1)
    exact_answer(at.cmd(wsclose(1), timeout=margins.WSCLOSE_ANSWER_S), OK, "WSCLOSE.set")
    ws_endpoint.wait_disconnect(timeout=margins.TCP_GONE_S)
    wait_link_closed(at, 1, margins.TCP_GONE_S)     # asserts it is gone or closed
    assert at.send_data("AT+WSSEND=1,1", b"x").final == b"ERROR"   # nothing left to send on


@pytest.mark.parametrize("case", range_cases(SPEC, "AT+WSCLOSE"))
def test_parameter_range(at, new_endpoint, profile, case):
    """In range: that link closes. Out of range: ERROR, and every open link stays as it was."""
    value = case.value(profile)
    if case.in_range:
        endpoint = new_endpoint("target")
        open_link(at, value, endpoint.url)
        at.cmd(wsclose(value), timeout=margins.WSCLOSE_ANSWER_S).expect(b"OK")
        endpoint.wait_disconnect(timeout=margins.TCP_GONE_S)
        return
    endpoints = {link_id: new_endpoint(f"link{link_id}") for link_id in (0, 2)}
    for link_id, endpoint in endpoints.items():
        open_link(at, link_id, endpoint.url)
    before = link_states(at)
    exact_answer(at.cmd(wsclose(value)), ERROR, case.clause)
    links_unchanged(at, before)
    assert all(e.connections[-1].is_open for e in endpoints.values()), "a connection was closed"


@pytest.mark.timer
@pytest.mark.clause("WSCLOSE.teardown")
def test_close_drops_tcp_without_a_close_frame_and_prints_nothing(at, connected, ws_endpoint):
    connection = connected(0)
    started = time.monotonic()
    response, took = timed_close(at, 0)
    timed("AT+WSCLOSE answer", started, (0.0, margins.WSCLOSE_ANSWER_S), started + took,
          f"OK within about {SPEC.timing.wsclose_answer_s:g} s on an established link")
    response.expect(b"OK", lines=[])
    assert took <= margins.WSCLOSE_ANSWER_S, (
        f"AT+WSCLOSE of an established link answered after {took:.2f} s; BEHAVIOUR.md: within "
        f"about {SPEC.timing.wsclose_answer_s:g} s (bound {margins.WSCLOSE_ANSWER_S:g} s)")
    ws_endpoint.wait_disconnect(timeout=margins.TCP_GONE_S)
    closes = [rf for rf in connection.frames if rf.frame.opcode == OP_CLOSE]
    assert not closes, f"AT+WSCLOSE sent a close frame (BEHAVIOUR.md: TCP is closed without one): {closes}"
    at.expect_no_urc(b"+WS_CLOSED", 0, within=margins.QUIET_S)      # a URC would follow at once
    for name in (b"+WS_DISCONNECTED", b"+WS_CONNECTED"):
        at.expect_no_urc(name, 0, within=0)


@pytest.mark.clause("WSCLOSE.teardown")
def test_the_id_opens_again_at_once(at, connected, ws_endpoint, new_endpoint):
    connected(2)
    at.cmd(wsclose(2), timeout=margins.WSCLOSE_ANSWER_S).expect(b"OK")
    again = new_endpoint("again")
    open_link(at, 2, again.url)
    assert state_of(at, 2) == ESTABLISHED


def waiting_to_reconnect(at, endpoint, link_id: int) -> None:
    lose_connection(at, endpoint, link_id)
    with check("WSOPEN.state.wait_reconnect"):
        assert state_of(at, link_id) == WAIT_RECONNECT


@pytest.mark.clause("WSCLOSE.waiting")
def test_close_while_waiting_to_reconnect_answers_promptly(at, connected, ws_endpoint):
    connected(0)
    waiting_to_reconnect(at, ws_endpoint, 0)
    response, took = timed_close(at, 0)
    response.expect(b"OK")
    assert took <= margins.WSCLOSE_WAITING_ANSWER_S, (
        f"AT+WSCLOSE of a link in state {WAIT_RECONNECT} answered after {took:.2f} s; "
        f"BEHAVIOUR.md: within about {SPEC.timing.wsclose_waiting_answer_s:g} s")
    assert 0 not in link_states(at)


@pytest.mark.slow
@pytest.mark.clause("WSCLOSE.waiting")
def test_close_while_waiting_ends_the_reconnection(at, connected, ws_endpoint):
    connected(0)
    waiting_to_reconnect(at, ws_endpoint, 0)
    at.cmd(wsclose(0), timeout=margins.WSCLOSE_WAITING_ANSWER_S).expect(b"OK")
    at.expect_no_urc(b"+WS_CONNECTED", 0, within=margins.NO_RECONNECT_WATCH_S)
    assert len(ws_endpoint.connections) == 1, (
        f"after AT+WSCLOSE the device still reconnected: {ws_endpoint.connections}")
    assert 0 not in link_states(at)


@pytest.mark.slow
@pytest.mark.clause("WSCLOSE.waiting")
def test_close_while_reconnecting(at, connected, ws_endpoint):
    connected(1)
    attempt = reconnect_in_progress(at, ws_endpoint, 1)
    with check("WSOPEN.state.reconnecting"):
        assert state_of(at, 1) == RECONNECTING
    # Waited for past any bound, so that a device that blocks (KD-20) answers, not goes silent.
    response, took = timed_close(at, 1, timeout=margins.wsopen_answer_timeout(0))
    response.expect(b"OK")
    message = (f"AT+WSCLOSE of a link whose reconnect handshake the server never answers "
               f"(state {RECONNECTING}) answered after {took:.2f} s; expected within "
               f"{margins.WSCLOSE_WAITING_ANSWER_S:g} s")
    since_attempt = attempt.opened_at and time.monotonic() - attempt.opened_at
    ends_with_attempt = any(
        lo <= since_attempt <= hi for lo, hi in map(margins.open_timeout_bounds,
                                                     margins.KD2_ERROR_S))
    if took > margins.WSCLOSE_WAITING_ANSWER_S and ends_with_attempt:
        with deviation("WSCLOSE.waiting"):       # KD-20: it waits for the library's attempt
            raise AssertionError(f"{message}: OK came {since_attempt:.2f} s after the attempt "
                                 f"began, when the library's own attempt ended (or half a "
                                 f"reconnect wait after it)")
    assert took <= margins.WSCLOSE_WAITING_ANSWER_S, message
    ws_endpoint.wait_disconnect(timeout=margins.TCP_GONE_S)
    assert not attempt.is_open, "the stalled reconnect attempt was left open"
    attempts = len(ws_endpoint.connections)
    at.expect_no_urc(b"+WS_CONNECTED", 1, within=margins.NO_RECONNECT_WATCH_S)
    at.expect_no_urc(b"+WS_DISCONNECTED", 1, within=0)
    assert len(ws_endpoint.connections) == attempts, "after AT+WSCLOSE the device tried again"
    assert 1 not in link_states(at)


@pytest.mark.clause("WSCLOSE.no_link")
def test_close_of_an_id_with_no_link_changes_nothing(at, connected, ws_endpoint, new_endpoint):
    connection = connected(0)
    configure(at, 1, *with_buffer(WITNESS_BUFFER))
    before = link_states(at)
    response = at.cmd(wsclose(2), timeout=margins.WSCLOSE_ANSWER_S)
    assert response.final in (b"OK", b"ERROR") and not response.lines, response.received
    links_unchanged(at, before)
    assert connection.is_open, "AT+WSCLOSE of an unused id closed another link's connection"
    in_force = buffer_size_in_force(at, new_endpoint("link1"), 1)
    assert in_force == WITNESS_BUFFER, (
        f"AT+WSCLOSE=2 (no link) changed link 1's configuration: buffer {in_force}, was "
        f"{WITNESS_BUFFER}")


@pytest.mark.clause("WSCLOSE.set")
def test_close_of_one_link_leaves_the_others(at, connected, new_endpoint):
    endpoints = [new_endpoint("a"), new_endpoint("b")]
    connected(0, endpoint=endpoints[0])
    connected(2, endpoint=endpoints[1])
    at.cmd(wsclose(0), timeout=margins.WSCLOSE_ANSWER_S).expect(b"OK")
    endpoints[0].wait_disconnect(timeout=margins.TCP_GONE_S)
    assert state_of(at, 2) == ESTABLISHED
    assert endpoints[1].connections[0].is_open
    at.cmd(wsopen(0, endpoints[0].url), timeout=wsopen_answer_timeout(None)).expect(b"OK")
