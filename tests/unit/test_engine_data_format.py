"""The AT engine reads +WS_DATA in every form AT+WSDATAFMT gives it (profile current), to the byte:
`+WS_DATA:<link_id>[,<opcode>][,<fin>][,<payload_len>][,<payload_offset>][,<data_len>],<data>`
`[\\r\\n]`.
The expected bytes are built here from the spec data (the field order, the mask bits), not by the
engine nor by the model; every stream is also fed one byte at a time and must give the same
events, compared field by field (WsData's == looks at link_id and data only)."""
from __future__ import annotations

import pytest

import spec
from esp_at.engine import MAX_DATA_BYTES, MAX_LINE_BYTES, NEED_DATA, AtEngine
from esp_at.events import Echo, Final, FramingError, Line, Prompt, Ready, Urc, WsData

SPEC = spec.load()
FIELDS = SPEC.wsdatafmt_fields                  # opcode, fin, payload_len, payload_offset, data_len
BIT = {name: 1 << number for number, name in enumerate(FIELDS)}
CRLF = 1 << SPEC.wsdatafmt_crlf_bit
LEVEL = {name: number for number, name in enumerate(SPEC.wsdatafmt_levels)}  # chunk, frame, message
DEFAULT = (SPEC.default("AT+WSDATAFMT", "meta_data_level"),
           SPEC.default("AT+WSDATAFMT", "meta_data_mask"))
MASK_LO, MASK_HI = SPEC.bounds("AT+WSDATAFMT", "meta_data_mask", "current")
LEVEL_LO, LEVEL_HI = SPEC.bounds("AT+WSDATAFMT", "meta_data_level", "current")
LINK_LO, LINK_HI = SPEC.bounds("AT+WSDATAFMT", "link_id", "current")
MASKS = range(MASK_LO, MASK_HI + 1)
LEVELS = range(LEVEL_LO, LEVEL_HI + 1)
OK = b"\r\nOK\r\n"

# Data that imitates what the engine frames on: line ends, a +WS_DATA header, a final, the prompt.
DATA = [b"abc", b"", b"\r\n", b"+WS_DATA:0,3,abc\r\n", b"OK\r\n", b">", b"\r\nOK\r\n\r\n>",
        b"\r", bytes(range(256))]


def delimitable(mask: int) -> bool:
    return bool(mask & (BIT["data_len"] | BIT["payload_len"]))


def describe(level: int, mask: int) -> str:
    named = ", ".join(n for n in FIELDS if mask & BIT[n]) or "no field"
    return f"level {level}, mask {mask} ({named}{', CR-LF' if mask & CRLF else ', no CR-LF'})"


def values_for(level: int, mask: int, data: bytes, number: int) -> dict:
    """Field values a device could print with `data` under (level, mask): at level 0 a chunk at
    an offset in a longer frame (the rest of the frame when data_len is not printed, so that
    payload_len - payload_offset is the data's length); at levels 1 and 2 the whole frame or
    message (offset 0, payload_len = the data's length)."""
    opcode = (0, 1, 2, 9, 10, 15)[number % 6]
    fin = number % 2
    if level == LEVEL["chunk"]:
        offset = 7 * number if mask & BIT["payload_offset"] else 0
        extra = 100 + number if mask & BIT["data_len"] else 0
        payload_len = offset + len(data) + extra
    else:
        offset, payload_len = 0, len(data)
    return dict(opcode=opcode, fin=fin, payload_len=payload_len, payload_offset=offset,
                data_len=len(data))


def header(link_id: int, mask: int, values: dict) -> bytes:
    return (b"+WS_DATA:%d" % link_id
            + b"".join(b",%d" % values[name] for name in FIELDS if mask & BIT[name]) + b",")


def urc(link_id: int, mask: int, values: dict, data: bytes) -> bytes:
    return header(link_id, mask, values) + data + (b"\r\n" if mask & CRLF else b"")


def shown(event):
    """Every field of an event, those == leaves out included."""
    if isinstance(event, WsData):
        return ("WsData", event.link_id, event.data, event.header,
                *(getattr(event, name) for name in FIELDS))
    return event


def expected_ws_data(link_id: int, mask: int, values: dict, data: bytes) -> tuple:
    return ("WsData", link_id, data, header(link_id, mask, values),
            *(values[name] if mask & BIT[name] else None for name in FIELDS))


def engine_with(formats=None, command=None, expects_prompt=False) -> AtEngine:
    engine = AtEngine()
    for link_id, (level, mask) in (formats or {}).items():
        engine.set_data_format(link_id, level, mask)
    if command is not None:
        engine.command(command, expects_prompt=expects_prompt)
    return engine


def both_ways(stream: bytes, formats=None, command=None, expects_prompt=False) -> list:
    """The events of `stream` fed whole, which must be those of it fed one byte at a time."""
    whole = [shown(e) for e in engine_with(formats, command, expects_prompt).feed(stream)]
    engine = engine_with(formats, command, expects_prompt)
    bytewise = []
    for i in range(len(stream)):
        bytewise += [shown(e) for e in engine.feed(stream[i:i + 1])]
    assert bytewise == whole, (
        f"{stream[:200]!r}...: fed one byte at a time\n {bytewise}\nfed whole\n {whole}")
    assert engine.buffered == b"", f"{stream[-80:]!r}: left over {engine.buffered!r}"
    return whole


# ---- every form -------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", [m for m in MASKS if delimitable(m)])
@pytest.mark.parametrize("level", LEVELS)
def test_every_delimitable_form_is_read_to_the_byte(level, mask):
    """Every data kind back to back on link 1 (with or without CR-LF between them), then OK: one
    WsData each with exactly the fields of the mask, the header as sent, the data whole."""
    link_id = 1
    cases = [(values_for(level, mask, data, n), data) for n, data in enumerate(DATA)]
    stream = b"".join(urc(link_id, mask, values, data) for values, data in cases) + OK
    events = both_ways(stream, {link_id: (level, mask)})
    want = [expected_ws_data(link_id, mask, values, data) for values, data in cases]
    assert events == want + [Final(b"OK")], f"{describe(level, mask)}: {stream!r}"


@pytest.mark.parametrize("mask", [m for m in MASKS if m & BIT["payload_len"]
                                  and not m & BIT["data_len"]])
def test_level_0_without_data_len_delimits_by_payload_len_minus_offset(mask):
    """Level 0, no data_len: the data is payload_len - payload_offset bytes (offset 0 when not
    printed); payload_len alone would swallow the OK."""
    values = dict(opcode=1, fin=1, payload_len=10, payload_offset=6 if mask & BIT["payload_offset"]
                  else 0, data_len=None)
    data = b"0123456789"[values["payload_offset"]:]
    stream = urc(0, mask, values, data) + OK
    assert both_ways(stream, {0: (LEVEL["chunk"], mask)}) == [
        expected_ws_data(0, mask, values, data), Final(b"OK")]


@pytest.mark.parametrize("level", [LEVEL["frame"], LEVEL["message"]])
def test_levels_1_and_2_delimit_by_payload_len_whatever_the_offset_says(level):
    """At levels 1 and 2 payload_len is the data's length (the whole frame or message)."""
    mask = BIT["payload_len"] | BIT["payload_offset"]
    values = dict(opcode=2, fin=1, payload_len=5, payload_offset=3, data_len=None)
    stream = urc(2, mask, values, b"hello") + b"+WS_DATA:0,2,hi\r\n"
    assert both_ways(stream, {2: (level, mask)}) == [
        expected_ws_data(2, mask, values, b"hello"), ("WsData", 0, b"hi", b"+WS_DATA:0,2,", None,
                                                     None, None, None, 2)]


def test_default_form_is_the_released_one_with_data_len_set():
    assert DEFAULT == (LEVEL["chunk"], BIT["data_len"] | CRLF)
    assert both_ways(b"+WS_DATA:0,3,abc\r\n+WS_DATA:2,0,\r\n" + OK) == [
        ("WsData", 0, b"abc", b"+WS_DATA:0,3,", None, None, None, None, 3),
        ("WsData", 2, b"", b"+WS_DATA:2,0,", None, None, None, None, 0), Final(b"OK")]


def test_released_form_equality_still_ignores_the_fields():
    event = AtEngine().feed(b"+WS_DATA:0,3,abc\r\n")[0]
    assert event == WsData(0, b"abc") and event.header == b"+WS_DATA:0,3,"


# ---- without CR-LF ---------------------------------------------------------------------------

NO_CRLF = BIT["data_len"]
ALL_NO_CRLF = sum(BIT.values())


def test_two_urcs_back_to_back_without_crlf():
    stream = b"+WS_DATA:0,3,abc+WS_DATA:0,2,de\r\n"
    assert both_ways(stream, {0: (LEVEL["chunk"], NO_CRLF)}) == [
        ("WsData", 0, b"abc", b"+WS_DATA:0,3,", None, None, None, None, 3),
        ("WsData", 0, b"de", b"+WS_DATA:0,2,", None, None, None, None, 2)]


def test_ok_after_a_urc_without_crlf_is_a_blank_line_then_the_final():
    stream = b"AT\r\n+WS_DATA:0,3,abc\r\nOK\r\n"
    assert both_ways(stream, {0: (LEVEL["message"], NO_CRLF)}, command=b"AT") == [
        Echo(b"AT"), ("WsData", 0, b"abc", b"+WS_DATA:0,3,", None, None, None, None, 3),
        Final(b"OK")]


def test_a_urc_without_crlf_then_a_link_urc_and_the_prompt():
    engine = engine_with({0: (LEVEL["frame"], ALL_NO_CRLF)}, command=b"AT+WSSEND=0,2",
                         expects_prompt=True)
    stream = (b"\r\nOK\r\n+WS_DATA:0,1,1,2,0,2,hi+WS_CLOSED:1\r\n\r\n>")
    assert [shown(e) for e in engine.feed(stream)] == [
        Final(b"OK"), ("WsData", 0, b"hi", b"+WS_DATA:0,1,1,2,0,2,", 1, 1, 2, 0, 2),
        Urc(b"+WS_CLOSED", 1, b"+WS_CLOSED:1"), Prompt()]


def test_data_that_is_a_gt_before_the_awaited_prompt():
    """AT+WSSEND awaits '>': a +WS_DATA carrying '>' (no CR-LF) between the OK and the prompt is
    data, the '>' after it the prompt."""
    engine = engine_with({0: (LEVEL["chunk"], NO_CRLF)}, command=b"AT+WSSEND=0,2",
                         expects_prompt=True)
    stream = b"\r\nOK\r\n+WS_DATA:0,1,>>"
    assert [shown(e) for e in engine.feed(stream)] == [
        Final(b"OK"), ("WsData", 0, b">", b"+WS_DATA:0,1,", None, None, None, None, 1), Prompt()]


def test_data_ending_in_cr_without_crlf_then_the_next_urc():
    stream = b"+WS_DATA:0,2,a\r+WS_DATA:0,1,\n" + OK
    assert both_ways(stream, {0: (LEVEL["chunk"], NO_CRLF)}) == [
        ("WsData", 0, b"a\r", b"+WS_DATA:0,2,", None, None, None, None, 2),
        ("WsData", 0, b"\n", b"+WS_DATA:0,1,", None, None, None, None, 1), Final(b"OK")]


def test_with_crlf_bit_the_data_must_be_followed_by_crlf():
    mask = ALL_NO_CRLF | CRLF
    events = both_ways(b"+WS_DATA:0,1,1,2,0,2,hiXY\r\n" + OK, {0: (LEVEL["frame"], mask)})
    assert events == [("WsData", 0, b"hi", b"+WS_DATA:0,1,1,2,0,2,", 1, 1, 2, 0, 2),
                      FramingError("+WS_DATA payload not followed by CR-LF", b"X"),
                      Line(b"XY"), Final(b"OK")]


# ---- a mask that cannot be delimited -----------------------------------------------------------

@pytest.mark.parametrize("mask", [0] + [m for m in MASKS if not delimitable(m)])
@pytest.mark.parametrize("level", LEVELS)
def test_undelimitable_format_is_a_framing_error_and_the_engine_resynchronises(level, mask):
    """set_data_format takes the mask (the device did); a +WS_DATA under it is a FramingError
    that says why, holding the bytes to the next line end, then lines are read again."""
    engine = AtEngine()
    engine.set_data_format(0, level, mask)
    assert engine.data_formats == {0: (level, mask)}
    values = values_for(level, mask, b"abc", 3)
    stream = urc(0, mask, values, b"abc") + OK + b"+WS_DATA:1,2,hi\r\n"
    events = both_ways(stream, {0: (level, mask)})
    line_end = stream.index(b"\n") + 1
    assert events[1:] == [Final(b"OK"), ("WsData", 1, b"hi", b"+WS_DATA:1,2,", None, None, None,
                                          None, 2)], f"{describe(level, mask)}: {events}"
    error = events[0]
    assert isinstance(error, FramingError) and error.raw == stream[:line_end], (
        f"{describe(level, mask)}: expected a FramingError holding {stream[:line_end]!r}, got "
        f"{error!r}")
    assert "cannot be delimited" in error.detail and f"mask {mask}" in error.detail and \
        f"level {level}" in error.detail and "link 0" in error.detail, error.detail


def test_out_of_range_values_are_taken_as_given():
    engine = AtEngine()
    engine.set_data_format(0, 5, BIT["data_len"] | BIT["payload_len"])
    engine.set_data_format(1, 0, 64 | BIT["data_len"])         # bits above 5 print nothing
    assert engine.data_formats == {0: (5, BIT["data_len"] | BIT["payload_len"]),
                                   1: (0, 64 | BIT["data_len"])}
    assert [shown(e) for e in engine.feed(b"+WS_DATA:0,9,2,ab+WS_DATA:1,1,z" + OK)] == [
        ("WsData", 0, b"ab", b"+WS_DATA:0,9,2,", None, None, 9, None, 2),
        ("WsData", 1, b"z", b"+WS_DATA:1,1,", None, None, None, None, 1), Final(b"OK")]


def test_negative_or_non_integer_values_are_refused():
    for args in ((-1, 0, 48), (0, -1, 48), (0, 0, -1), (0, "0", 48)):
        with pytest.raises(ValueError):
            AtEngine().set_data_format(*args)


# ---- malformed headers and bounds ---------------------------------------------------------------

ALL = ALL_NO_CRLF | CRLF


@pytest.mark.parametrize("line", [
    b"+WS_DATA:0,16,1,2,0,2,hi\r\n",        # opcode past 15
    b"+WS_DATA:0,1,2,2,0,2,hi\r\n",         # fin neither 0 nor 1
    b"+WS_DATA:0,1,1,2,0,hi\r\n",           # a field short: 'hi' is no number
    b"+WS_DATA:0,1,1,,0,2,hi\r\n",          # an empty field
    b"+WS_DATA:0,x1,1,2,0,2,hi\r\n",
    b"+WS_DATA:0,1,1,12345678901,0,2,hi\r\n",  # payload_len: 11 digits
    b"+WS_DATA:0,1,1,2,0,1234567,hi\r\n",      # data_len: 7 digits
    b"+WS_DATA:123,3,abc\r\n",                 # link id: 3 digits
], ids=["opcode-16", "fin-2", "field-missing", "field-empty", "not-decimal",
        "payload-len-11-digits", "data-len-7-digits", "link-id-3-digits"])
def test_malformed_header_is_reported_with_its_line(line):
    formats = {0: (LEVEL["frame"], ALL)}
    assert both_ways(line + OK, formats) == [FramingError("malformed +WS_DATA header", line),
                                             Final(b"OK")]


def test_payload_offset_past_payload_len_is_a_framing_error():
    mask = BIT["payload_len"] | BIT["payload_offset"] | CRLF
    events = both_ways(b"+WS_DATA:0,3,5,abc\r\n" + OK, {0: (LEVEL["chunk"], mask)})
    assert isinstance(events[0], FramingError) and "payload_offset 5" in events[0].detail
    assert events[0].raw == b"+WS_DATA:0,3,5,abc\r\n" and events[1:] == [Final(b"OK")]


def test_payload_len_announcing_more_than_the_engine_takes_is_a_framing_error():
    too_many = MAX_DATA_BYTES + 1
    line = b"+WS_DATA:0,%d,abc\r\n" % too_many
    events = both_ways(line + OK, {0: (LEVEL["message"], BIT["payload_len"] | CRLF)})
    assert isinstance(events[0], FramingError) and str(too_many) in events[0].detail
    assert events[0].raw == line and events[1:] == [Final(b"OK")]


def test_garbage_after_a_header_cannot_make_the_engine_hoard_bytes():
    engine = AtEngine()
    engine.set_data_format(0, LEVEL["frame"], ALL)
    events = engine.feed(b"+WS_DATA:0,1" + b"9" * (3 * MAX_LINE_BYTES))
    assert events and all(isinstance(e, FramingError) for e in events)
    assert len(engine.buffered) <= MAX_LINE_BYTES
    assert engine.feed(b"\r\n" + OK)[-1] == Final(b"OK")


def test_a_header_still_arriving_waits():
    engine = AtEngine()
    engine.set_data_format(0, LEVEL["chunk"], ALL)
    engine.receive_data(b"+WS_DATA:0,1,0,100,40,")
    assert engine.next_event() is NEED_DATA
    engine.receive_data(b"3,ab")
    assert engine.next_event() is NEED_DATA and engine.payload_missing == 1
    engine.receive_data(b"c\r\n")
    assert shown(engine.next_event()) == ("WsData", 0, b"abc", b"+WS_DATA:0,1,0,100,40,3,",
                                          1, 0, 100, 40, 3)


# ---- per link, the constructor, ready --------------------------------------------------------

def test_each_link_has_its_own_format():
    formats = {0: (LEVEL["message"], BIT["opcode"] | BIT["data_len"]),
               2: (LEVEL["chunk"], BIT["payload_len"] | BIT["payload_offset"] | CRLF)}
    stream = (b"+WS_DATA:0,1,5,hello" + b"+WS_DATA:1,2,hi\r\n" + b"+WS_DATA:2,9,6,xyz\r\n"
              + b"+WS_DATA:0,2,1,z" + OK)
    assert both_ways(stream, formats) == [
        ("WsData", 0, b"hello", b"+WS_DATA:0,1,5,", 1, None, None, None, 5),
        ("WsData", 1, b"hi", b"+WS_DATA:1,2,", None, None, None, None, 2),
        ("WsData", 2, b"xyz", b"+WS_DATA:2,9,6,", None, None, 9, 6, None),
        ("WsData", 0, b"z", b"+WS_DATA:0,2,1,", 2, None, None, None, 1), Final(b"OK")]


def test_data_formats_lists_only_non_default_formats_and_is_read_only():
    engine = AtEngine()
    assert engine.data_formats == {}
    engine.set_data_format(1, LEVEL["frame"], ALL)
    engine.set_data_format(2, *DEFAULT)
    assert engine.data_formats == {1: (LEVEL["frame"], ALL)}
    engine.set_data_format(1, *DEFAULT)
    assert engine.data_formats == {}
    engine.set_data_format(0, LEVEL["message"], BIT["data_len"])
    formats = engine.data_formats
    with pytest.raises(TypeError):
        formats[0] = DEFAULT
    engine.set_data_format(0, *DEFAULT)
    assert formats == {0: (LEVEL["message"], BIT["data_len"])}, "a snapshot, not a live view"


def test_formats_carried_into_a_fresh_engine():
    old = AtEngine()
    old.set_data_format(0, LEVEL["message"], BIT["data_len"])
    old.set_data_format(2, LEVEL["frame"], ALL)
    new = AtEngine(formats=old.data_formats)
    assert new.data_formats == old.data_formats
    stream = b"+WS_DATA:0,2,hi+WS_DATA:2,2,1,1,0,1,x\r\n+WS_DATA:1,1,y\r\n"
    assert [shown(e) for e in new.feed(stream)] == [
        ("WsData", 0, b"hi", b"+WS_DATA:0,2,", None, None, None, None, 2),
        ("WsData", 2, b"x", b"+WS_DATA:2,2,1,1,0,1,", 2, 1, 1, 0, 1),
        ("WsData", 1, b"y", b"+WS_DATA:1,1,", None, None, None, None, 1)]


def test_ready_resets_every_link_to_the_default():
    formats = {0: (LEVEL["message"], BIT["data_len"]), 1: (LEVEL["frame"], ALL)}
    stream = b"+WS_DATA:0,2,hi\r\nready\r\n+WS_DATA:0,2,hi\r\n+WS_DATA:1,1,y\r\n"
    engine = engine_with(formats)
    assert [shown(e) for e in engine.feed(stream)] == [
        ("WsData", 0, b"hi", b"+WS_DATA:0,2,", None, None, None, None, 2), Ready(),
        ("WsData", 0, b"hi", b"+WS_DATA:0,2,", None, None, None, None, 2),
        ("WsData", 1, b"y", b"+WS_DATA:1,1,", None, None, None, None, 1)]
    assert engine.data_formats == {}


# ---- the engine takes the format at the command's OK -------------------------------------------

def test_format_in_force_from_the_ok_of_at_wsdatafmt():
    """Data the device prints right after AT+WSDATAFMT's OK is in the new form, even if it is in
    the same read as the OK (before the client could call set_data_format)."""
    mask = BIT["opcode"] | BIT["data_len"]
    command = b"AT+WSDATAFMT=1,%d,%d" % (LEVEL["message"], mask)
    stream = b"+WS_DATA:1,2,hi\r\n" + command + b"\r\n" + OK + b"+WS_DATA:1,2,3,abc"
    engine = AtEngine()
    engine.command(command)
    events = [shown(e) for e in engine.feed(stream)]
    assert events[0] == ("WsData", 1, b"hi", b"+WS_DATA:1,2,", None, None, None, None, 2)
    assert events[2:] == [Final(b"OK"), ("WsData", 1, b"abc", b"+WS_DATA:1,2,3,", 2, None, None,
                                         None, 3)]
    assert engine.data_formats == {1: (LEVEL["message"], mask)}


@pytest.mark.parametrize("answer", [b"\r\nERROR\r\n", b"busy p...\r\n\r\nOK\r\n"],
                         ids=["error", "busy-then-an-earlier-commands-ok"])
def test_a_refused_or_dropped_wsdatafmt_changes_nothing(answer):
    engine = AtEngine()
    engine.command(b"AT+WSDATAFMT=1,2,16")
    engine.feed(answer)
    assert engine.data_formats == {}
