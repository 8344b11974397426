"""AT+WSCLOSE: closing a link."""
import pytest

from esp_at.commands import WSOPEN_QUERY, wsclose

from fixtures.links import link_states

SERVER_WAIT_S = 5.0


@pytest.mark.clause("WSCLOSE.set")
def test_close_answers_ok_and_link_is_gone(at, connected, ws_endpoint):
    connected(1)
    at.cmd(wsclose(1), timeout=7).expect(b"OK", lines=[])
    ws_endpoint.wait_disconnect(timeout=SERVER_WAIT_S)
    states = link_states(at)
    assert states.get(1, (0,))[0] == 0, f"link 1 still listed after AT+WSCLOSE: {states}"
