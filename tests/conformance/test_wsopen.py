"""AT+WSOPEN: opening a link, its URCs, and the query form."""
import pytest

import spec
from esp_at.commands import WSOPEN_QUERY, wsopen

from fixtures.links import link_states, open_link, wsopen_answer_timeout

SPEC = spec.load()


@pytest.mark.clause("WSOPEN.query.none")
def test_query_without_connection_answers_only_ok(at):
    at.cmd(WSOPEN_QUERY).expect(b"OK", lines=[])


@pytest.mark.clause("WSOPEN.set.connected")
def test_open_prints_connected_then_ok(at, ws_endpoint):
    response = at.cmd(wsopen(0, ws_endpoint.url), timeout=wsopen_answer_timeout(None))
    response.expect(b"OK", lines=[])
    # +WS_CONNECTED:0 must come before the OK: it is in the bytes received before the final.
    received = response.received
    assert b"+WS_CONNECTED:0\r\n" in received, (
        f"no +WS_CONNECTED:0 before OK; received {received!r}")
    assert received.index(b"+WS_CONNECTED:0\r\n") < received.rindex(b"\r\nOK\r\n")
    ws_endpoint.wait_connection(timeout=5)


@pytest.mark.clause("WSOPEN.query.format", "WSOPEN.state.established")
@pytest.mark.parametrize("link_id", [0, 2])
def test_query_lists_established_link(at, ws_endpoint, link_id):
    open_link(at, link_id, ws_endpoint.url)
    response = at.cmd(WSOPEN_QUERY)
    expected = f'+WSOPEN:{link_id},2,"{ws_endpoint.url}"'.encode()
    response.expect(b"OK", lines=[expected])
