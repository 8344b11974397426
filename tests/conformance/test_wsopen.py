"""AT+WSOPEN: opening a link, its URCs, failures, parameters, and the query form."""
import socket
import time

import pytest

import spec
from esp_at.commands import WSOPEN_QUERY, wsopen, wssend

from fixtures.links import command_in_background, link_states, open_link, wsopen_answer_timeout
from tests.conformance.ranges import range_cases

SPEC = spec.load()
SERVER_WAIT_S = 5.0
# How far the answer to AT+WSOPEN may come after timeout_ms: the firmware's loop granularity and
# the host's scheduling. A stated margin, not a fudge: KD-2 is about 8 s, well outside it.
TIMEOUT_MARGIN_S = 1.5


@pytest.mark.clause("WSOPEN.query.none")
def test_query_without_connection_answers_only_ok(at):
    at.cmd(WSOPEN_QUERY).expect(b"OK", lines=[])


@pytest.mark.clause("WSOPEN.set.connected")
def test_open_prints_connected_then_ok(at, ws_endpoint):
    response = at.cmd(wsopen(0, ws_endpoint.url), timeout=wsopen_answer_timeout(None))
    response.expect(b"OK", lines=[])
    received = response.received
    # +WS_CONNECTED:0 must come before the OK that ends the command.
    assert b"+WS_CONNECTED:0\r\n" in received, (
        f"WSOPEN.set.connected: sent {response.command!r}; expected +WS_CONNECTED:0 then OK; "
        f"received {received!r}")
    assert received.index(b"+WS_CONNECTED:0\r\n") < received.rindex(b"\r\nOK\r\n"), received
    ws_endpoint.wait_connection(timeout=SERVER_WAIT_S)


@pytest.mark.clause("WSOPEN.query.format", "WSOPEN.state.established")
@pytest.mark.parametrize("link_id", [0, 1, 2])
def test_query_lists_established_link(at, ws_endpoint, link_id):
    open_link(at, link_id, ws_endpoint.url)
    expected = f'+WSOPEN:{link_id},2,"{ws_endpoint.url}"'.encode()
    at.cmd(WSOPEN_QUERY).expect(b"OK", lines=[expected])


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
    assert link_id not in link_states(at), "a failed AT+WSOPEN left the link behind"


@pytest.mark.clause("WSOPEN.set.error")
@pytest.mark.parametrize("status", [400, 403, 404, 500])
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
def test_wrong_accept_key_answers_error(at, ws_endpoint):
    # RFC 6455 4.1: a client must fail the connection when Sec-WebSocket-Accept is wrong.
    ws_endpoint.stall_handshake()
    pending = command_in_background(at, wsopen(0, ws_endpoint.url, timeout_ms=5000),
                                    wsopen_answer_timeout(5000))
    ws_endpoint.wait_connection(timeout=SERVER_WAIT_S)
    ws_endpoint.send_raw(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")
    assert_failed_open(at, 0, pending.result())


@pytest.mark.clause("WSOPEN.set.already_open")
def test_open_on_existing_link_answers_error(at, connected, ws_endpoint, new_endpoint):
    first = connected(0)
    other = new_endpoint("other")
    at.cmd(wsopen(0, other.url), timeout=wsopen_answer_timeout(None)).expect(b"ERROR")
    assert link_states(at).get(0, (None,))[0] == 2, "the existing link did not stay established"
    assert first.is_open, "the existing connection was dropped"
    assert not other.connections, "a second connection was made for an existing link"


@pytest.mark.clause("WSOPEN.links.three")
def test_three_links_at_once_keep_their_data_apart(at, new_endpoint):
    endpoints = [new_endpoint(f"link{i}") for i in range(3)]
    for link_id, endpoint in enumerate(endpoints):
        open_link(at, link_id, endpoint.url)
    states = link_states(at)
    assert sorted(states) == [0, 1, 2] and all(s == 2 for s, _ in states.values()), states
    for link_id in range(3):
        payload = f"to link {link_id}".encode()
        at.send_data(wssend(link_id, len(payload)), payload).expect(b"SEND OK")
    for link_id in range(3):
        assert b"".join(at.wait_ws_data(link_id, 9, timeout=SERVER_WAIT_S)) == \
            f"to link {link_id}".encode()
        frames = endpoints[link_id].frames
        assert [rf.frame.payload for rf in frames if rf.frame.opcode == 1] == \
            [f"to link {link_id}".encode()]


@pytest.mark.clause("WSOPEN.uri.request")
def test_request_target_host_and_headers(at, ws_endpoint):
    query = "a=1&b=x%20y&notify_self"
    open_link(at, 0, f"{ws_endpoint.url}?{query}")
    handshake = ws_endpoint.wait_connection(timeout=SERVER_WAIT_S).handshake
    assert handshake.method == "GET"
    assert handshake.path == ws_endpoint.path and handshake.query == query, handshake
    names = [name.lower() for name, _ in handshake.headers]
    assert dict((n.lower(), v) for n, v in handshake.headers)["host"] == \
        f"{ws_endpoint.host}:{ws_endpoint.port}", "Host must carry the port (BEHAVIOUR.md Opening)"
    for required in ("upgrade", "connection", "sec-websocket-key", "sec-websocket-version"):
        assert required in names, f"handshake lacks {required}: {handshake.headers}"
    # BEHAVIOUR.md: the firmware's header order.
    firmware_order = ["connection", "host", "user-agent", "upgrade", "sec-websocket-version",
                      "sec-websocket-key"]
    assert [n for n in names if n in firmware_order] == firmware_order, handshake.headers


@pytest.mark.clause("WSOPEN.subprotocol")
def test_subprotocol_is_offered(at, ws_endpoint):
    ws_endpoint.require_subprotocol("chat.v1")
    open_link(at, 0, ws_endpoint.url, subprotocol="chat.v1")
    connection = ws_endpoint.wait_connection(timeout=SERVER_WAIT_S)
    assert connection.header("Sec-WebSocket-Protocol") == "chat.v1"


def wsopen_range_command(case, url):
    values = dict(link_id=0, timeout_ms=None)
    values[case.param] = case.value
    return wsopen(values["link_id"], url, timeout_ms=values["timeout_ms"])


@pytest.mark.parametrize("case", range_cases(SPEC, "AT+WSOPEN"))
def test_parameter_range(at, ws_endpoint, case):
    command = wsopen_range_command(case, ws_endpoint.url)
    response = at.cmd(command, timeout=wsopen_answer_timeout(None))
    if case.in_range:
        response.expect(b"OK")
        at.wait_urc(b"+WS_CONNECTED")
    else:
        response.expect(b"ERROR")
        assert not ws_endpoint.connections, "an out-of-range AT+WSOPEN still connected"


def timed_open_against_silent_server(at, endpoint, timeout_ms):
    endpoint.stall_handshake()
    started = time.monotonic()
    response = at.cmd(wsopen(0, endpoint.url, timeout_ms=timeout_ms),
                      timeout=wsopen_answer_timeout(timeout_ms))
    return response, time.monotonic() - started


@pytest.mark.clause("WSOPEN.timeout_ms.effect")
def test_timeout_ms_bounds_the_wait_for_a_silent_server(at, ws_endpoint):
    response, took = timed_open_against_silent_server(at, ws_endpoint, 2000)
    response.expect(b"ERROR")
    assert 2.0 - 0.1 <= took <= 2.0 + TIMEOUT_MARGIN_S, (
        f"WSOPEN.timeout_ms.effect: timeout_ms 2000 against a server that never answers the "
        f"handshake; expected ERROR after 2.0 s (+{TIMEOUT_MARGIN_S} s); ERROR came after {took:.2f} s")


@pytest.mark.slow
@pytest.mark.clause("WSOPEN.timeout_ms.default")
def test_default_timeout_is_15_s(at, ws_endpoint):
    default_s = SPEC.param("AT+WSOPEN", "timeout_ms").default / 1000
    endpoint = ws_endpoint
    endpoint.stall_handshake()
    started = time.monotonic()
    response = at.cmd(wsopen(0, endpoint.url), timeout=wsopen_answer_timeout(None))
    took = time.monotonic() - started
    response.expect(b"ERROR")
    assert default_s - 0.1 <= took <= default_s + TIMEOUT_MARGIN_S, (
        f"WSOPEN.timeout_ms.default: no timeout_ms against a silent server; expected ERROR after "
        f"{default_s:g} s; came after {took:.2f} s")


@pytest.mark.clause("WSOPEN.uri.wss")
def test_wss_uri_opens_over_tls(at, wss_endpoint):
    assert wss_endpoint.url.startswith("wss://")
    open_link(at, 1, wss_endpoint.url)
    assert wss_endpoint.wait_connection(timeout=SERVER_WAIT_S).handshake.path == wss_endpoint.path
    at.cmd(WSOPEN_QUERY).expect(b"OK", lines=[f'+WSOPEN:1,2,"{wss_endpoint.url}"'.encode()])
    payload = b"over tls \x00\xff"
    at.send_data(wssend(1, len(payload), 2), payload).expect(b"SEND OK")
    assert b"".join(at.wait_ws_data(1, len(payload), timeout=SERVER_WAIT_S)) == payload
