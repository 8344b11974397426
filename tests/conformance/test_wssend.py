"""AT+WSSEND: the prompt flow, SEND OK, and the frame the server receives."""
import pytest

from esp_at.commands import wssend
from wire.frames import OP_TEXT

SERVER_WAIT_S = 5.0


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


@pytest.mark.clause("WSSEND.opcode.default")
def test_default_opcode_is_text(at, connected, ws_endpoint):
    connected(0)
    at.send_data(wssend(0, 4), b"text").expect(b"SEND OK")
    recorded = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode < 8, timeout=SERVER_WAIT_S)
    assert recorded.frame.opcode == OP_TEXT and recorded.frame.payload == b"text"
