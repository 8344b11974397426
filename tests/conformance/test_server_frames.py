"""Frames from the server that RFC 6455 makes a client fail the connection for (§7.1.7): RSV bits
with no extension, reserved opcodes, a mask, fragmented or oversized control frames, a
continuation with nothing to continue, text that is not UTF-8, and close frames whose body no
endpoint may send. Failing means: nothing of the frame (or after it) reaches the host, the
device closes TCP, and a close frame it sends first carries 1002 (1007 for bad UTF-8). The server
only records (a strict one would refuse what the library answers, an oversized pong).

The real library takes every one of them (traces/SUMMARY.md, KD-13..KD-19): each test files a
failure as the known deviation only when the device did exactly what the library does."""
import struct

import pytest

from wire.frames import OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, encode_frame

from esp_at.errors import DeviceSilent
from fixtures import margins
from fixtures.verdicts import check, deviation

AFTER = b"after"
PROTOCOL_ERROR, INVALID_DATA = 1002, 1007
# The device reads a frame when it arrives: failing the connection takes that, and the network.
FAIL_WITHIN_S = margins.AT_ONCE_S + 2 * margins.NETWORK_JITTER_S


def raw_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
              mask_key: bytes | None = None) -> bytes:
    """A server frame as the tests need it: RSV bits set, or masked (which wire.frames only does
    for clients)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    head = struct.pack("!BB", first, (0x80 if mask_key else 0) | length) if length < 126 else \
        struct.pack("!BBH", first, (0x80 if mask_key else 0) | 126, length)
    if mask_key is None:
        return head + payload
    masked = bytes(b ^ mask_key[i % 4] for i, b in enumerate(payload))
    return head + mask_key + masked


def outcome(at, endpoint, connection, link_id: int) -> tuple[bool, list[bytes]]:
    """(the device closed TCP, the +WS_DATA payloads it printed meanwhile), once it did, or the
    failure window passed with `after` delivered (or nothing more to wait for)."""
    try:
        endpoint.wait_disconnect(timeout=FAIL_WITHIN_S)
    except AssertionError:
        pass
    ended = []
    if not connection.is_open:      # what the device printed before it reported the end
        try:
            ended = [at.wait_urc((b"+WS_CLOSED", b"+WS_DISCONNECTED"), link_id,
                                 timeout=margins.AT_ONCE_S)]
        except DeviceSilent:
            pass
    printed = [e.data for e in ended + at.drain() if getattr(e, "link_id", None) == link_id
               and hasattr(e, "data")]
    return not connection.is_open, printed


def assert_failed(clause: str, connection, closed: bool, printed: list[bytes], what: str,
                  status: int = PROTOCOL_ERROR) -> None:
    with check(clause):
        assert not printed, (
            f"after {what} the device printed +WS_DATA {printed!r}: nothing of a frame that "
            f"fails the connection, nor of what follows it, may reach the host")
        assert closed, (
            f"after {what} the connection stayed open {FAIL_WITHIN_S:g} s: the device must fail "
            f"it (RFC 6455 §7.1.7)")
        closes = [rf.frame for rf in connection.frames if rf.frame.opcode == OP_CLOSE]
        for frame in closes:
            assert frame.close_code() in (status, None), (
                f"after {what} the device's close frame carries {frame.payload!r}; failing the "
                f"connection for it, a close frame carries status {status} (or none)")


# ---- one frame that breaks a rule, then a good one ----------------------------------------------

CASES = {
    # clause, the offending bytes, what the library does with it (the KD's exact signature)
    "rsv1": ("RECV.rsv", raw_frame(OP_TEXT, b"rsv1", rsv=4), "a text frame with RSV1 set",
             [b"rsv1", AFTER]),
    "rsv3": ("RECV.rsv", raw_frame(OP_TEXT, b"rsv3", rsv=1), "a text frame with RSV3 set",
             [b"rsv3", AFTER]),
    "opcode-3": ("RECV.reserved_opcode", raw_frame(0x3, b"op3"), "a frame with opcode 3",
                 [AFTER]),
    "opcode-0xB": ("RECV.reserved_opcode", raw_frame(0xB, b"opB"), "a frame with opcode 0xB",
                   [AFTER]),
    "masked": ("RECV.masked", raw_frame(OP_TEXT, b"masked", mask_key=b"\x37\xfa\x21\x3d"),
               "a masked text frame", [b"masked", AFTER]),
    # The library reads no key for an empty frame, so the key bytes 81 02 68 69 are parsed as
    # a text frame "hi" (traces server_masked_empty_ping).
    "masked-empty": ("RECV.masked", raw_frame(OP_PING, b"", mask_key=b"\x81\x02hi"),
                     "a masked empty ping", [b"hi", AFTER]),
    "orphan-continuation": ("RECV.continuation", raw_frame(OP_CONTINUATION, b"orphan"),
                            "a continuation frame with no message to continue",
                            [b"orphan", AFTER]),
    "text-not-utf8": ("RECV.utf8", raw_frame(OP_TEXT, b"\xc3\x28"),
                      "a text message that is not UTF-8", [b"\xc3\x28", AFTER]),
}


@pytest.mark.parametrize("case", [pytest.param(name, marks=pytest.mark.clause(CASES[name][0]),
                                               id=name) for name in CASES])
def test_frame_that_breaks_rfc6455_fails_the_connection(at, connected, ws_endpoint, case):
    clause, bad, what, library_prints = CASES[case]
    ws_endpoint.record_only()
    connection = connected(0)
    ws_endpoint.send_raw(bad + encode_frame(OP_TEXT, AFTER))
    closed, printed = outcome(at, ws_endpoint, connection, 0)
    if not closed and printed == library_prints:
        with deviation(clause):
            raise AssertionError(f"after {what} (then the text {AFTER!r}) the device kept the "
                                 f"connection and printed +WS_DATA {printed!r}, as the library does")
    assert_failed(clause, connection, closed, printed, what,
                  INVALID_DATA if clause == "RECV.utf8" else PROTOCOL_ERROR)


@pytest.mark.clause("RECV.control_frame")
def test_fragmented_ping_fails_the_connection(at, connected, ws_endpoint):
    ws_endpoint.record_only()
    connection = connected(0)
    ws_endpoint.send_raw(raw_frame(OP_PING, b"pi", fin=False) + raw_frame(OP_CONTINUATION, b"ng")
                         + encode_frame(OP_TEXT, AFTER))
    closed, printed = outcome(at, ws_endpoint, connection, 0)
    pongs = [rf.frame.payload for rf in connection.frames if rf.frame.opcode == OP_PONG]
    what = "a ping with FIN clear and its continuation"
    if pongs == [b"pi"]:                     # the library answers the fragment as a ping
        with deviation("RECV.control_frame"):
            raise AssertionError(f"after {what} the device answered the fragment with a pong "
                                 f"{pongs!r} (then printed {printed!r})")
    assert_failed("RECV.control_frame", connection, closed, printed, what)
    with check("RECV.control_frame"):
        assert not pongs, f"the device answered a fragmented ping: pongs {pongs!r}"


@pytest.mark.clause("RECV.control_frame")
def test_ping_over_125_bytes_fails_the_connection(at, connected, ws_endpoint):
    ws_endpoint.record_only()                    # the library's 126-byte pong, whole
    connection = connected(0)
    payload = bytes(range(126))
    ws_endpoint.send_raw(raw_frame(OP_PING, payload) + encode_frame(OP_TEXT, AFTER))
    closed, printed = outcome(at, ws_endpoint, connection, 0)
    pongs = [rf.frame.payload for rf in connection.frames if rf.frame.opcode == OP_PONG]
    what = "a ping of 126 bytes"
    if pongs == [payload]:                   # the library answers it in full
        with deviation("RECV.control_frame"):
            raise AssertionError(f"after {what} the device answered it with a pong of "
                                 f"{len(pongs[0])} bytes and kept the connection")
    assert_failed("RECV.control_frame", connection, closed, printed, what)
    with check("RECV.control_frame"):
        assert not pongs, f"the device answered an oversized ping: pongs of {[len(p) for p in pongs]}"


# ---- close frames no endpoint may send ----------------------------------------------------------

BAD_CLOSES = {
    "1-byte-body": (b"\x03", "a close frame with a 1-byte body", PROTOCOL_ERROR),
    "code-1005": (struct.pack("!H", 1005), "a close frame with status 1005", PROTOCOL_ERROR),
    "reason-not-utf8": (struct.pack("!H", 1000) + b"\xff\xfe",
                        "a close frame whose reason is not UTF-8", INVALID_DATA),
}


@pytest.mark.clause("CLOSE.server.body")
@pytest.mark.parametrize("case", list(BAD_CLOSES))
def test_bad_close_body_fails_the_connection(at, connected, ws_endpoint, case):
    body, what, status = BAD_CLOSES[case]
    ws_endpoint.record_only()
    connection = connected(0)
    ws_endpoint.send_raw(raw_frame(OP_CLOSE, body))
    try:
        ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == OP_CLOSE, timeout=FAIL_WITHIN_S)
    except AssertionError:
        pass
    # The close reply and the end URC race (two outputs of the device): judge once the link has
    # ended, when both are in.
    try:
        ended = [at.wait_urc((b"+WS_CLOSED", b"+WS_DISCONNECTED"), 0, timeout=margins.TCP_GONE_S)]
    except DeviceSilent:
        ended = []
    replies = [rf.frame for rf in connection.frames if rf.frame.opcode == OP_CLOSE]
    urcs = [getattr(e, "name", b"") for e in ended + at.drain()
            if getattr(e, "link_id", None) == 0]
    # The library answers it as any close: +WS_CLOSED and an empty close frame (traces
    # server_close_1byte, server_close_code_1005, server_close_invalid_utf8).
    if b"+WS_CLOSED" in urcs and [r.payload for r in replies] == [b""]:
        with deviation("CLOSE.server.body"):
            raise AssertionError(f"{what} was answered as a good close: +WS_CLOSED and an empty "
                                 f"close frame")
    with check("CLOSE.server.body"):
        assert b"+WS_CLOSED" not in urcs, (
            f"after {what} the device printed +WS_CLOSED, as for a close it accepted; it must "
            f"fail the connection instead")
        for reply in replies:
            assert reply.close_code() == status, (
                f"after {what} the device's close frame carries {reply.payload!r}; failing the "
                f"connection for it, a close frame carries status {status}")
        ws_endpoint.wait_disconnect(timeout=margins.TCP_GONE_S)
