"""The AT engine, to the byte. Every stream is also fed one byte at a time: framing must not
depend on how the serial driver happens to chunk the bytes."""
import pytest

from esp_at.engine import NEED_DATA, AtEngine
from esp_at.events import (Busy, Echo, ErrCode, Final, FramingError, Line, Prompt, Ready, Urc,
                           WsData)


def feed_whole(stream: bytes, command=None, expects_prompt=False):
    engine = AtEngine()
    if command is not None:
        engine.command(command, expects_prompt=expects_prompt)
    return engine.feed(stream)


def feed_bytewise(stream: bytes, command=None, expects_prompt=False):
    engine = AtEngine()
    if command is not None:
        engine.command(command, expects_prompt=expects_prompt)
    events = []
    for i in range(len(stream)):
        events += engine.feed(stream[i:i + 1])
    return events


def both_ways(stream, command=None, expects_prompt=False):
    whole = feed_whole(stream, command, expects_prompt)
    assert feed_bytewise(stream, command, expects_prompt) == whole
    return whole


def test_command_returns_line_with_crlf():
    assert AtEngine().command("AT+WSCFG=0,30,60") == b"AT+WSCFG=0,30,60\r\n"


def test_command_must_be_one_line():
    with pytest.raises(ValueError):
        AtEngine().command(b"AT\r\nAT")


def test_echo_then_ok():
    assert both_ways(b"AT\r\n\r\nOK\r\n", command=b"AT") == [Echo(b"AT"), Final(b"OK")]


def test_echo_with_an_extra_cr_is_still_the_echo():
    assert both_ways(b"AT\r\r\n\r\nOK\r\n", command=b"AT") == [Echo(b"AT"), Final(b"OK")]


def test_no_echo_after_ate0():
    assert both_ways(b"\r\nOK\r\n", command=b"AT") == [Final(b"OK")]


def test_echo_only_once_then_same_text_is_a_line():
    events = both_ways(b"AT+X\r\nAT+X\r\n\r\nOK\r\n", command=b"AT+X")
    assert events == [Echo(b"AT+X"), Line(b"AT+X"), Final(b"OK")]


@pytest.mark.parametrize("result", [b"OK", b"ERROR", b"SEND OK", b"SEND FAIL"])
def test_final_results(result):
    assert both_ways(b"\r\n" + result + b"\r\n") == [Final(result)]


def test_query_response_lines():
    stream = (b'AT+WSOPEN?\r\n+WSOPEN:0,2,"ws://127.0.0.1:8080/ep/1"\r\n'
              b'+WSOPEN:2,1,"ws://h/p?a=\"b\""\r\n\r\nOK\r\n')
    assert both_ways(stream, command=b"AT+WSOPEN?") == [
        Echo(b"AT+WSOPEN?"),
        Line(b'+WSOPEN:0,2,"ws://127.0.0.1:8080/ep/1"'),
        Line(b'+WSOPEN:2,1,"ws://h/p?a=\"b\""'),
        Final(b"OK"),
    ]


def test_prompt_flow_of_wssend():
    stream = b"AT+WSSEND=0,5\r\n\r\nOK\r\n\r\n>"
    assert both_ways(stream, command=b"AT+WSSEND=0,5", expects_prompt=True) == [
        Echo(b"AT+WSSEND=0,5"), Final(b"OK"), Prompt()]


def test_prompt_then_send_ok():
    engine = AtEngine()
    engine.command(b"AT+WSSEND=0,5", expects_prompt=True)
    assert engine.feed(b"\r\nOK\r\n\r\n>") == [Final(b"OK"), Prompt()]
    assert engine.feed(b"\r\nSEND OK\r\n") == [Final(b"SEND OK")]


def test_gt_is_a_plain_line_when_no_prompt_is_awaited():
    assert both_ways(b">hello\r\n") == [Line(b">hello")]


def test_the_prompt_is_read_only_while_its_owner_awaits_it():
    # Whether a command still waits for '>' is the exchange's call (tests/unit/test_exchange.py):
    # the engine reads what it is told, event by event.
    engine = AtEngine()
    engine.command(b"AT+WSSEND=1,5", expects_prompt=True)
    engine.receive_data(b"\r\nERROR\r\n>x\r\n")
    assert engine.next_event() == Final(b"ERROR")
    engine.awaiting_prompt = False
    assert engine.next_event() == Line(b">x")


@pytest.mark.parametrize("name", [b"+WS_CONNECTED", b"+WS_DISCONNECTED", b"+WS_CLOSED"])
def test_link_urcs(name):
    assert both_ways(name + b":2\r\n") == [Urc(name, 2, name + b":2")]


def test_urc_with_or_without_preceding_empty_line():
    assert both_ways(b"\r\n+WS_CLOSED:0\r\n+WS_CLOSED:1\r\n") == [
        Urc(b"+WS_CLOSED", 0, b"+WS_CLOSED:0"), Urc(b"+WS_CLOSED", 1, b"+WS_CLOSED:1")]


def test_urc_between_echo_and_final():
    stream = b'AT+WSOPEN=0,"ws://h/"\r\n+WS_CONNECTED:0\r\n\r\nOK\r\n'
    assert both_ways(stream, command=b'AT+WSOPEN=0,"ws://h/"') == [
        Echo(b'AT+WSOPEN=0,"ws://h/"'), Urc(b"+WS_CONNECTED", 0, b"+WS_CONNECTED:0"),
        Final(b"OK")]


def test_ws_data_between_echo_and_final():
    stream = b"AT\r\n+WS_DATA:1,3,abc\r\n\r\nOK\r\n"
    assert both_ways(stream, command=b"AT") == [Echo(b"AT"), WsData(1, b"abc"), Final(b"OK")]


def test_ws_data_between_prompt_and_send_ok():
    engine = AtEngine()
    engine.command(b"AT+WSSEND=0,2", expects_prompt=True)
    stream = b"\r\nOK\r\n\r\n>+WS_DATA:0,2,hi\r\n\r\nSEND OK\r\n"
    assert engine.feed(stream) == [Final(b"OK"), Prompt(), WsData(0, b"hi"), Final(b"SEND OK")]


@pytest.mark.parametrize("payload", [
    b"\r\nOK\r\n",
    b"\r\n+WS_CLOSED:0\r\n",
    b"+WS_DATA:0,5,hello\r\n",
    b"\x00\xff\r\r\n\n",
    b"ERROR",
    b">",
    b"\r\n",
    bytes(range(256)),
])
def test_payload_that_imitates_framing_is_taken_as_data(payload):
    stream = b"+WS_DATA:0,%d," % len(payload) + payload + b"\r\n\r\nOK\r\n"
    assert both_ways(stream) == [WsData(0, payload), Final(b"OK")]


def test_empty_payload():
    assert both_ways(b"+WS_DATA:2,0,\r\n") == [WsData(2, b"")]


def test_large_payload_fed_in_odd_chunks():
    payload = bytes(i % 251 for i in range(8192))
    stream = b"+WS_DATA:0,8192," + payload + b"\r\n"
    engine = AtEngine()
    events = []
    for start in range(0, len(stream), 777):
        events += engine.feed(stream[start:start + 777])
    assert events == [WsData(0, payload)]


def test_payload_without_crlf_is_a_framing_error_and_engine_resynchronises():
    events = both_ways(b"+WS_DATA:0,2,abXY\r\n\r\nOK\r\n")
    assert events[0] == WsData(0, b"ab")
    assert isinstance(events[1], FramingError)
    assert events[2:] == [Line(b"XY"), Final(b"OK")]


def test_malformed_ws_data_header_is_reported_not_swallowed():
    events = both_ways(b"+WS_DATA:x,1,a\r\n\r\nOK\r\n")
    assert events == [FramingError("malformed +WS_DATA header", b"+WS_DATA:x,1,a\r\n"),
                      Final(b"OK")]


def test_line_starting_with_plus_that_is_not_ws_data():
    assert both_ways(b"+WS\r\n+CWMODE:1\r\n") == [Line(b"+WS"), Line(b"+CWMODE:1")]


def test_busy_err_code_and_ready():
    stream = b"busy p...\r\nERR CODE:0x01090000\r\n\r\nERROR\r\nready\r\n"
    assert both_ways(stream) == [Busy(b"busy p..."), ErrCode(0x01090000, b"ERR CODE:0x01090000"),
                                 Final(b"ERROR"), Ready()]


def test_boot_noise_before_ready_is_plain_lines():
    stream = b"ESP-ROM:esp8684-api2-20220127\r\nrst:0xc (RTC_SW_CPU_RST)\r\n\r\nready\r\n"
    assert both_ways(stream) == [Line(b"ESP-ROM:esp8684-api2-20220127"),
                                 Line(b"rst:0xc (RTC_SW_CPU_RST)"), Ready()]


def test_bare_lf_line_endings_are_tolerated():
    assert both_ways(b"+WS_CLOSED:0\nOK\n") == [Urc(b"+WS_CLOSED", 0, b"+WS_CLOSED:0"),
                                              Final(b"OK")]


def test_next_event_says_need_data_until_a_line_completes():
    engine = AtEngine()
    engine.receive_data(b"\r\nO")
    assert engine.next_event() is NEED_DATA
    engine.receive_data(b"K\r\n")
    assert engine.next_event() == Final(b"OK")
    assert engine.next_event() is NEED_DATA
    assert engine.buffered == b""


def test_partial_line_is_kept_in_buffered():
    engine = AtEngine()
    engine.receive_data(b"+WS_DATA:0,10,abc")
    assert engine.next_event() is NEED_DATA
    assert engine.buffered == b"abc"


class _ScanCounter(bytearray):
    """The receive buffer's bytes, counting what each search for a line end looks at."""
    scanned = 0

    def find(self, sub, start=0, *args):
        self.scanned += len(self) - start
        return super().find(sub, start, *args)


def test_bytewise_feeding_is_linear():
    # The longest line the engine keeps, fed a byte at a time, must not rescan the whole buffer
    # for every byte: each search starts where the last one stopped.
    from esp_at.engine import MAX_LINE_BYTES
    engine = AtEngine()
    engine._buffer._data = counter = _ScanCounter()
    for _ in range(MAX_LINE_BYTES):
        engine.receive_data(b"x")
    engine.receive_data(b"\r\n")
    assert engine.next_event() == Line(b"x" * MAX_LINE_BYTES)
    assert counter.scanned <= 3 * MAX_LINE_BYTES, (
        f"{counter.scanned} bytes searched for {MAX_LINE_BYTES} fed: the search starts over")


def test_a_line_that_never_ends_is_cut_into_framing_errors():
    from esp_at.engine import MAX_LINE_BYTES
    engine = AtEngine()
    events = engine.feed(b"\xff" * (3 * MAX_LINE_BYTES + 10))
    assert [type(e) for e in events] == [FramingError] * 3
    assert all(len(e.raw) == MAX_LINE_BYTES for e in events)
    assert len(engine.buffered) <= MAX_LINE_BYTES
    assert engine.feed(b"\r\nOK\r\n")[-1] == Final(b"OK")
