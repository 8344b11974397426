"""AT+WSHEAD (profile wshead on): the query to the byte with none, one and several headers; the
prompt flow and exactly <req_header_len> bytes taken; CR and LF refused with nothing stored;
AT+WSHEAD=0 clearing; and the headers on the wire: global (every link), after the library's
headers and Sec-WebSocket-Protocol in the order set, kept over AT+WSCLOSE, sent on a reconnect.

A header is given as `key: value`; the query prints it `key:value` (VERSIONS.md wshead, AMBIGUITIES
L-1) and the handshake carries it as `key: value\\r\\n`. The suite's restore sends AT+WSHEAD=0 after
every test that set one (the headers are global and outlive AT+WSCLOSE); each test here checks
that it starts with none stored, and resets the device when it does not."""
from __future__ import annotations

import re

import pytest

from esp_at.commands import WSHEAD_QUERY, wsclose, wshead
from esp_at.errors import DeviceSilent, DeviceViolation

from fixtures import margins
from fixtures.links import lose_connection, open_link
from fixtures.verdicts import check
from tests.conformance.observe import ERROR, OK, exact_answer

PROMPT = b"\r\nOK\r\n\r\n>"                     # the same prompt bytes as AT+WSSEND (BEHAVIOUR.md)
# The library's own headers of the upgrade request (BEHAVIOUR.md Opening), which AT+WSHEAD's follow.
LIBRARY_HEADERS = ("Connection", "Host", "User-Agent", "Upgrade", "Sec-WebSocket-Version",
                   "Sec-WebSocket-Key")
SUBPROTOCOL = "chat.v1"

# Headers as a user sets them: `key: value`, values with what a header value may hold.
TRACE = (b"X-Trace-Id", b"7f3a-0001")
COOKIE = (b"Cookie", b"session=abc123; theme=dark")
URL = (b"X-Origin-Url", b"http://example.com:8080/a?b=c")   # colons in the value: split at 1st
SEVERAL = [TRACE, COOKIE, URL]


def given(header: tuple[bytes, bytes]) -> bytes:
    """The bytes AT+WSHEAD takes for a header: `key: value`."""
    key, value = header
    return key + b": " + value


def on_the_wire(headers: list[tuple[bytes, bytes]]) -> bytes:
    """What the request head must carry for them, in the order set: `key: value\\r\\n` each."""
    return b"".join(given(h) + b"\r\n" for h in headers)


def query_answer(headers: list[tuple[bytes, bytes]]) -> bytes:
    """AT+WSHEAD?'s answer after the echo: one `+WSHEAD:<index>,"<key>:<value>"` line per header,
    from index 0 in the order set, then OK."""
    lines = b"".join(b'+WSHEAD:%d,"%s:%s"\r\n' % (index, key, value)
                     for index, (key, value) in enumerate(headers))
    return lines + OK


def set_header(at, data: bytes):
    """AT+WSHEAD=<len(data)> that must be taken: OK and the prompt, the bytes, OK."""
    command = wshead(len(data))
    with check("WSHEAD.set"):
        response = at.send_data(command, data)
        if not response.prompt or response.final != b"OK":
            raise DeviceViolation(what=f"AT+WSHEAD did not take the header {data!r}",
                                  sent=command.encode() + b"\r\n" + data,
                                  expected=f"{PROMPT!r}, then {len(data)} bytes, then {OK!r}",
                                  received=response.received, clauses=at.clauses)
    return response


def set_headers(at, headers: list[tuple[bytes, bytes]]) -> None:
    """Set each of `headers` (none stored before); AT+WSHEAD? must then list them as given, or
    the failure is WSHEAD.set's (the bytes were not all taken), not that of the test's clause."""
    for header in headers:
        set_header(at, given(header))
    expect_stored(at, headers, "WSHEAD.set", f"AT+WSHEAD took {[given(h) for h in headers]}")


# A query line read for what it says (the exact form is WSHEAD.query's): index, key, value.
_QUERY_LINE = re.compile(rb'\+WSHEAD:(\d+),"([^:"]*): *(.*)"')


def stored(at) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers AT+WSHEAD? lists, as (key, value) in index order, and the answer's bytes; a
    line of another form, or indexes that do not count from 0, fail as WSHEAD.query."""
    with check("WSHEAD.query"):
        response = at.cmd(WSHEAD_QUERY).expect(b"OK")
        matches = [_QUERY_LINE.fullmatch(line) for line in response.lines]
        if not all(matches) or [int(m.group(1)) for m in matches] != list(range(len(matches))):
            raise DeviceViolation(what="AT+WSHEAD? printed a line of an undocumented form",
                                  sent=response.command + b"\r\n",
                                  expected='+WSHEAD:<index from 0>,"<key>:<value>" lines, then OK',
                                  received=response.received, clauses=at.clauses)
    return [(m.group(2), m.group(3)) for m in matches], response.received


def expect_stored(at, headers: list[tuple[bytes, bytes]], clause: str, after: str) -> None:
    """AT+WSHEAD? lists exactly `headers`, in this order (for the exact bytes of the query, see
    the tests of WSHEAD.query); `after` says what was sent to store them."""
    listed, received = stored(at)
    with check(clause):
        assert listed == headers, (
            f"after {after}, AT+WSHEAD? must list {headers} (as (key, value), in the order set); "
            f"it lists {listed}: received {received!r}")


@pytest.fixture(autouse=True)
def _no_header_stored_at_the_start(at, profile, device_under_test):
    """The precondition of every test here: no header stored. The suite's restore clears them
    with AT+WSHEAD=0; a device whose AT+WSHEAD=0 keeps them (WSHEAD.clear, tested below) would
    carry one test's headers into the next, so then the device is reset (AT+RST loses them)."""
    if "AT+WSHEAD" not in profile.commands:
        return                                   # skipped by its clauses
    if stored(at)[0]:
        at.note("headers left from an earlier test (AT+WSHEAD=0 did not clear them): AT+RST")
        device_under_test.reset()


def handshake_of(at, endpoint, link_id: int = 0, subprotocol: str | None = None):
    """Open `link_id` to `endpoint`; the request head of its connection."""
    if subprotocol:
        endpoint.require_subprotocol(subprotocol)
    open_link(at, link_id, endpoint.url, subprotocol=subprotocol)
    with check("WSOPEN.set.connected"):
        return endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S).handshake


def header_lines(handshake) -> list[bytes]:
    """The header lines of a request head, in wire order, exactly as sent."""
    return handshake.raw[:-len(b"\r\n\r\n")].split(b"\r\n")[1:]


def name_of(line: bytes) -> str:
    return line.partition(b":")[0].decode("latin-1").strip().lower()


def expect_headers_last(handshake, headers: list[tuple[bytes, bytes]], clause: str,
                        after: str | None = None) -> None:
    """The request head ends with `headers` as `key: value\\r\\n` in the order set, after every
    library header; with `after`, the line right before them is that header."""
    wanted = on_the_wire(headers) + b"\r\n"
    lines = header_lines(handshake)
    before = lines[:len(lines) - len(headers)]
    names = [name_of(line) for line in before]
    with check(clause):
        assert handshake.raw.endswith(wanted), (
            f"AT+WSHEAD set {[given(h) for h in headers]}; the request head must end with "
            f"{wanted!r} (after the library's headers, in the order set); the device sent "
            f"{handshake.raw!r}")
        missing = [n for n in LIBRARY_HEADERS if n.lower() not in names]
        assert not missing, (
            f"the AT+WSHEAD headers must follow the library's headers; before them the request "
            f"lacks {missing}: {handshake.raw!r}")
        if after is not None:
            assert names and names[-1] == after.lower(), (
                f"the AT+WSHEAD headers must come right after {after}; the line before them is "
                f"{before[-1] if before else None!r}: {handshake.raw!r}")


def expect_no_stored_header_sent(handshake, headers: list[tuple[bytes, bytes]],
                                 clause: str) -> None:
    """None of `headers` (by name) is in the request head."""
    names = {key.decode().lower() for key, _ in headers}
    sent = [line for line in header_lines(handshake) if name_of(line) in names]
    with check(clause):
        assert not sent, (f"the request carries {sent!r}, which no stored header should send: "
                          f"{handshake.raw!r}")


# ---- the query ------------------------------------------------------------------------------

@pytest.mark.clause("WSHEAD.query")
def test_query_without_headers_answers_only_ok(at):
    # None stored: the precondition every test here starts from (checked, and restored by AT+RST
    # when it does not hold, by _no_header_stored_at_the_start).
    exact_answer(at.cmd(WSHEAD_QUERY), query_answer([]), "WSHEAD.query")


@pytest.mark.clause("WSHEAD.query")
def test_query_lists_one_header_with_a_bare_colon(at):
    set_headers(at, [TRACE])
    exact_answer(at.cmd(WSHEAD_QUERY), query_answer([TRACE]), "WSHEAD.query")


@pytest.mark.clause("WSHEAD.query")
def test_query_lists_several_headers_in_the_order_set(at):
    set_headers(at, SEVERAL)
    exact_answer(at.cmd(WSHEAD_QUERY), query_answer(SEVERAL), "WSHEAD.query")


@pytest.mark.clause("WSHEAD.query")
def test_query_shows_a_header_given_without_a_space_as_given(at):
    bare = (b"X-Bare", b"v1")
    set_header(at, b"X-Bare:v1")
    expect_stored(at, [bare], "WSHEAD.set", "AT+WSHEAD took b'X-Bare:v1'")
    exact_answer(at.cmd(WSHEAD_QUERY), query_answer([bare]), "WSHEAD.query")


# ---- setting --------------------------------------------------------------------------------

@pytest.mark.clause("WSHEAD.set")
def test_prompt_flow_bytes(at):
    data = given(TRACE)
    command = wshead(len(data))
    response = at.send_data(command, data)
    # Echo (ATE1), OK and the prompt with no trailing space, the data (never echoed), then OK.
    expected = command.encode() + b"\r\n" + PROMPT + OK
    with check("WSHEAD.set"):
        assert response.received == expected, (
            f"sent {command!r} + {data!r}\n expected {expected!r}\n received {response.received!r}")


@pytest.mark.clause("WSHEAD.set")
def test_exactly_req_header_len_bytes_are_taken(at):
    """OK comes as soon as the <req_header_len> bytes are in (no wait for more), and the last of
    them belongs to the header (none is left for the command line: the next command answers
    clean)."""
    header = (b"X-Exact", b"0123456789")
    data = given(header)
    command = wshead(len(data))
    sent = command.encode() + b"\r\n" + data
    with check("WSHEAD.set"):
        try:
            response = at.send_data(command, data,
                                    send_timeout=margins.uart_s(len(data)) + margins.ANSWER_S)
        except DeviceSilent as silent:
            raise DeviceViolation(what=f"AT+WSHEAD got its {len(data)} bytes and did not answer "
                                       f"(it waits for more than <req_header_len>, or hangs)",
                                  sent=sent, expected=f"{PROMPT!r}, then {OK!r} after the "
                                  f"{len(data)} bytes", received=silent.received,
                                  clauses=at.clauses) from None
        if not response.prompt or response.final != b"OK":
            raise DeviceViolation(what=f"AT+WSHEAD did not take the header {data!r}", sent=sent,
                                  expected=f"{PROMPT!r}, then {OK!r} after the {len(data)} bytes",
                                  received=response.received, clauses=at.clauses)
        after = at.cmd("AT")
        expected = after.command + b"\r\n" + OK
        if after.received != expected:
            raise DeviceViolation(what=f"after AT+WSHEAD took its {len(data)} bytes, the next "
                                       f"command did not answer clean (a byte of the header left "
                                       f"on the command line, or output after the OK)",
                                  sent=after.command + b"\r\n", expected=repr(expected),
                                  received=after.received, clauses=at.clauses)
    expect_stored(at, [header], "WSHEAD.set", f"AT+WSHEAD took {data!r}")


@pytest.mark.clause("WSHEAD.crlf_refused")
@pytest.mark.parametrize("data", [b"X-Cr: one\rtwo", b"X-Lf: one\ntwo",
                                  b"X-Split: one\r\nX-Injected: two"], ids=["cr", "lf", "crlf"])
def test_header_with_cr_or_lf_is_refused_and_nothing_stored(at, ws_endpoint, data):
    set_headers(at, [TRACE])                     # what the refusal must leave as it is
    command = wshead(len(data))
    response = at.send_data(command, data)
    with check("WSHEAD.crlf_refused"):
        assert response.prompt and response.final == b"ERROR", (
            f"sent {command!r} + {data!r} (a CR or LF inside); expected {PROMPT!r}, then "
            f"{ERROR!r} after the {len(data)} bytes, nothing stored; received "
            f"{response.received!r}")
    expect_stored(at, [TRACE], "WSHEAD.crlf_refused",
                  f"AT+WSHEAD took {given(TRACE)!r} and refused {data!r}")
    handshake = handshake_of(at, ws_endpoint)
    expect_headers_last(handshake, [TRACE], "WSHEAD.crlf_refused")
    expect_no_stored_header_sent(handshake, [(b"X-Cr", b""), (b"X-Lf", b""), (b"X-Split", b""),
                                             (b"X-Injected", b"")], "WSHEAD.crlf_refused")


# ---- clearing -------------------------------------------------------------------------------

@pytest.mark.clause("WSHEAD.clear")
def test_zero_clears_every_header_with_no_prompt(at, ws_endpoint):
    set_headers(at, SEVERAL)
    exact_answer(at.cmd(wshead(0)), OK, "WSHEAD.clear")     # no prompt: OK at once
    exact_answer(at.cmd(WSHEAD_QUERY), query_answer([]), "WSHEAD.clear")
    handshake = handshake_of(at, ws_endpoint)
    expect_no_stored_header_sent(handshake, SEVERAL, "WSHEAD.clear")
    with check("WSHEAD.clear"):
        last = header_lines(handshake)[-1]
        assert name_of(last) == "sec-websocket-key", (
            f"after AT+WSHEAD=0 (and no subprotocol) the request must end with the library's "
            f"Sec-WebSocket-Key; it ends with {last!r}: {handshake.raw!r}")


@pytest.mark.clause("WSHEAD.clear")
def test_headers_set_after_a_clear_start_from_index_0(at):
    set_headers(at, [TRACE, COOKIE])
    exact_answer(at.cmd(wshead(0)), OK, "WSHEAD.clear")
    set_header(at, given(URL))
    expect_stored(at, [URL], "WSHEAD.clear",
                  f"AT+WSHEAD took {given(TRACE)!r} and {given(COOKIE)!r}, AT+WSHEAD=0, then "
                  f"{given(URL)!r}")


# ---- on the wire ----------------------------------------------------------------------------

@pytest.mark.clause("WSHEAD.sent")
def test_headers_follow_the_library_headers_in_the_order_set(at, ws_endpoint):
    set_headers(at, SEVERAL)
    expect_headers_last(handshake_of(at, ws_endpoint), SEVERAL, "WSHEAD.sent",
                        after="Sec-WebSocket-Key")


@pytest.mark.clause("WSHEAD.sent")
def test_headers_follow_sec_websocket_protocol(at, ws_endpoint):
    set_headers(at, SEVERAL)
    handshake = handshake_of(at, ws_endpoint, subprotocol=SUBPROTOCOL)
    expect_headers_last(handshake, SEVERAL, "WSHEAD.sent", after="Sec-WebSocket-Protocol")
    with check("WSOPEN.subprotocol"):
        offered = handshake.header("Sec-WebSocket-Protocol")
        assert offered == SUBPROTOCOL, (
            f"AT+WSOPEN gave the subprotocol {SUBPROTOCOL!r}; the request offers {offered!r}: "
            f"{handshake.raw!r}")


@pytest.mark.clause("WSHEAD.sent")
def test_headers_are_global_every_link_carries_them(at, new_endpoint):
    set_headers(at, [TRACE, COOKIE])
    for link_id, label in ((0, "first"), (2, "second")):
        endpoint = new_endpoint(label)
        expect_headers_last(handshake_of(at, endpoint, link_id), [TRACE, COOKIE], "WSHEAD.sent")


@pytest.mark.clause("WSHEAD.sent")
def test_headers_are_kept_over_wsclose(at, new_endpoint):
    set_headers(at, [TRACE, URL])
    expect_headers_last(handshake_of(at, new_endpoint("before")), [TRACE, URL], "WSHEAD.sent")
    with check("WSCLOSE.set"):
        at.cmd(wsclose(0), timeout=margins.WSCLOSE_ANSWER_S).expect(b"OK")
    expect_stored(at, [TRACE, URL], "WSHEAD.sent",
                  f"AT+WSHEAD took {given(TRACE)!r} and {given(URL)!r}, then AT+WSCLOSE=0")
    expect_headers_last(handshake_of(at, new_endpoint("after")), [TRACE, URL], "WSHEAD.sent")


@pytest.mark.slow
@pytest.mark.clause("WSHEAD.reconnect")
def test_reconnect_handshake_carries_the_headers(at, ws_endpoint):
    """A reconnect (about 10 or 15 s after the connection was lost) sends the headers again."""
    set_headers(at, SEVERAL)
    expect_headers_last(handshake_of(at, ws_endpoint), SEVERAL, "WSHEAD.sent")
    lose_connection(at, ws_endpoint, 0)
    with check("WSOPEN.reconnect"):
        again = ws_endpoint.wait_connection(
            timeout=margins.RECONNECT_MAX_S + margins.SERVER_SEES_IT_S, count=2).handshake
    expect_headers_last(again, SEVERAL, "WSHEAD.reconnect")
    with check("WSOPEN.reconnect"):
        at.wait_urc(b"+WS_CONNECTED", 0, timeout=margins.SERVER_SEES_IT_S)
