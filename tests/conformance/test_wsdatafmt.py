"""AT+WSDATAFMT (profile current): the set command to the byte, its ranges and a parameter left off
(a refusal leaves the format in force as it was), one link's format apart from another's, the
+WS_DATA form of every mask bit at every level for text, binary, fragmented, long and empty
messages (fields, data and raw bytes), the released form before any AT+WSDATAFMT, and a format
that outlives AT+WSCLOSE."""
from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

import spec
from esp_at.commands import wsclose, wsdatafmt
from wire.frames import OP_BINARY, OP_CONTINUATION, OP_TEXT, encode_frame

from fixtures import margins
from fixtures.links import open_link
from fixtures.verdicts import check
from tests.conformance.observe import ERROR, OK, WITNESS_BUFFER, WITNESS_LENGTH, exact_answer
from tests.conformance.ranges import range_cases

SPEC = spec.load()
FIELDS = SPEC.wsdatafmt_fields                  # opcode, fin, payload_len, payload_offset, data_len
BIT = {name: 1 << number for number, name in enumerate(FIELDS)}
CRLF = 1 << SPEC.wsdatafmt_crlf_bit
LEVEL = {name: number for number, name in enumerate(SPEC.wsdatafmt_levels)}  # chunk, frame, message
DEFAULT_LEVEL = SPEC.default("AT+WSDATAFMT", "meta_data_level")
DEFAULT_MASK = SPEC.default("AT+WSDATAFMT", "meta_data_mask")
DEFAULT_BUFFER = SPEC.default("AT+WSCFG", "buffer_size")
PING_INTERVAL = SPEC.default("AT+WSCFG", "ping_intv_sec")
PONG_TIMEOUT = SPEC.default("AT+WSCFG", "ping_timeout_sec")
# What an `AT` sent after the data answers (echo on): it ends the window of raw bytes, so that a
# CR-LF the form does not have shows, and nothing the device printed later is missed.
AT_ANSWER = b"AT\r\n" + OK

# Every bit alone, with data_len (or payload_len) beside it so that the data can be delimited
# (AMBIGUITIES L-5), and the combinations that matter: all, all without CR-LF, the lengths and
# offset without data_len, with and without CR-LF.
MASKS = {
    "opcode": BIT["opcode"] | BIT["data_len"],
    "fin": BIT["fin"] | BIT["data_len"],
    "payload_len": BIT["payload_len"],
    "payload_offset": BIT["payload_offset"] | BIT["data_len"],
    "data_len": BIT["data_len"],
    "crlf": CRLF | BIT["data_len"],
    "all": sum(BIT.values()) | CRLF,
    "all-fields-no-crlf": sum(BIT.values()),
    "lengths-offset-crlf": BIT["payload_len"] | BIT["payload_offset"] | CRLF,
    "lengths-offset": BIT["payload_len"] | BIT["payload_offset"],
    "payload_len-crlf": BIT["payload_len"] | CRLF,
}

LONG = bytes(i % 251 for i in range(2 * WITNESS_BUFFER + 55))    # longer than the buffer, twice
SPLIT = WITNESS_BUFFER + WITNESS_BUFFER // 2                      # both fragments longer than it
# A message is its frames as the server writes them: (opcode, FIN, payload).
MESSAGES = {
    "text": [(OP_TEXT, True, b"plain text")],
    "binary": [(OP_BINARY, True, b"\x00\xff\r\n+WS_DATA:0,3,abc\r\nOK\r\n>")],
    "fragmented": [(OP_TEXT, False, b"He"), (OP_CONTINUATION, False, b"ll"),
                   (OP_CONTINUATION, True, b"o")],
    "empty": [(OP_BINARY, True, b"")],
    "longer-than-buffer": [(OP_BINARY, True, LONG)],
    "long-fragments": [(OP_BINARY, False, LONG[:SPLIT]), (OP_CONTINUATION, True, LONG[SPLIT:])],
}
WITNESS = MESSAGES["fragmented"]               # shows the level (three frames) and every field


@dataclass(frozen=True)
class Expected:
    """One +WS_DATA the format wants: its field values (all five; the mask picks) and data."""
    values: dict
    data: bytes

    def header(self, link_id: int, mask: int) -> bytes:
        return b"+WS_DATA:%d" % link_id + b"".join(
            b",%d" % self.values[name] for name in FIELDS if mask & BIT[name]) + b","

    def raw(self, link_id: int, mask: int) -> bytes:
        return self.header(link_id, mask) + self.data + (b"\r\n" if mask & CRLF else b"")


def fields(opcode: int, fin: bool, payload_len: int, payload_offset: int, data_len: int) -> dict:
    return dict(opcode=opcode, fin=int(fin), payload_len=payload_len,
                payload_offset=payload_offset, data_len=data_len)


def describe(level: int, mask: int) -> str:
    return (f"level {level} ({SPEC.wsdatafmt_levels[level]}), mask {mask} "
            f"({', '.join(n for n in FIELDS if mask & BIT[n]) or 'no field'}"
            f"{', CR-LF' if mask & CRLF else ', no CR-LF'})")


def delimitable(mask: int) -> bool:
    """Whether a host can tell where the data of a +WS_DATA ends (AMBIGUITIES L-5)."""
    return bool(mask & (BIT["data_len"] | BIT["payload_len"]))


def set_format(at, link_id: int, level: int, mask: int) -> None:
    with check("WSDATAFMT.set"):
        at.cmd(wsdatafmt(link_id, level, mask)).expect(b"OK", lines=[])


def received_since(at, since: float) -> bytes:
    return b"".join(data for t, way, data in at.transcript_entries() if way == "<<" and t >= since)


def take(at, link_id: int, timeout: float):
    return at.wait_urc(b"+WS_DATA", link_id, timeout=timeout)


def receive_per_read(at, link_id: int, frames, buffer_size: int, what: str, timeout: float):
    """Level 0: one +WS_DATA per read, within one frame, at most buffer_size; the offsets count
    from the frame's start. Returns (event, Expected) pairs."""
    pairs = []
    for number, (opcode, fin, payload) in enumerate(frames):
        offset = 0
        while True:
            event = take(at, link_id, timeout)
            chunk = event.data
            where = (f"{what}: frame {number} (opcode {opcode}, FIN {int(fin)}, "
                     f"{len(payload)} bytes), from offset {offset}")
            assert len(chunk) <= buffer_size, (
                f"{where}: a +WS_DATA of {len(chunk)} bytes, more than buffer_size {buffer_size}")
            assert chunk == payload[offset:offset + len(chunk)] and (chunk or not payload), (
                f"{where}: expected (part of) {payload[offset:offset + 40]!r}, the +WS_DATA "
                f"carried {chunk[:40]!r} ({len(chunk)} bytes): one read is within one frame")
            pairs.append((event, Expected(fields(opcode, fin, len(payload), offset, len(chunk)),
                                          chunk)))
            offset += len(chunk)
            if offset == len(payload):
                break
    return pairs


def per_frame(frames) -> list[Expected]:
    return [Expected(fields(opcode, fin, len(payload), 0, len(payload)), payload)
            for opcode, fin, payload in frames]


def per_message(frames) -> list[Expected]:
    expected, parts = [], []
    for opcode, fin, payload in frames:
        parts.append((opcode, payload))
        if fin:
            data = b"".join(p for _, p in parts)
            expected.append(Expected(fields(parts[0][0], True, len(data), 0, len(data)), data))
            parts = []
    return expected


def receive_and_check(at, endpoint, link_id: int, level: int, mask: int, frames,
                      buffer_size: int, what: str, clause: str | None = None):
    """The server writes `frames` at once; they must arrive as `level` groups them, each +WS_DATA
    with exactly the fields of `mask`, the data, and the raw bytes of the form (CR-LF only with
    bit 5). Failures are filed under WSDATAFMT.level (how the data is grouped) and
    WSDATAFMT.form (fields and bytes), or all under `clause`. Returns the (event, Expected)
    pairs and the raw bytes received."""
    what = f"{what}, {describe(level, mask)}, link {link_id}"
    total = sum(len(p) for _, _, p in frames)
    timeout = margins.SERVER_SEES_IT_S + margins.uart_s(total + 40 * len(frames))
    since = time.monotonic()
    endpoint.send_raw(b"".join(encode_frame(opcode, payload, fin=fin)
                               for opcode, fin, payload in frames))
    with check(clause or "WSDATAFMT.level"):
        if level == LEVEL["chunk"]:
            pairs = receive_per_read(at, link_id, frames, buffer_size, what, timeout)
        else:
            wanted = per_frame(frames) if level == LEVEL["frame"] else per_message(frames)
            pairs = [(take(at, link_id, timeout), expected) for expected in wanted]
            got = [event.data for event, _ in pairs]
            assert got == [e.data for e in wanted], (
                f"{what}: expected {len(wanted)} +WS_DATA carrying {[e.data[:40] for e in wanted]}"
                f", received {[d[:40] for d in got]}")
    at.cmd("AT").expect(b"OK")
    received = received_since(at, since)
    with check(clause or "WSDATAFMT.form"):
        for number, (event, expected) in enumerate(pairs):
            want = {name: expected.values[name] if mask & BIT[name] else None for name in FIELDS}
            got = {name: getattr(event, name) for name in FIELDS}
            assert got == want and event.header == expected.header(link_id, mask), (
                f"{what}: +WS_DATA number {number} should be {expected.header(link_id, mask)!r} "
                f"(fields {want}); received {event.header!r} (fields {got})")
        want_raw = b"".join(e.raw(link_id, mask) for _, e in pairs) + AT_ANSWER
        assert received == want_raw, (
            f"{what}: the bytes on the AT port from the server's message to the answer of the AT "
            f"sent after it;\n expected {want_raw!r}\n received {received!r}")
    return pairs, received


# ---- the set command ------------------------------------------------------------------------

# The format each refusal must leave in force: one +WS_DATA per message, opcode, fin and data_len,
# no CR-LF (nothing like the default, nor like the values the cases send).
PRIOR = (LEVEL["message"], BIT["opcode"] | BIT["fin"] | BIT["data_len"])
# The values of a case's other parameters: in range, and unlike PRIOR.
BASE = dict(link_id=1, meta_data_level=LEVEL["frame"], meta_data_mask=MASKS["all"])


@pytest.mark.parametrize("case", range_cases(SPEC, "AT+WSDATAFMT"))
def test_parameter_range(at, connected, ws_endpoint, profile, case):
    """In range: exactly OK, and the format is in force; out of range: exactly ERROR, and the
    format set before is still in force (on the link the command named, or the nearest one)."""
    values = dict(BASE)
    values[case.param] = case.value(profile)
    lo, hi = SPEC.bounds("AT+WSDATAFMT", "link_id", profile.name)
    watched = min(max(values["link_id"], lo), hi)
    set_format(at, watched, *PRIOR)
    command = wsdatafmt(values["link_id"], values["meta_data_level"], values["meta_data_mask"])
    exact_answer(at.cmd(command), OK if case.in_range else ERROR, case.clause)
    in_force = (values["meta_data_level"], values["meta_data_mask"]) if case.in_range else PRIOR
    if not delimitable(in_force[1]):
        return                    # taken (mask 1), but no host can read data sent under it
    connected(watched)
    receive_and_check(at, ws_endpoint, watched, *in_force, WITNESS, DEFAULT_BUFFER,
                      f"after {command!r} ({'accepted' if case.in_range else 'refused'})",
                      clause=case.clause)


def left_off(index: int | None, empty: bool) -> str:
    """AT+WSDATAFMT with BASE's values, the parameter at `index` empty, or everything from it on
    left off."""
    values = [str(v) for v in BASE.values()]
    if empty:
        values[index] = ""
    else:
        values = values[:index]
    return "AT+WSDATAFMT=" + ",".join(values)


@pytest.mark.clause("WSDATAFMT.set")
@pytest.mark.parametrize("line", [left_off(1, False), left_off(2, False), left_off(0, True),
                                  left_off(1, True), left_off(2, True)],
                         ids=["level-and-mask-left-off", "mask-left-off", "link-id-empty",
                              "level-empty", "mask-empty"])
def test_a_parameter_left_off_answers_error_and_changes_nothing(at, connected, ws_endpoint, line):
    link_id = BASE["link_id"]
    set_format(at, link_id, *PRIOR)
    exact_answer(at.cmd(line), ERROR, "WSDATAFMT.set")
    connected(link_id)
    receive_and_check(at, ws_endpoint, link_id, *PRIOR, WITNESS, DEFAULT_BUFFER,
                      f"after the refused {line!r}", clause="WSDATAFMT.set")


@pytest.mark.clause("WSDATAFMT.set")
def test_each_link_keeps_its_own_format(at, new_endpoint):
    """A format set for link 0 is link 0's: link 1, never formatted, keeps the default."""
    set_format(at, 0, *PRIOR)
    for link_id, (level, mask) in ((0, PRIOR), (1, (DEFAULT_LEVEL, DEFAULT_MASK))):
        endpoint = new_endpoint(f"link{link_id}")
        open_link(at, link_id, endpoint.url)
        with check("WSOPEN.set.connected"):
            endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S)
        receive_and_check(at, endpoint, link_id, level, mask, WITNESS, DEFAULT_BUFFER,
                          "link 0 formatted, link 1 not", clause="WSDATAFMT.set")


# ---- the form and the levels ------------------------------------------------------------------

@pytest.mark.clause("WSDATAFMT.form", "WSDATAFMT.level")
@pytest.mark.parametrize("mask", list(MASKS.values()), ids=[f"mask-{m}-{n}" for n, m in MASKS.items()])
@pytest.mark.parametrize("level", sorted(LEVEL.values()), ids=[f"level-{n}" for n in LEVEL])
def test_server_messages_arrive_in_the_format_set(at, connected, ws_endpoint, level, mask):
    """Every message kind, one after another on one link (link id = level, so each id is used):
    level 0 one +WS_DATA per read (at most buffer_size, offsets within the frame), level 1 one
    per frame, level 2 one per message; the fields of the mask in order, the data, CR-LF only
    with bit 5."""
    link_id = level
    set_format(at, link_id, level, mask)
    connected(link_id, cfg=(PING_INTERVAL, PONG_TIMEOUT, WITNESS_BUFFER))
    for name, frames in MESSAGES.items():
        if (level == LEVEL["chunk"] and not mask & BIT["data_len"]
                and any(len(payload) > WITNESS_BUFFER for _, _, payload in frames)):
            # Without data_len a chunk's length is not printed: a host can delimit a read only
            # when it is the whole (rest of the) frame, which a frame longer than buffer_size
            # is not.
            continue
        receive_and_check(at, ws_endpoint, link_id, level, mask, frames, WITNESS_BUFFER,
                          f"the {name} message")


# ---- the default, and a close -------------------------------------------------------------------

@pytest.mark.clause("WSDATAFMT.default")
def test_before_any_wsdatafmt_data_arrives_in_the_released_form(factory_defaults, new_endpoint,
                                                                 profile):
    """After AT+RST, no AT+WSDATAFMT: +WS_DATA:<link_id>,<data_len>,<data>\\r\\n on every link, one
    per read (a fragmented message fragment by fragment, a long one in chunks of at most the
    default buffer_size)."""
    at = factory_defaults
    long = bytes(i % 249 for i in range(WITNESS_LENGTH))
    for link_id in range(SPEC.bounds("AT+WSDATAFMT", "link_id", profile.name)[1] + 1):
        endpoint = new_endpoint(f"link{link_id}")
        open_link(at, link_id, endpoint.url)
        with check("WSOPEN.set.connected"):
            endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S)
        for name, frames in (("fragmented", WITNESS), ("long", [(OP_BINARY, True, long)])):
            # The default level and mask are the released form: receive_and_check asserts it.
            receive_and_check(
                at, endpoint, link_id, DEFAULT_LEVEL, DEFAULT_MASK, frames, DEFAULT_BUFFER,
                f"the {name} message before any AT+WSDATAFMT", clause="WSDATAFMT.default")


@pytest.mark.clause("WSDATAFMT.default")
def test_at_rst_puts_every_link_back_to_the_released_form(at, device_under_test, new_endpoint,
                                                          profile):
    """Every link id at level 2, then AT+RST: each prints the released form again, one +WS_DATA
    per read (AMBIGUITIES L-5: AT+RST resets every format to the defaults). Level 2 with the
    default mask prints the same bytes per URC, so a format the reset kept still reads: its one
    +WS_DATA for the three frames shows."""
    lo, hi = SPEC.bounds("AT+WSDATAFMT", "link_id", profile.name)
    for link_id in range(lo, hi + 1):
        set_format(at, link_id, LEVEL["message"], DEFAULT_MASK)
    at.note("every link id at level 2: AT+RST")
    device_under_test.reset()
    for link_id in range(lo, hi + 1):
        endpoint = new_endpoint(f"link{link_id}")
        open_link(at, link_id, endpoint.url)
        with check("WSOPEN.set.connected"):
            endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S)
        receive_and_check(at, endpoint, link_id, DEFAULT_LEVEL, DEFAULT_MASK, WITNESS,
                          DEFAULT_BUFFER, "after AT+WSDATAFMT level 2 and AT+RST",
                          clause="WSDATAFMT.default")


@pytest.mark.clause("WSDATAFMT.kept_on_close")
def test_wsclose_keeps_the_data_format(at, ws_endpoint):
    """Level 2 with data_len alone, no CR-LF: one +WS_DATA per message. Were the format reset by
    the close, the default form would still be readable under it, and its three URCs (one per
    frame) and CR-LF would show."""
    level, mask = LEVEL["message"], BIT["data_len"]
    set_format(at, 0, level, mask)
    open_link(at, 0, ws_endpoint.url)
    with check("WSOPEN.set.connected"):
        ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S)
    receive_and_check(at, ws_endpoint, 0, level, mask, WITNESS, DEFAULT_BUFFER,
                      "before AT+WSCLOSE")
    with check("WSCLOSE.set"):
        at.cmd(wsclose(0), timeout=margins.WSCLOSE_ANSWER_S).expect(b"OK")
        ws_endpoint.wait_disconnect(timeout=margins.TCP_GONE_S)
    open_link(at, 0, ws_endpoint.url)
    with check("WSOPEN.set.connected"):
        ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S, count=2)
    receive_and_check(at, ws_endpoint, 0, level, mask, WITNESS, DEFAULT_BUFFER,
                      "after AT+WSCLOSE and AT+WSOPEN again", clause="WSDATAFMT.kept_on_close")
