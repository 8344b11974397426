"""The opening handshake as RFC 6455 4.1 requires it of a client, with server responses written
by hand: status, subprotocol check, a large response, and data right behind the 101."""
import time

import pytest

from esp_at.commands import wsopen
from wire.frames import OP_TEXT, encode_frame
from wire.handshake import accept_for

from fixtures.links import command_in_background, link_states, open_link, wsopen_answer_timeout

SERVER_WAIT_S = 5.0
OPEN_TIMEOUT_MS = 5000
DATA_AFTER_HANDSHAKE_S = 1.0     # "at once": well inside the first ping interval (10 s default)


def answer_by_hand(at, endpoint, status_line: bytes, headers: list[bytes], after: bytes = b"",
                   subprotocol: str | None = None):
    """AT+WSOPEN against a stalled endpoint, then the given response with the correct accept key;
    returns the device's answer to AT+WSOPEN."""
    endpoint.stall_handshake()
    pending = command_in_background(at, wsopen(0, endpoint.url, subprotocol, OPEN_TIMEOUT_MS),
                                    wsopen_answer_timeout(OPEN_TIMEOUT_MS))
    key = endpoint.wait_connection(timeout=SERVER_WAIT_S).header("Sec-WebSocket-Key")
    head = [status_line, b"Upgrade: websocket", b"Connection: Upgrade",
            b"Sec-WebSocket-Accept: " + accept_for(key).encode(), *headers]
    endpoint.send_raw(b"\r\n".join(head) + b"\r\n\r\n" + after)
    return pending.result()


@pytest.mark.clause("WSOPEN.handshake.status")
@pytest.mark.parametrize("status_line", [b"HTTP/1.1 200 OK", b"HTTP/1.1 302 Found"],
                         ids=["200", "302"])
def test_status_other_than_101_fails(at, ws_endpoint, status_line):
    response = answer_by_hand(at, ws_endpoint, status_line, [b"Content-Length: 0"])
    assert response.final == b"ERROR", (
        f"WSOPEN.handshake.status: the server answered {status_line!r} with a correct accept key; "
        f"RFC 6455 4.1 says the client fails the connection; received {response.received!r}")
    assert 0 not in link_states(at)


@pytest.mark.clause("WSOPEN.handshake.subprotocol_check")
def test_subprotocol_not_offered_fails(at, ws_endpoint):
    response = answer_by_hand(at, ws_endpoint, b"HTTP/1.1 101 Switching Protocols",
                              [b"Sec-WebSocket-Protocol: not-offered"], subprotocol="chat.v1")
    assert response.final == b"ERROR", (
        f"the server picked a subprotocol the device did not offer; RFC 6455 4.1 says fail; "
        f"received {response.received!r}")


@pytest.mark.clause("WSOPEN.handshake.large_response")
def test_large_101_response_is_accepted(at, ws_endpoint):
    padding = [b"X-Padding-%02d: %s" % (i, b"p" * 90) for i in range(11)]
    response = answer_by_hand(at, ws_endpoint, b"HTTP/1.1 101 Switching Protocols", padding)
    assert response.final == b"OK", (
        f"a valid 101 of about {sum(len(p) + 2 for p in padding) + 150} bytes was refused: "
        f"{response.received!r}")
    at.wait_urc(b"+WS_CONNECTED", 0)


@pytest.mark.clause("WSOPEN.handshake.data_after")
def test_message_right_behind_the_101_is_reported_at_once(at, ws_endpoint):
    greeting = b"hello right behind the handshake"
    ws_endpoint.on_connect_send(text=greeting)
    open_link(at, 0, ws_endpoint.url)
    connected_at = time.monotonic()
    chunks = at.wait_ws_data(0, len(greeting), timeout=DATA_AFTER_HANDSHAKE_S)
    assert b"".join(chunks) == greeting
    assert time.monotonic() - connected_at <= DATA_AFTER_HANDSHAKE_S


@pytest.mark.clause("WSOPEN.handshake.data_after")
def test_frames_in_the_same_write_as_a_hand_made_101(at, ws_endpoint):
    after = encode_frame(OP_TEXT, b"one") + encode_frame(OP_TEXT, b"two")
    response = answer_by_hand(at, ws_endpoint, b"HTTP/1.1 101 Switching Protocols", [], after)
    response.expect(b"OK")
    assert at.wait_ws_data(0, 6, timeout=DATA_AFTER_HANDSHAKE_S) == [b"one", b"two"]
