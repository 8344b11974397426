"""The command cycle (esp_at/exchange.py) to the byte, with no port and no thread: every rule fed
whole and one byte at a time, which must give the same answer, routes and notes."""
import pytest

from esp_at.engine import MAX_LINE_BYTES
from esp_at.events import Ready
from esp_at.exchange import ROUTES, Exchange, Kind, Phase


def fed(exchange: Exchange, data: bytes, bytewise: bool):
    """Feed the device's bytes; (every routed event, the notes, whether garbage was seen)."""
    chunks = [data[i:i + 1] for i in range(len(data))] if bytewise else [data]
    routed = [r for chunk in chunks for r in exchange.receive(chunk, now=1.0)]
    notes = [(n.raw, n.where) for r in routed for n in r.notes]
    return routed, notes, any(r.route.garbage for r in routed)


BYTEWISE = pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])


@BYTEWISE
def test_a_plain_command_ends_at_its_final_result(bytewise):
    exchange = Exchange()
    data, response = exchange.start("AT+WSOPEN?")
    assert data == b"AT+WSOPEN?\r\n" and exchange.phase is Phase.ANSWERING
    _, notes, garbage = fed(exchange, b'AT+WSOPEN?\r\n+WSOPEN:0,2,"ws://h/"\r\n\r\nOK\r\n',
                            bytewise)
    assert (response.echoed, response.lines, response.final, response.final_at) == (
        True, [b'+WSOPEN:0,2,"ws://h/"'], b"OK", 1.0)
    assert response.over and exchange.phase is Phase.IDLE
    assert notes == [] and not garbage
    assert exchange.open_links == {0}            # state 2 in the listing: the link is open


@BYTEWISE
def test_data_mode_ok_prompt_then_send_ok(bytewise):
    exchange = Exchange()
    _, response = exchange.start("AT+WSSEND=0,3", expects_prompt=True)
    fed(exchange, b"AT+WSSEND=0,3\r\n\r\nOK\r\n\r\n>", bytewise)
    assert (response.accepted, response.prompt, response.over) == (True, True, False)
    assert exchange.phase is Phase.SENDING
    # busy after the prompt answers input past <length>: the command goes on.
    fed(exchange, b"busy p...\r\n\r\nSEND OK\r\n", bytewise)
    assert (response.busy, response.busy_after_data, response.final) == (False, 1, b"SEND OK")
    assert exchange.phase is Phase.IDLE


@BYTEWISE
@pytest.mark.parametrize("answer, final, busy", [(b"\r\nERROR\r\n", b"ERROR", False),
                                                 (b"busy p...\r\n", None, True)])
def test_data_mode_refused_before_the_prompt(bytewise, answer, final, busy):
    exchange = Exchange()
    _, response = exchange.start("AT+WSSEND=3,3", expects_prompt=True)
    fed(exchange, b"AT+WSSEND=3,3\r\n" + answer, bytewise)
    assert (response.prompt, response.final, response.busy, response.over) == (
        False, final, busy, True)
    assert exchange.phase is Phase.IDLE
    # A '>' now is nobody's: the engine no longer reads it as a prompt.
    _, notes, _ = fed(exchange, b">\r\n", bytewise)
    assert response.prompt is False and notes == [(b">\r\n", "outside any command")]


@BYTEWISE
def test_err_code_belongs_to_the_command(bytewise):
    exchange = Exchange()
    _, response = exchange.start("AT+WSCFG=9,1,1")
    fed(exchange, b"ERR CODE:0x01090000\r\n\r\nERROR\r\n", bytewise)
    assert (response.err_code, response.final) == (0x01090000, b"ERROR")


@BYTEWISE
def test_outside_any_command(bytewise):
    exchange = Exchange()
    routed, notes, garbage = fed(
        exchange, b"\r\nOK\r\nstray\r\nWIFI GOT IP\r\n+WS_CONNECTED:1\r\n", bytewise)
    assert notes == [(b"OK\r\n", "a final result outside any command"),
                     (b"stray\r\n", "outside any command")]
    assert [r.route.urc for r in routed] == [False, False, False, True]
    assert not garbage and exchange.open_links == {1}


@BYTEWISE
def test_an_info_line_the_command_does_not_print_is_noted(bytewise):
    exchange = Exchange()
    _, response = exchange.start("AT+WSCFG=0,10,120")
    _, notes, _ = fed(exchange, b"+WSCFG:0,10,120,1024\r\n\r\nOK\r\n", bytewise)
    assert response.final == b"OK" and response.lines == [b"+WSCFG:0,10,120,1024"]
    assert notes == [(b"+WSCFG:0,10,120,1024\r\n", "in the answer to b'AT+WSCFG=0,10,120'")]


@BYTEWISE
def test_a_reboot_nobody_asked_for_cuts_the_command_short(bytewise):
    exchange = Exchange()
    exchange.open_links.add(0)
    _, response = exchange.start("AT")
    routed, notes, _ = fed(exchange, b"AT\r\nready\r\n", bytewise)
    assert isinstance(response.ended_by, Ready) and response.over
    assert [r.route.reboot for r in routed] == [False, True]
    assert notes == [(b"ready\r\n", "nobody asked for a reset: the device rebooted")]
    assert exchange.open_links == set() and exchange.phase is Phase.IDLE


@BYTEWISE
def test_a_reset_asked_for_boots_quietly(bytewise):
    exchange = Exchange()
    _, response = exchange.start("AT+RST")
    routed, notes, _ = fed(exchange, b"AT+RST\r\n\r\nOK\r\nESP-ROM:esp8684\r\nready\r\n",
                           bytewise)
    assert response.final == b"OK" and notes == []
    assert not any(r.route.reboot for r in routed) and routed[-1].route.urc
    assert exchange.rebooting is False
    # After it, a `ready` is a reboot again.
    routed, _, _ = fed(exchange, b"ready\r\n", bytewise)
    assert routed[-1].route.reboot


# A stray space in the header; its data holds a line end and bytes that are no text.
MALFORMED_WS_DATA = b"+WS_DATA:0, 6,a\nb\xff\r\n"


@BYTEWISE
@pytest.mark.parametrize("in_command", [False, True], ids=["between-commands", "in-a-command"])
def test_a_broken_urc_is_one_rule_wherever_it_comes(bytewise, in_command):
    """Output nobody asked for (the URC's clause fails), never garbage, and a command in flight
    goes on to its own answer."""
    exchange = Exchange()
    exchange.open_links.add(0)
    response = exchange.start("AT")[1] if in_command else None
    routed, notes, garbage = fed(exchange, MALFORMED_WS_DATA + b"\r\nOK\r\n", bytewise)
    assert [where for _, where in notes] == [
        "broken framing (malformed +WS_DATA header)",
        "after a +WS_DATA in a broken form (its data, read as lines)"] + (
        [] if in_command else ["a final result outside any command"])
    assert not garbage
    if in_command:
        assert response.final == b"OK" and response.ended_by is None


@BYTEWISE
def test_ws_data_without_its_crlf_is_a_broken_urc_too(bytewise):
    exchange = Exchange()
    exchange.open_links.add(0)
    _, notes, garbage = fed(exchange, b"+WS_DATA:0,3,abcX\r\n", bytewise)
    # The engine reads on from the stray byte as a line: the broken URC's, not garbage.
    assert notes == [(b"X", "broken framing (+WS_DATA payload not followed by CR-LF)"),
                     (b"X\r\n", "after a +WS_DATA in a broken form (its data, read as lines)")]
    assert not garbage


@BYTEWISE
@pytest.mark.parametrize("in_command", [False, True], ids=["between-commands", "in-a-command"])
def test_garbage_is_a_device_fault_and_ends_a_command(bytewise, in_command):
    exchange = Exchange()
    response = exchange.start("AT")[1] if in_command else None
    routed, notes, garbage = fed(exchange, b"\xff" * (MAX_LINE_BYTES + 1), bytewise)
    assert garbage
    if in_command:
        assert response.ended_by is not None and response.over and notes == []
    else:
        assert [where for _, where in notes] == [
            f"broken framing (more than {MAX_LINE_BYTES} bytes without a line end)"]


@BYTEWISE
def test_ws_data_for_a_link_not_open_is_noted(bytewise):
    exchange = Exchange()
    _, notes, _ = fed(exchange, b"+WS_DATA:1,2,hi\r\n", bytewise)
    assert notes == [(b"+WS_DATA:1,2,hi...", "+WS_DATA for link 1, which is not open")]
    _, notes, _ = fed(exchange, b"+WS_CONNECTED:1\r\n+WS_DATA:1,2,hi\r\n+WS_CLOSED:1\r\n",
                      bytewise)
    assert notes == [] and exchange.open_links == set()


def test_given_up_command_leaves_what_comes_to_nobody():
    exchange = Exchange()
    _, response = exchange.start("AT")
    exchange.give_up()
    _, notes, _ = fed(exchange, b"\r\nOK\r\n", False)
    assert response.final is None
    assert notes == [(b"OK\r\n", "a final result outside any command")]


def test_every_phase_routes_every_kind():
    assert {phase: set(routes) for phase, routes in ROUTES.items()} == {
        phase: set(Kind) for phase in Phase}
