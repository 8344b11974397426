"""One test per defect of the later profiles (sim/defects.py): the clean model and the model with
the defect, in the same scenario, behave as EXPECTED says; every later profile's defect has one."""
from __future__ import annotations

from collections.abc import Callable

import pytest

import spec
from sim import DEFECTS
from tests.unit.test_sim import DEFAULT_INTERVALS, ERROR, OK, model_at, running_ws_server
from tests.unit.test_sim_profiles import (FRAGMENTED, PROMPT, SEND_OK, LocalPki, data_mode,
                                          header_lines, opened, receive, send_ok, tls_open,
                                          tls_servers, wshead)
from wire.frames import OP_BINARY, OP_CONTINUATION, OP_PING, OP_TEXT, encode_frame


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> LocalPki:
    return LocalPki(tmp_path_factory.mktemp("pki"))

# ---- one test per defect of the later profiles: its knob changes the behaviour ----------------

PROVEN: dict[str, Callable] = {}


def proves(defect: str):
    """Register `scenario(at, srv, pki) -> observation` for a defect: test_defect_changes_the_
    behaviour runs it on the clean model and on the defective one of the defect's profile, and
    compares both with EXPECTED."""
    def register(scenario):
        PROVEN[defect] = scenario
        return scenario
    return register


def test_every_later_profile_defect_is_proven_here():
    later = sorted(d.name for d in DEFECTS.values() if d.profile != spec.DEFAULT_PROFILE)
    assert sorted(PROVEN) == sorted(EXPECTED) == later


@proves("wshead-clear-ignored")
def _clear(at, srv, pki):
    wshead(at, b"X-A: 1")
    assert at.cmd("AT+WSHEAD=0") == OK
    return at.cmd("AT+WSHEAD?")


@proves("wshead-crlf-accepted")
def _crlf(at, srv, pki):
    return wshead(at, b"X-A: 1\r\nX-B: 2"), at.cmd("AT+WSHEAD?")


@proves("wshead-not-on-reconnect")
def _reconnect(at, srv, pki):
    wshead(at, b"X-A: 1")
    opened(at, srv).close()
    at.expect(b"+WS_CONNECTED:0\r\n", timeout=3)
    return header_lines(srv.accept())


@proves("wshead-query-space")
def _query(at, srv, pki):
    wshead(at, b"X-A: 1")
    return at.cmd("AT+WSHEAD?")


@proves("wshead-takes-one-byte-less")
def _short(at, srv, pki):
    at.write(b"AT+WSHEAD=6\r\n")
    at.expect(b">")
    at.write(b"X-A: 1")                       # short by one: the "1" comes while it is busy, lost
    after = at.quiet_for(0.3)
    at.write(b"\r\n")
    return after, at.quiet_for(0.3), at.cmd("AT+WSHEAD?")


@proves("auth-header-dropped")
def _dropped(at, srv, pki):
    return header_lines(opened(at, srv, 0, ',,,"Bearer x"'))


@proves("auth-header-lowercase")
def _lower(at, srv, pki):
    return header_lines(opened(at, srv, 0, ',,,"Bearer x"'))


@proves("auth-after-wshead")
def _after(at, srv, pki):
    wshead(at, b"X-A: 1")
    return header_lines(opened(at, srv, 0, ',,,"Bearer x"'))


def _tls_scenario(cases):
    def scenario(at, srv, pki):
        with tls_servers(pki) as servers:
            return [tls_open(at, servers[name], fields) for fields, name in cases]
    return scenario


proves("tls-host-not-checked")(_tls_scenario([(",2,0,0", "other-host"), (",2,0,0", "stranger")]))
proves("tls-ca-not-checked")(_tls_scenario([(",2,0,0", "stranger"), (",3,0,0", "other-host")]))
proves("tls-client-cert-not-sent")(_tls_scenario([(",3,0,0", "mutual"), (",1,0,0", "mutual")]))


@proves("tls-mode0-numbers-accepted")
def _mode0(at, srv, pki):
    return (at.cmd(f"AT+WSCFG=0,{DEFAULT_INTERVALS},1024,0,1,1"),
            at.cmd(f"AT+WSCFG=0,{DEFAULT_INTERVALS},1024,0,,"))


@proves("wscfg-auth-mode-accepts-4")
def _mode4(at, srv, pki):
    return at.cmd(f"AT+WSCFG=0,{DEFAULT_INTERVALS},1024,4,0,0")


@proves("wscfg-pki-number-accepts-256")
def _pki256(at, srv, pki):
    return at.cmd(f"AT+WSCFG=0,{DEFAULT_INTERVALS},1024,1,256,0")


@proves("continuation-fin-drops-data")
def _drops(at, srv, pki):
    conn = opened(at, srv)
    send_ok(at, "AT+WSSEND=0,2,1,,0", b"ab")
    answer = data_mode(at, "AT+WSSEND=0,2,0,,1", b"cd")
    at.quiet_for(0.2)
    frames = []
    while not conn.frames.empty():
        frame = conn.frames.get()
        if frame.opcode != OP_PING:
            frames.append((frame.opcode, frame.fin, frame.payload))
    return answer, frames


@proves("fin-ignored")
def _fin(at, srv, pki):
    conn = opened(at, srv)
    send_ok(at, "AT+WSSEND=0,2,1,,0", b"ab")
    return conn.next_frame().fin


@proves("wssend-fin-accepts-2")
def _fin2(at, srv, pki):
    opened(at, srv)
    at.write(b"AT+WSSEND=0,2,1,,2\r\n")
    out = at.expect_re(rb"\r\n(OK|ERROR)\r\n").group(0)
    if out == OK:
        at.write(b"ab")
        at.expect(SEND_OK)
    return out


@proves("length-zero-refused")
def _zero(at, srv, pki):
    opened(at, srv)
    at.write(b"AT+WSSEND=0,0\r\n")
    return at.expect_re(rb"\r\n(SEND OK|ERROR)\r\n").group(0)


@proves("buffer-size-8192")
def _buffer(at, srv, pki):
    return (at.cmd(f"AT+WSCFG=0,{DEFAULT_INTERVALS},8193"),
            at.cmd(f"AT+WSCFG=0,{DEFAULT_INTERVALS},8192"))


@proves("wsdatafmt-reset-by-wsclose")
def _reset(at, srv, pki):
    assert at.cmd("AT+WSDATAFMT=0,0,31") == OK
    opened(at, srv)
    assert at.cmd("AT+WSCLOSE=0") == OK
    return receive(at, srv, encode_frame(OP_BINARY, b"q"), None)


@proves("wsdatafmt-kept-on-reset")
def _kept_on_reset(at, srv, pki):
    assert at.cmd("AT+WSDATAFMT=0,0,31") == OK
    at.write(b"AT+RST\r\n")
    at.expect(b"\r\nready\r\n")
    at.cmd("ATE0")
    return receive(at, srv, encode_frame(OP_BINARY, b"q"), None)


@proves("wsdatafmt-offset-from-message")
def _offset(at, srv, pki):
    return receive(at, srv, FRAGMENTED, (0, 12))


@proves("wsdatafmt-no-crlf")
def _nocrlf(at, srv, pki):
    return receive(at, srv, FRAGMENTED, (2, 31))


@proves("wsdatafmt-mask-accepts-0")
def _mask0(at, srv, pki):
    return at.cmd("AT+WSDATAFMT=0,0,0")


@proves("wsdatafmt-default-mask-63")
def _default(at, srv, pki):
    return receive(at, srv, encode_frame(OP_BINARY, b"q"), None)


# What the clean model shows and what the defective one shows instead.
EXPECTED = {
    "wshead-clear-ignored": (OK, b'+WSHEAD:0,"X-A:1"\r\n' + OK),
    "wshead-crlf-accepted": ((ERROR, OK), (OK, b'+WSHEAD:0,"X-A:1\r\nX-B: 2"\r\n' + OK)),
    "wshead-not-on-reconnect": (["X-A: 1"], []),
    "wshead-query-space": (b'+WSHEAD:0,"X-A:1"\r\n' + OK, b'+WSHEAD:0,"X-A: 1"\r\n' + OK),
    "wshead-takes-one-byte-less": ((OK, b"", b'+WSHEAD:0,"X-A:1"\r\n' + OK),
                                   (OK, b"", b'+WSHEAD:0,"X-A:"\r\n' + OK)),
    "auth-header-dropped": (["Authorization: Bearer x"], []),
    "auth-header-lowercase": (["Authorization: Bearer x"], ["authorization: Bearer x"]),
    "auth-after-wshead": (["Authorization: Bearer x", "X-A: 1"],
                          ["X-A: 1", "Authorization: Bearer x"]),
    "tls-host-not-checked": ([False, False], [True, False]),
    "tls-ca-not-checked": ([False, False], [True, True]),
    "tls-client-cert-not-sent": ([True, True], [False, False]),
    "tls-mode0-numbers-accepted": ((ERROR, ERROR), (OK, OK)),
    "wscfg-auth-mode-accepts-4": (ERROR, OK),
    "wscfg-pki-number-accepts-256": (ERROR, OK),
    "continuation-fin-drops-data": (
        ((PROMPT, SEND_OK), [(OP_TEXT, False, b"ab"), (OP_CONTINUATION, True, b"cd")]),
        ((PROMPT, ERROR), [(OP_TEXT, False, b"ab")])),
    "fin-ignored": (False, True),
    "wssend-fin-accepts-2": (ERROR, OK),
    "length-zero-refused": (SEND_OK, ERROR),
    "buffer-size-8192": ((OK, OK), (ERROR, OK)),
    "wsdatafmt-reset-by-wsclose": (b"+WS_DATA:0,2,1,1,0,1,q", b"+WS_DATA:0,1,q\r\n"),
    "wsdatafmt-kept-on-reset": (b"+WS_DATA:0,1,q\r\n", b"+WS_DATA:0,2,1,1,0,1,q"),
    "wsdatafmt-offset-from-message": (
        b"+WS_DATA:0,3,0,ab+WS_DATA:0,3,2,c+WS_DATA:0,4,0,de+WS_DATA:0,4,2,fg",
        b"+WS_DATA:0,3,0,ab+WS_DATA:0,3,2,c+WS_DATA:0,4,3,de+WS_DATA:0,4,5,fg"),
    "wsdatafmt-no-crlf": (b"+WS_DATA:0,1,1,7,0,7,abcdefg", b"+WS_DATA:0,1,1,7,0,7,abcdefg\r\n"),
    "wsdatafmt-mask-accepts-0": (ERROR, OK),
    "wsdatafmt-default-mask-63": (b"+WS_DATA:0,1,q\r\n", b"+WS_DATA:0,2,1,1,0,1,q\r\n"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_defect_changes_the_behaviour(name, pki):
    scenario = PROVEN[name]
    profile = DEFECTS[name].profile
    seen = []
    for defects in ((), (name,)):
        with running_ws_server() as srv, \
                model_at(*defects, profile=profile, pki=pki.partitions) as at:
            seen.append(scenario(at, srv, pki))
    assert tuple(seen) == EXPECTED[name]
