"""AT+WSOPEN: opening a link, its URCs to the byte, failures and what follows them, parameters,
the request on the wire, and the query form."""
import socket
import time

import pytest

import spec
from esp_at.commands import WSOPEN_QUERY, quote, wsopen, wssend

from wire.frames import OP_TEXT

from fixtures import margins
from fixtures.run_record import observe
from fixtures.timeline import timed
from fixtures.links import (command_in_background, link_states, open_link, send_ok, state_of,
                            wsopen_answer_timeout)
from fixtures.verdicts import check, deviation
from tests.conformance.observe import ERROR, OK, exact_answer
from tests.conformance.ranges import range_cases

SPEC = spec.load()
LINK_IDS = tuple(range(SPEC.bounds("AT+WSOPEN", "link_id")[1] + 1))   # every link at once
ESTABLISHED = SPEC.state("established")


@pytest.mark.clause("WSOPEN.query.none")
def test_query_without_connection_answers_only_ok(at):
    exact_answer(at.cmd(WSOPEN_QUERY), OK, "WSOPEN.query.none")


@pytest.mark.clause("WSOPEN.set.connected")
def test_open_prints_connected_once_then_ok(at, ws_endpoint):
    response = at.cmd(wsopen(0, ws_endpoint.url), timeout=wsopen_answer_timeout(None))
    echo = response.command + b"\r\n"
    # +WS_CONNECTED:0 is a line of its own before the OK; whether an empty line precedes a URC
    # is not significant (BEHAVIOUR.md Exact bytes).
    allowed = [echo + b"+WS_CONNECTED:0\r\n" + OK, echo + b"\r\n+WS_CONNECTED:0\r\n" + OK]
    assert response.received in allowed, (
        f"sent {response.command!r}; expected {allowed[0]!r} (+WS_CONNECTED:0 once, then OK); "
        f"received {response.received!r}")
    at.wait_urc(b"+WS_CONNECTED", 0, timeout=0)
    at.expect_no_urc(b"+WS_CONNECTED", 0, within=margins.QUIET_S)
    with check("WSOPEN.set.connected"):
        ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S)


@pytest.mark.clause("WSOPEN.query.format", "WSOPEN.state.established")
@pytest.mark.parametrize("link_id", LINK_IDS)
def test_query_lists_established_link(at, ws_endpoint, link_id):
    open_link(at, link_id, ws_endpoint.url)
    line = f'+WSOPEN:{link_id},{ESTABLISHED},"{ws_endpoint.url}"\r\n'.encode()
    exact_answer(at.cmd(WSOPEN_QUERY), line + OK, "WSOPEN.query.format")


@pytest.mark.clause("WSOPEN.query.format")
def test_query_lists_every_link_in_id_order(at, new_endpoint):
    endpoints = {link_id: new_endpoint(f"link{link_id}") for link_id in (2, 0)}
    for link_id, endpoint in endpoints.items():
        open_link(at, link_id, endpoint.url)
    lines = [f'+WSOPEN:{i},{ESTABLISHED},"{endpoints[i].url}"'.encode() for i in (0, 2)]
    at.cmd(WSOPEN_QUERY).expect(b"OK", lines=lines)


def free_tcp_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def assert_failed_open(at, link_id, response):
    """ERROR, optionally preceded by +WS_DISCONNECTED:<link_id>; no +WS_CONNECTED; no link left."""
    response.expect(b"ERROR")
    for event in at.urc_history:
        name = getattr(event, "name", None)
        assert name != b"+WS_CONNECTED", f"failed open printed +WS_CONNECTED: {response.received!r}"
        assert name in (None, b"+WS_DISCONNECTED") and getattr(event, "link_id", link_id) == link_id, (
            f"a failed open printed {event}; only +WS_DISCONNECTED:{link_id} may come before ERROR")
    assert link_id not in link_states(at), "a failed AT+WSOPEN left the link behind"


@pytest.mark.clause("WSOPEN.set.error")
@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 500])
def test_refused_handshake_answers_error(at, ws_endpoint, status):
    ws_endpoint.refuse_handshake(status)
    response = at.cmd(wsopen(0, ws_endpoint.url), timeout=wsopen_answer_timeout(None))
    assert_failed_open(at, 0, response)


@pytest.mark.clause("WSOPEN.set.error")
def test_refused_tcp_connection_answers_error(at, ws_server):
    url = f"ws://{ws_server.host}:{free_tcp_port(ws_server.host)}/nothing-listens-here"
    response = at.cmd(wsopen(1, url, timeout_ms=3000), timeout=wsopen_answer_timeout(3000))
    assert_failed_open(at, 1, response)


@pytest.mark.clause("WSOPEN.set.error")
@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
], ids=["wrong-accept-key", "no-accept-key", "not-http"])
def test_broken_handshake_answers_error(at, ws_endpoint, answer):
    # RFC 6455 4.1: a client fails the connection when the response is not a valid upgrade.
    ws_endpoint.stall_handshake()
    pending = command_in_background(at, wsopen(0, ws_endpoint.url, timeout_ms=5000),
                                    wsopen_answer_timeout(5000))
    with check("WSOPEN.set.connected"):
        ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S)
    ws_endpoint.send_raw(answer)
    assert_failed_open(at, 0, pending.result())


@pytest.mark.clause("WSOPEN.set.error")
def test_reset_during_the_handshake_answers_error(at, ws_endpoint):
    ws_endpoint.stall_handshake()
    pending = command_in_background(at, wsopen(2, ws_endpoint.url, timeout_ms=5000),
                                    wsopen_answer_timeout(5000))
    with check("WSOPEN.set.connected"):
        ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S)
    ws_endpoint.send_raw(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs")
    ws_endpoint.drop()
    assert_failed_open(at, 2, pending.result())


@pytest.mark.slow
@pytest.mark.clause("WSOPEN.failed.quiet")
def test_no_urc_and_no_retry_after_a_failed_open(at, ws_endpoint):
    """FD F3: a failed open must not leave a client retrying in the background. Watched for 30 s,
    two reconnect waits and more."""
    ws_endpoint.refuse_handshake(403)
    response = at.cmd(wsopen(0, ws_endpoint.url), timeout=wsopen_answer_timeout(None))
    response.expect(b"ERROR")
    attempts = len(ws_endpoint.connections)
    at.drain()                                   # a +WS_DISCONNECTED:0 before ERROR is allowed
    with check("WSOPEN.failed.quiet"):
        at.expect_no_urc(b"+WS_DISCONNECTED", 0, within=30.0)
        at.expect_no_urc(b"+WS_CONNECTED", 0, within=0)
        assert len(ws_endpoint.connections) == attempts, (
            f"after the failed AT+WSOPEN the device tried {len(ws_endpoint.connections) - attempts} "
            f"more time(s)")
        assert 0 not in link_states(at)


@pytest.mark.clause("WSOPEN.set.already_open")
def test_open_on_existing_link_answers_error(at, connected, ws_endpoint, new_endpoint):
    first = connected(0)
    other = new_endpoint("other")
    at.cmd(wsopen(0, other.url), timeout=wsopen_answer_timeout(None)).expect(b"ERROR")
    assert state_of(at, 0) == ESTABLISHED, "the existing link did not stay established"
    assert first.is_open, "the existing connection was dropped"
    assert not other.connections, "a second connection was made for an existing link"
    send_ok(at, 0, b"still here")
    still = ws_endpoint.wait_frame(lambda rf: rf.frame.payload == b"still here")
    assert still.frame.opcode == OP_TEXT


@pytest.mark.clause("WSOPEN.links.three")
def test_three_links_at_once_keep_their_data_apart(at, new_endpoint):
    endpoints = [new_endpoint(f"link{i}") for i in LINK_IDS]
    for link_id, endpoint in enumerate(endpoints):
        open_link(at, link_id, endpoint.url)
    states = link_states(at)
    assert sorted(states) == list(LINK_IDS) and all(s == ESTABLISHED for s, _ in states.values()), \
        states
    for link_id in LINK_IDS:
        send_ok(at, link_id, f"to link {link_id}".encode())
    for link_id in LINK_IDS:
        payload = f"to link {link_id}".encode()
        assert b"".join(at.wait_ws_data(link_id, len(payload),
                                        timeout=margins.SERVER_SEES_IT_S)) == payload
        frames = endpoints[link_id].frames
        assert [rf.frame.payload for rf in frames if rf.frame.opcode == OP_TEXT] == [payload]
    for link_id in reversed(LINK_IDS):           # and from the server, in another order
        endpoints[link_id].send_binary(b"from server %d" % link_id)
        assert at.wait_ws_data(link_id, 13, timeout=margins.SERVER_SEES_IT_S) == \
            [b"from server %d" % link_id]


@pytest.mark.clause("WSOPEN.uri.request")
def test_request_target_host_and_headers(at, ws_endpoint):
    query = "a=1&b=x%20y&notify_self"
    open_link(at, 0, f"{ws_endpoint.url}?{query}")
    with check("WSOPEN.set.connected"):
        handshake = ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S).handshake
    assert handshake.method == "GET"
    assert handshake.path == ws_endpoint.path and handshake.query == query, handshake
    headers = {name.lower(): value for name, value in handshake.headers}
    observe("handshake header order", ", ".join(name for name, _ in handshake.headers))
    assert headers.get("host") == f"{ws_endpoint.host}:{ws_endpoint.port}", (
        f"Host must carry the port (BEHAVIOUR.md Opening): {handshake.headers}")
    # RFC 9110: the order of header fields is not significant, so it is not checked.
    for required in ("upgrade", "connection", "sec-websocket-key", "sec-websocket-version"):
        assert required in headers, f"handshake lacks {required}: {handshake.headers}"
    assert headers["upgrade"].lower() == "websocket" and headers["sec-websocket-version"] == "13"


@pytest.mark.clause("WSOPEN.uri.request")
@pytest.mark.parametrize("suffix,target", [("", "/"), ("?x=1", "/?x=1")], ids=["bare", "query"])
def test_uri_without_a_path_requests_slash(at, new_endpoint, suffix, target):
    root = new_endpoint("root", path="/")
    open_link(at, 0, f"ws://{root.host}:{root.port}{suffix}")
    with check("WSOPEN.set.connected"):
        handshake = root.wait_connection(timeout=margins.SERVER_SEES_IT_S).handshake
    assert handshake.path + ("?" + handshake.query if handshake.query else "") == target, handshake


@pytest.mark.clause("WSOPEN.subprotocol")
def test_subprotocol_is_offered(at, ws_endpoint):
    ws_endpoint.require_subprotocol("chat.v1")
    open_link(at, 0, ws_endpoint.url, subprotocol="chat.v1")
    connection = ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S)
    assert connection.header("Sec-WebSocket-Protocol") == "chat.v1", connection.handshake


@pytest.mark.clause("WSOPEN.subprotocol")
def test_no_subprotocol_no_header(at, ws_endpoint):
    open_link(at, 0, ws_endpoint.url)
    connection = ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S)
    # AMBIGUITIES O-5: no header, or an empty one.
    assert connection.header("Sec-WebSocket-Protocol") in (None, ""), connection.handshake


def wsopen_range_command(param: str, value: int, url: str) -> str:
    values = dict(link_id=0, timeout_ms=None)
    values[param] = value
    return wsopen(values["link_id"], url, timeout_ms=values["timeout_ms"])


@pytest.mark.parametrize("case", range_cases(SPEC, "AT+WSOPEN"))
def test_parameter_range(at, ws_endpoint, profile, case):
    value = case.value(profile)
    command = wsopen_range_command(case.param, value, ws_endpoint.url)
    response = at.cmd(command, timeout=wsopen_answer_timeout(None))
    link_id = value if case.param == "link_id" else 0
    if not case.in_range:
        exact_answer(response, ERROR, case.clause)
        assert not ws_endpoint.connections, "an out-of-range AT+WSOPEN still connected"
        assert link_states(at) == {}, "an out-of-range AT+WSOPEN left a link"
        return
    if case.param == "timeout_ms" and value == 0 and refused_by_range(at, ws_endpoint, response):
        with deviation(case.clause):             # KD-1: shipping firmware checks [1,180000]
            response.expect(b"OK")
    response.expect(b"OK")
    at.wait_urc(b"+WS_CONNECTED", link_id, timeout=0)
    with check("WSOPEN.set.connected"):
        ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S)
    assert state_of(at, link_id) == ESTABLISHED


def refused_by_range(at, endpoint, response) -> bool:
    """KD-1's signature: ERROR at once, as a range check answers: no connection was tried."""
    return response.final == b"ERROR" and not endpoint.connections and not any(
        getattr(e, "name", None) == b"+WS_DISCONNECTED" for e in at.urc_history)


@pytest.mark.clause("WSOPEN.timeout_ms.range")
def test_empty_timeout_is_the_default(at, ws_endpoint):
    # The seed's [,<timeout_ms>] may be written empty; the default applies (AMBIGUITIES P-3). The
    # subprotocol is given (empty: none), so only the timeout field is empty.
    response = at.cmd(f'AT+WSOPEN=0,{quote(ws_endpoint.url)},"",',
                      timeout=wsopen_answer_timeout(None))
    if refused_by_range(at, ws_endpoint, response):
        with deviation("WSOPEN.timeout_ms.range"):   # KD-1: an empty field answers ERROR
            response.expect(b"OK")
    response.expect(b"OK")
    at.wait_urc(b"+WS_CONNECTED", 0, timeout=0)


def timed_open_against_silent_server(at, endpoint, timeout_ms):
    """(the answer, how long it took, when +WS_DISCONNECTED came or None), from AT+WSOPEN."""
    endpoint.stall_handshake()
    started = time.monotonic()
    response = at.cmd(wsopen(0, endpoint.url, timeout_ms=timeout_ms),
                      timeout=wsopen_answer_timeout(timeout_ms))
    took = time.monotonic() - started
    timed("open timeout", started, margins.open_timeout_bounds(timeout_ms / 1000), started + took,
          f"timeout_ms {timeout_ms}, from AT+WSOPEN to its ERROR")
    urc_after = next((t - started for e, t in zip(at.urc_history, at.urc_times)
                      if getattr(e, "name", None) == b"+WS_DISCONNECTED" and t >= started), None)
    return response, took, urc_after


def kd2_like(took: float, urc_after: float | None) -> bool:
    """KD-2's signature against a silent host: the library's own attempt gives up after its
    network timeout (+WS_DISCONNECTED then), and ERROR comes then (1.8.0) or half a reconnect
    wait after it (1.2.3), whatever timeout_ms said."""
    lo, hi = margins.open_timeout_bounds(margins.KD2_ERROR_S[0])
    return (urc_after is not None and lo <= urc_after <= hi
            and any(lo <= took <= hi for lo, hi in map(margins.open_timeout_bounds,
                                                       margins.KD2_ERROR_S)))


@pytest.mark.timer
@pytest.mark.clause("WSOPEN.timeout_ms.effect")
def test_timeout_ms_bounds_the_wait_for_a_silent_server(at, ws_endpoint):
    timeout_s = 2.0
    response, took, urc_after = timed_open_against_silent_server(at, ws_endpoint,
                                                                 int(timeout_s * 1000))
    response.expect(b"ERROR")
    lo, hi = margins.open_timeout_bounds(timeout_s)
    if took > hi and kd2_like(took, urc_after):
        with deviation("WSOPEN.timeout_ms.effect"):
            raise AssertionError(
                f"timeout_ms {timeout_s * 1000:g} against a server that never answers: ERROR came "
                f"after {took:.2f} s, when the library's own {margins.KD2_ERROR_S[0]:g} s attempt "
                f"ended (or half a reconnect wait after it: KD-2); expected {lo:.2f}-{hi:.2f} s")
    assert lo <= took <= hi, (
        f"timeout_ms {timeout_s * 1000:g} against a server that never answers the handshake; "
        f"expected ERROR after {lo:.2f}-{hi:.2f} s; ERROR came after {took:.2f} s")


# A server that answers the upgrade this long after the request: inside the default timeout, and
# past the library's own 10 s attempt (KD-2).
LATE_ANSWER_S = 12.0


@pytest.mark.slow
@pytest.mark.timer
@pytest.mark.clause("WSOPEN.timeout_ms.default")
def test_default_open_timeout_holds(at, ws_endpoint):
    """With no timeout_ms the device keeps trying for 15 s: a server that answers the handshake
    after 12 s is connected."""
    default_s = SPEC.default("AT+WSOPEN", "timeout_ms") / 1000
    ws_endpoint.accept_handshake(after_s=LATE_ANSWER_S)
    started = time.monotonic()
    pending = command_in_background(at, wsopen(0, ws_endpoint.url), wsopen_answer_timeout(None))
    try:                                         # when the attempt is given up, if it is said
        at.wait_urc(b"+WS_DISCONNECTED", 0, timeout=LATE_ANSWER_S + margins.AT_ONCE_S)
        urc_after = time.monotonic() - started
    except AssertionError:
        urc_after = None
    response = pending.result()
    took = time.monotonic() - started
    lo, hi = LATE_ANSWER_S - margins.HOST_SCHEDULING_S, margins.open_timeout_bounds(default_s)[1]
    timed("open answered", started, (lo, hi), started + took,
          f"no timeout_ms (the default {default_s:g} s), the server answering after "
          f"{LATE_ANSWER_S:g} s: OK once it did")
    message = (f"no timeout_ms, a server that answers the handshake after {LATE_ANSWER_S:g} s "
               f"(inside the default {default_s:g} s): {response.final!r} after {took:.2f} s"
               + (f", +WS_DISCONNECTED after {urc_after:.2f} s" if urc_after is not None else ""))
    if response.final == b"ERROR" and kd2_like(took, urc_after):
        # KD-2's signature: the library's own 10 s attempt gave up (+WS_DISCONNECTED), and with
        # it the open (ERROR then, or half a reconnect wait later).
        with deviation("WSOPEN.timeout_ms.default"):
            raise AssertionError(f"{message}: the library's own {margins.KD2_ERROR_S[0]:g} s "
                                 f"attempt gave up (KD-2)")
    assert response.final == b"OK" and lo <= took <= hi, (
        f"{message}; expected OK after {lo:.2f}-{hi:.2f} s")
    at.wait_urc(b"+WS_CONNECTED", 0, timeout=0)


@pytest.mark.slow
@pytest.mark.timer
@pytest.mark.clause("WSOPEN.timeout_ms.default")
def test_default_timeout_gives_up_on_a_silent_server(at, ws_endpoint):
    """With no timeout_ms a server that never answers gets ERROR no later than the default (an
    earlier end is the other test's: it fails there)."""
    default_s = SPEC.default("AT+WSOPEN", "timeout_ms") / 1000
    ws_endpoint.stall_handshake()
    started = time.monotonic()
    response = at.cmd(wsopen(0, ws_endpoint.url), timeout=wsopen_answer_timeout(None))
    took = time.monotonic() - started
    hi = margins.open_timeout_bounds(default_s)[1]
    timed("open gave up", started, (0.0, hi), started + took,
          f"no timeout_ms: ERROR by the default {default_s:g} s")
    response.expect(b"ERROR")
    assert took <= hi, (f"no timeout_ms against a server that never answers: ERROR after "
                        f"{took:.2f} s; expected by {hi:.2f} s (default {default_s:g} s)")


@pytest.mark.clause("WSOPEN.uri.wss")
def test_wss_uri_opens_over_tls(at, wss_endpoint):
    assert wss_endpoint.url.startswith("wss://")
    open_link(at, 1, wss_endpoint.url)
    with check("WSOPEN.set.connected"):
        handshake = wss_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S).handshake
    assert handshake.path == wss_endpoint.path
    at.cmd(WSOPEN_QUERY).expect(b"OK", lines=[f'+WSOPEN:1,{ESTABLISHED},"{wss_endpoint.url}"'.encode()])
    payload = b"over tls \x00\xff"
    send_ok(at, 1, payload, 2)
    assert b"".join(at.wait_ws_data(1, len(payload), timeout=margins.SERVER_SEES_IT_S)) == payload


@pytest.mark.clause("WSOPEN.set.connected")
def test_send_works_right_after_open(at, ws_endpoint):
    ws_endpoint.echo = False
    open_link(at, 0, ws_endpoint.url)
    at.send_data(wssend(0, 5), b"first").expect(b"SEND OK")
    assert ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == OP_TEXT).frame.payload == b"first"
