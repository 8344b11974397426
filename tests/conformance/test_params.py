"""AT parameter syntax, for all four commands: malformed input answers ERROR and changes nothing
(configuration, links, the wire); empty optional fields take their defaults; escapes in quoted
strings; the 256-byte command line."""
import time

import pytest

import spec
from esp_at.commands import WSOPEN_QUERY, quote

from fixtures import margins
from fixtures.links import (frames_until_marker, link_states, open_link,
                            wsopen_answer_timeout, DEFAULT_KEEPALIVE)
from fixtures.verdicts import check
from tests.conformance.observe import (WITNESS_BUFFER, WITNESS_LENGTH, buffer_size_in_force,
                                       refused_and_config_kept, witness_config)

SPEC = spec.load()
PING, PONG = DEFAULT_KEEPALIVE            # AT+WSCFG's defaults, in the lines below
ESTABLISHED = SPEC.state("established")
LINE_MAX = SPEC.at.command_line_max_bytes
WRAPS_TO_0 = str(1 << 32)                        # 4294967296: 0 to a parser that overflows
WRAPS_TO_64 = str((1 << 32) + 64)

# A field past the profile's set form (spec data [[form]]), after every field the form has, each
# with a value the command takes: AT+WSSEND gains <fin> on the development line, so a fifth field
# there is not one too many.
FULL_FORMS = {"AT+WSCFG": {"link_id": "0", "ping_intv_sec": "10", "ping_timeout_sec": "120",
                           "buffer_size": "64", "auth_mode": "1", "pki_number": "0",
                           "ca_number": "0"},
              "AT+WSOPEN": {"link_id": "0", "subprotocol": '""', "timeout_ms": "5000",
                            "auth": '"Basic eA=="'},
              "AT+WSSEND": {"link_id": "0", "length": "5", "opcode": "2", "timeout_ms": "1000",
                            "fin": "1"}}


def one_field_too_many(command: str, profile, **given: str) -> str:
    """`command` with every field of the profile's form, then one more (`1`)."""
    values = {**FULL_FORMS[command], **given}
    fields = [values[f.name] for f in SPEC.form(command, profile.name)]
    return f"{command}=" + ",".join(fields + ["1"])


def line_for(line, profile) -> str:
    return line(profile) if callable(line) else line


# Each line would set buffer_size 64 on link 0 if a parser took it; the witness shows it did not.
MALFORMED_WSCFG = {
    "hex": f"AT+WSCFG=0,{PING},{PONG},0x40",
    "plus-sign": f"AT+WSCFG=0,+{PING},{PONG},64",
    "space": f"AT+WSCFG=0, {PING},{PONG},64",
    "overflow": f"AT+WSCFG=0,{PING},{PONG},{WRAPS_TO_64}",
    "overflow-id": f"AT+WSCFG={WRAPS_TO_0},{PING},{PONG},64",
    "quoted-number": f'AT+WSCFG="0",{PING},{PONG},64',
    "one-field-too-many": lambda profile: one_field_too_many("AT+WSCFG", profile),
    "letters": f"AT+WSCFG=a,{PING},{PONG},64",
    "empty-mandatory": f"AT+WSCFG=0,,{PONG},64",
    "two-fields": f"AT+WSCFG=0,{PING}",
    "no-fields": "AT+WSCFG=",
    "bare": "AT+WSCFG",
}


@pytest.mark.clause("PARAMS.malformed")
@pytest.mark.parametrize("line", MALFORMED_WSCFG.values(), ids=MALFORMED_WSCFG.keys())
def test_malformed_wscfg_is_refused_and_changes_nothing(at, ws_endpoint, profile, line):
    refused_and_config_kept(at, ws_endpoint, line_for(line, profile))


def malformed_wsopen(url: str) -> dict[str, str]:
    bare = url.removeprefix("ws://")
    return {
        "unquoted-uri": f"AT+WSOPEN=0,{url}",
        "hex-id": f"AT+WSOPEN=0x0,{quote(url)}",
        "overflow-id": f"AT+WSOPEN={WRAPS_TO_0},{quote(url)}",
        "plus-timeout": f"AT+WSOPEN=0,{quote(url)},,+5000",
        "space": f"AT+WSOPEN=0, {quote(url)}",
        "one-field-too-many": lambda profile: one_field_too_many("AT+WSOPEN", profile,
                                                                  uri=quote(url)),
        "unescaped-quote": f'AT+WSOPEN=0,"ws://{bare}?a="b"',
        "unescaped-comma": f'AT+WSOPEN=0,"ws://{bare}?a=1,2"',
        "no-uri": "AT+WSOPEN=0",
    }


@pytest.mark.clause("PARAMS.malformed")
@pytest.mark.parametrize("case", list(malformed_wsopen("ws://h:1/p")))
def test_malformed_wsopen_is_refused_and_connects_nowhere(at, ws_endpoint, profile, case):
    line = line_for(malformed_wsopen(ws_endpoint.url)[case], profile)
    response = at.cmd(line, timeout=wsopen_answer_timeout(None))
    response.expect(b"ERROR")
    assert not ws_endpoint.connections, f"the refused {line!r} still connected"
    assert link_states(at) == {}, f"the refused {line!r} left a link: {link_states(at)}"


MALFORMED_WSSEND = {
    "hex-length": "AT+WSSEND=0,0x5",
    "hex-opcode": "AT+WSSEND=0,5,0x2",
    "plus-length": "AT+WSSEND=0,+5",
    "space": "AT+WSSEND=0, 5",
    "overflow-id": f"AT+WSSEND={WRAPS_TO_0},5",
    "overflow-length": f"AT+WSSEND=0,{(1 << 32) + 5}",
    "quoted-id": 'AT+WSSEND="0",5',
    "one-field-too-many": lambda profile: one_field_too_many("AT+WSSEND", profile),
    "no-length": "AT+WSSEND=0",
}


@pytest.mark.clause("PARAMS.malformed")
@pytest.mark.parametrize("line", MALFORMED_WSSEND.values(), ids=MALFORMED_WSSEND.keys())
def test_malformed_wssend_is_refused_and_sends_nothing(at, ws_endpoint, profile, line):
    line = line_for(line, profile)
    ws_endpoint.echo = False
    open_link(at, 0, ws_endpoint.url)
    since = time.monotonic()
    response = at.send_data(line, b"12345")
    assert not response.prompt, f"{line!r} gave a prompt: {response.received!r}"
    response.expect(b"ERROR")
    sent = frames_until_marker(at, ws_endpoint, 0, since)
    assert not sent, f"the refused {line!r} sent {sent}"


MALFORMED_WSCLOSE = {
    "hex": "AT+WSCLOSE=0x0",
    "plus": "AT+WSCLOSE=+0",
    "space": "AT+WSCLOSE= 0",
    "overflow": f"AT+WSCLOSE={WRAPS_TO_0}",
    "quoted": 'AT+WSCLOSE="0"',
    "second-field": "AT+WSCLOSE=0,1",
    "no-field": "AT+WSCLOSE=",
    "bare": "AT+WSCLOSE",
}


@pytest.mark.clause("PARAMS.malformed")
@pytest.mark.parametrize("line", MALFORMED_WSCLOSE.values(), ids=MALFORMED_WSCLOSE.keys())
def test_malformed_wsclose_is_refused_and_closes_nothing(at, connected, ws_endpoint, line):
    connection = connected(0)
    at.cmd(line, timeout=margins.WSCLOSE_ANSWER_S).expect(b"ERROR", lines=[])
    assert link_states(at).get(0, (None,))[0] == ESTABLISHED, link_states(at)
    assert connection.is_open, f"the refused {line!r} closed link 0's connection"


@pytest.mark.clause("PARAMS.malformed")
def test_leading_zeros_are_decimal_or_refused(at, ws_endpoint):
    """AMBIGUITIES P-2: leading zeros read as decimal (007 is 7), or the line is refused; never
    another number."""
    witness_config(at)
    response = at.cmd("AT+WSCFG=00,010,0120,0064")
    in_force = buffer_size_in_force(at, ws_endpoint, 0)
    expected = {b"OK": 64, b"ERROR": WITNESS_BUFFER}.get(response.final)
    assert expected is not None and in_force == expected, (
        f"AT+WSCFG=00,010,0120,0064 answered {response.final!r}; link 0's buffer is {in_force}")


@pytest.mark.clause("PARAMS.empty_optional")
def test_empty_buffer_size_is_the_default(at, ws_endpoint):
    witness_config(at)
    at.cmd(f"AT+WSCFG=0,{PING},{PONG},").expect(b"OK", lines=[])
    in_force = buffer_size_in_force(at, ws_endpoint, 0)
    assert in_force == min(SPEC.default("AT+WSCFG", "buffer_size"), WITNESS_LENGTH), (
        f"AT+WSCFG=0,{PING},{PONG}, (empty <buffer_size>) left link 0 with buffer {in_force}")


@pytest.mark.clause("PARAMS.empty_optional")
@pytest.mark.parametrize("line", ["AT+WSSEND=0,5,", "AT+WSSEND=0,5,,"], ids=["opcode", "both"])
def test_empty_opcode_is_text(at, ws_endpoint, line):
    ws_endpoint.echo = False
    open_link(at, 0, ws_endpoint.url)
    response = at.send_data(line, b"empty")
    response.expect(b"SEND OK")
    frame = ws_endpoint.wait_frame(lambda rf: rf.frame.payload == b"empty",
                                   timeout=margins.SERVER_SEES_IT_S).frame
    assert frame.opcode == SPEC.default("AT+WSSEND", "opcode"), (
        f"{line!r}: an empty <opcode> must be the default (text); the frame had opcode "
        f"{frame.opcode}")


@pytest.mark.clause("PARAMS.empty_optional")
def test_empty_subprotocol_sends_none(at, ws_endpoint):
    response = at.cmd(f"AT+WSOPEN=0,{quote(ws_endpoint.url)},,5000",
                      timeout=wsopen_answer_timeout(5000))
    response.expect(b"OK")
    connection = ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S)
    assert connection.header("Sec-WebSocket-Protocol") in (None, ""), connection.handshake


@pytest.mark.clause("PARAMS.escapes")
def test_escaped_characters_reach_the_wire_plain(at, ws_endpoint):
    query = 'a=1,2&b="x"&c=back\\slash'
    uri = f"{ws_endpoint.url}?{query}"
    open_link(at, 0, uri)                        # quote() writes \, \" and \\
    handshake = ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S).handshake
    assert handshake.query == query, (
        f"sent the URI escaped as {quote(uri)!r}; the request carried the query "
        f"{handshake.query!r}, expected {query!r}")
    with check("WSOPEN.query.format"):
        # BEHAVIOUR.md: the query line prints the URI raw, a '"' inside it unescaped.
        at.cmd(WSOPEN_QUERY).expect(b"OK", lines=[f'+WSOPEN:0,{ESTABLISHED},"{uri}"'.encode()])


DEFAULT_OPEN_MS = SPEC.default("AT+WSOPEN", "timeout_ms")


def wsopen_line_of(length: int, url: str, timeout_ms: int = DEFAULT_OPEN_MS) -> str:
    """An AT+WSOPEN line of exactly `length` bytes: the URI's query pads it."""
    head = f"AT+WSOPEN=0,{quote(url + '?pad=')}"
    tail = f",,{timeout_ms}"
    pad = length - len(head) - len(tail)
    assert pad > 0
    return head[:-1] + "p" * pad + '"' + tail


@pytest.mark.clause("PARAMS.line_length")
def test_a_256_byte_line_is_taken_whole(at, ws_endpoint):
    line = wsopen_line_of(LINE_MAX, ws_endpoint.url)
    at.cmd(line, timeout=wsopen_answer_timeout(DEFAULT_OPEN_MS)).expect(b"OK")
    handshake = ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S).handshake
    assert handshake.query == "pad=" + line.split("?pad=")[1].split('"')[0], handshake


@pytest.mark.clause("PARAMS.line_length")
def test_a_257_byte_line_is_refused(at, ws_endpoint):
    # Cut to 256 bytes this line would still be a valid AT+WSOPEN (timeout 15000 -> 1500).
    line = wsopen_line_of(LINE_MAX + 1, ws_endpoint.url)
    response = at.cmd(line, timeout=wsopen_answer_timeout(DEFAULT_OPEN_MS))
    response.expect(b"ERROR")
    assert not ws_endpoint.connections, f"a {len(line)}-byte line was run: {ws_endpoint.connections}"
    assert link_states(at) == {}
