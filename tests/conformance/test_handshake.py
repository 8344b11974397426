"""The opening handshake as RFC 6455 4.1 requires it of a client, with server responses written
by hand: status, subprotocol check, header case, large responses, and data right behind the 101.
Each known deviation (KD-6, KD-7, KD-9) is labelled only when the device did what that deviation
does."""

import pytest

from esp_at.commands import wsopen
from wire.frames import OP_TEXT, encode_frame
from wire.handshake import accept_for

from fixtures import margins
from fixtures.links import command_in_background, link_states, open_link, wsopen_answer_timeout
from fixtures.verdicts import check, deviation

OPEN_TIMEOUT_MS = 5000
SWITCHING = b"HTTP/1.1 101 Switching Protocols"


def answer_by_hand(at, endpoint, status_line: bytes, headers: list[bytes], after: bytes = b"",
                   subprotocol: str | None = None, names=(b"Upgrade", b"Connection",
                                                          b"Sec-WebSocket-Accept")):
    """AT+WSOPEN against a stalled endpoint, then the given response with the correct accept key;
    returns the device's answer to AT+WSOPEN."""
    endpoint.stall_handshake()
    pending = command_in_background(at, wsopen(0, endpoint.url, subprotocol, OPEN_TIMEOUT_MS),
                                    wsopen_answer_timeout(OPEN_TIMEOUT_MS))
    with check("WSOPEN.set.connected"):
        key = endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S).header("Sec-WebSocket-Key")
    upgrade, connection, accept = names          # a name None: that header is left out
    head = [status_line] + [name + value for name, value in (
        (upgrade, b": websocket"), (connection, b": Upgrade"),
        (accept, b": " + accept_for(key).encode())) if name is not None] + list(headers)
    endpoint.send_raw(b"\r\n".join(head) + b"\r\n\r\n" + after)
    return pending.result()


def connected_anyway(response) -> bool:
    """The device took the handshake (OK): what KD-7 and KD-9's opposites look like."""
    return response.final == b"OK"


ALL_HEADERS = (b"Upgrade", b"Connection", b"Sec-WebSocket-Accept")
# Responses with a correct Sec-WebSocket-Accept that are still no upgrade (RFC 6455 4.1): another
# status, or a 101 without Upgrade or without Connection (a None name leaves that header out).
NOT_AN_UPGRADE = {
    "200": (b"HTTP/1.1 200 OK", [b"Content-Length: 0"], ALL_HEADERS),
    "302": (b"HTTP/1.1 302 Found", [b"Content-Length: 0"], ALL_HEADERS),
    "101-without-upgrade": (SWITCHING, [], (None, b"Connection", b"Sec-WebSocket-Accept")),
    "101-without-connection": (SWITCHING, [], (b"Upgrade", None, b"Sec-WebSocket-Accept")),
}


@pytest.mark.clause("WSOPEN.handshake.status")
@pytest.mark.parametrize("case", list(NOT_AN_UPGRADE))
def test_response_that_is_no_upgrade_fails(at, ws_endpoint, case):
    status_line, headers, names = NOT_AN_UPGRADE[case]
    response = answer_by_hand(at, ws_endpoint, status_line, headers, names=names)
    left_out = [n.decode() for n, kept in zip(ALL_HEADERS, names) if kept is None]
    message = (f"the server answered {status_line!r}"
               + (f" without {', '.join(left_out)}" if left_out else "")
               + f", with a correct accept key; RFC 6455 4.1 says the client fails the "
                 f"connection; received {response.received!r}")
    if connected_anyway(response):
        with deviation("WSOPEN.handshake.status"):    # KD-7: the accept key alone counts
            raise AssertionError(message)
    assert response.final == b"ERROR", message
    assert 0 not in link_states(at)


@pytest.mark.clause("WSOPEN.handshake.subprotocol_check")
@pytest.mark.parametrize("offered", ["chat.v1", None], ids=["other", "none-asked"])
def test_subprotocol_not_offered_fails(at, ws_endpoint, offered):
    response = answer_by_hand(at, ws_endpoint, SWITCHING, [b"Sec-WebSocket-Protocol: not-offered"],
                              subprotocol=offered)
    message = (f"the server picked a subprotocol the device did not offer ({offered or 'none'} "
               f"was); RFC 6455 4.1 says fail; received {response.received!r}")
    if connected_anyway(response):
        with deviation("WSOPEN.handshake.subprotocol_check"):   # KD-7: not checked
            raise AssertionError(message)
    assert response.final == b"ERROR", message


@pytest.mark.clause("WSOPEN.handshake.header_case")
@pytest.mark.parametrize("names", [
    (b"upgrade", b"connection", b"sec-websocket-accept"),
    (b"UPGRADE", b"CoNNecTion", b"Sec-Websocket-Accept"),
], ids=["lower-case", "mixed-case"])
def test_header_names_in_any_case_are_accepted(at, ws_endpoint, names):
    response = answer_by_hand(at, ws_endpoint, SWITCHING, [], names=names)
    assert response.final == b"OK", (
        f"a valid 101 with header names {names} was refused (RFC 9110 5.1: field names are "
        f"case-insensitive); received {response.received!r}")
    at.wait_urc(b"+WS_CONNECTED", 0, timeout=0)


def refused_large(response, size: int) -> None:
    message = f"a valid 101 of {size} bytes was refused: {response.received!r}"
    if response.final == b"ERROR":
        with deviation("WSOPEN.handshake.large_response"):   # KD-9: the 1024-byte buffer
            raise AssertionError(message)
    assert response.final == b"OK", message


@pytest.mark.clause("WSOPEN.handshake.large_response")
def test_large_101_response_is_accepted(at, ws_endpoint):
    padding = [b"X-Padding-%02d: %s" % (i, b"p" * 90) for i in range(11)]
    response = answer_by_hand(at, ws_endpoint, SWITCHING, padding)
    refused_large(response, sum(len(p) + 2 for p in padding) + 150)
    at.wait_urc(b"+WS_CONNECTED", 0, timeout=0)


@pytest.mark.clause("WSOPEN.handshake.large_response")
def test_101_and_frames_filling_1023_bytes_are_accepted(at, ws_endpoint):
    """KD-9's edge exactly: the response head and the frames behind it are 1023 bytes in all."""
    frames = encode_frame(OP_TEXT, b"one") + encode_frame(OP_TEXT, b"two")
    base = len(SWITCHING) + len(b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 b"Sec-WebSocket-Accept: ") + 28 + len(b"\r\n\r\n")
    filler = 1023 - base - len(frames) - len(b"\r\nX-Fill: ")
    response = answer_by_hand(at, ws_endpoint, SWITCHING, [b"X-Fill: " + b"f" * filler], frames)
    refused_large(response, 1023)
    # The frames must arrive whole; whether at once is WSOPEN.handshake.data_after's (KD-6), so
    # they are woken by a ping if held back.
    try:
        chunks = at.wait_ws_data(0, 6, timeout=margins.AT_ONCE_S)
    except AssertionError:
        ws_endpoint.send_ping(b"wake")
        chunks = at.wait_ws_data(0, 6, timeout=margins.AT_ONCE_S)
    assert chunks == [b"one", b"two"], chunks


def held_back(at, endpoint, link_id: int, size: int, what: str) -> None:
    """The message did not come at once: KD-6 when it comes as soon as new bytes arrive (here a
    ping from the server), a lost message when it never comes."""
    endpoint.send_ping(b"wake")
    try:
        late = at.wait_ws_data(link_id, size, timeout=margins.AT_ONCE_S)
    except AssertionError:
        late = None
    message = (f"{what} was not reported within {margins.AT_ONCE_S:g} s of the 101; "
               + ("it came only once more bytes arrived" if late else "it never came"))
    if late is not None:
        with deviation("WSOPEN.handshake.data_after"):
            raise AssertionError(message)
    raise AssertionError(message)


@pytest.mark.clause("WSOPEN.handshake.data_after")
def test_message_right_behind_the_101_is_reported_at_once(at, ws_endpoint):
    greeting = b"hello right behind the handshake"
    ws_endpoint.on_connect_send(text=greeting)
    open_link(at, 0, ws_endpoint.url)
    try:    # the wait's own bound is the clause's "at once"
        chunks = at.wait_ws_data(0, len(greeting), timeout=margins.AT_ONCE_S)
    except AssertionError:
        held_back(at, ws_endpoint, 0, len(greeting), "a greeting in the 101's TCP segment")
    assert b"".join(chunks) == greeting, (
        f"the greeting sent behind the 101 came back as {b''.join(chunks)!r}")


@pytest.mark.clause("WSOPEN.handshake.data_after")
def test_frames_in_the_same_write_as_a_hand_made_101(at, ws_endpoint):
    after = encode_frame(OP_TEXT, b"one") + encode_frame(OP_TEXT, b"two")
    response = answer_by_hand(at, ws_endpoint, SWITCHING, [], after)
    with check("WSOPEN.set.connected"):
        response.expect(b"OK")
    try:
        chunks = at.wait_ws_data(0, 6, timeout=margins.AT_ONCE_S)
    except AssertionError:
        held_back(at, ws_endpoint, 0, 6, "two frames in the 101's TCP segment")
    assert chunks == [b"one", b"two"]
