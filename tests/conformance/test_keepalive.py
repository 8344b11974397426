"""Ping/pong keepalive per AT+WSCFG: cadence, timeout, defaults, and pings under traffic.

Timing bounds come from BEHAVIOUR.md: ping spacing is ping_intv_sec plus the pong's round trip plus
up to about 1 s (the client loop wakes once a second), never less; the pong timeout is checked
about once a second. PING_SLACK_S is that second plus host scheduling.
"""
import threading
import time

import pytest

import spec

from fixtures.links import link_states

SPEC = spec.load()
PING_SLACK_S = 1.5
EARLY_TOLERANCE_S = 0.05         # timer granularity on either side; never a whole interval
DEFAULT_INTV = SPEC.param("AT+WSCFG", "ping_intv_sec").default
DEFAULT_TIMEOUT = SPEC.param("AT+WSCFG", "ping_timeout_sec").default


def ping_times(endpoint):
    return [rf.time for rf in endpoint.frames if rf.frame.opcode == 0x9]


@pytest.mark.clause("WSCFG.ping_intv_sec.effect")
@pytest.mark.parametrize("interval", [1, 2])
def test_pings_every_interval(at, connected, ws_endpoint, interval):
    opened = time.monotonic()
    connected(0, cfg=(interval, 60))
    count = 3
    pings = ws_endpoint.wait_frames(lambda rf: rf.frame.opcode == 0x9, count,
                                    timeout=count * (interval + PING_SLACK_S) + 1)
    times = [opened] + [rf.time for rf in pings]
    gaps = [round(b - a, 3) for a, b in zip(times, times[1:])]
    assert all(interval - EARLY_TOLERANCE_S <= g <= interval + PING_SLACK_S for g in gaps), (
        f"WSCFG.ping_intv_sec.effect: ping_intv_sec {interval}; expected pings every "
        f"{interval} s (up to +{PING_SLACK_S} s); gaps (from AT+WSOPEN) were {gaps}")
    assert all(rf.frame.fin and rf.frame.masked for rf in pings), pings


@pytest.mark.clause("WSCFG.ping_intv_sec.under_traffic")
def test_pings_go_on_while_the_server_talks(at, connected, ws_endpoint):
    interval = 2
    connected(0, cfg=(interval, 60))
    stop = threading.Event()

    def talk():
        while not stop.wait(0.4):                # more often than the ping interval
            ws_endpoint.send_text(b"tick")

    talker = threading.Thread(target=talk, daemon=True)
    started = time.monotonic()
    talker.start()
    try:
        window = 3 * (interval + PING_SLACK_S)
        pings = ws_endpoint.wait_frames(lambda rf: rf.frame.opcode == 0x9 and rf.time > started, 3,
                                        timeout=window)
    finally:
        stop.set()
        talker.join(2)
    assert len(pings) >= 3


@pytest.mark.slow
@pytest.mark.clause("WSCFG.ping_intv_sec.default")
def test_default_ping_interval_is_10_s(factory_defaults, connected, ws_endpoint):
    opened = time.monotonic()
    connected(0)
    ping = ws_endpoint.wait_frame(lambda rf: rf.frame.opcode == 0x9,
                                  timeout=DEFAULT_INTV + PING_SLACK_S + 1)
    after = ping.time - opened
    assert DEFAULT_INTV - EARLY_TOLERANCE_S <= after <= DEFAULT_INTV + PING_SLACK_S, (
        f"WSCFG.ping_intv_sec.default: with no AT+WSCFG the first ping came {after:.2f} s after "
        f"AT+WSOPEN; expected {DEFAULT_INTV} s")


def expect_pong_timeout(at, endpoint, interval, timeout, opened):
    """Pongs never come: +WS_DISCONNECTED after the first ping + timeout, TCP closed without a
    close frame, state 3."""
    first_ping = endpoint.wait_frame(lambda rf: rf.frame.opcode == 0x9,
                                     timeout=interval + PING_SLACK_S + 1)
    at.wait_urc(b"+WS_DISCONNECTED", 0, timeout=timeout + PING_SLACK_S + 1)
    gone = time.monotonic()
    waited = gone - first_ping.time
    assert timeout - EARLY_TOLERANCE_S <= waited <= timeout + PING_SLACK_S, (
        f"ping_timeout_sec {timeout}: +WS_DISCONNECTED came {waited:.2f} s after the first "
        f"unanswered ping; expected {timeout} s")
    connection = endpoint.wait_disconnect(timeout=PING_SLACK_S)
    closes = [rf for rf in connection.frames if rf.frame.opcode == 0x8]
    assert not closes, f"a pong timeout is an abort (BEHAVIOUR.md), yet close frames were sent: {closes}"
    return gone - opened


@pytest.mark.clause("WSCFG.ping_timeout_sec.effect", "URC.WS_DISCONNECTED",
                    "WSOPEN.state.wait_reconnect")
def test_no_pong_within_timeout_aborts_the_connection(at, connected, ws_endpoint):
    ws_endpoint.answer_pings(never=True)
    opened = time.monotonic()
    connected(0, cfg=(1, 2))
    expect_pong_timeout(at, ws_endpoint, 1, 2, opened)
    state = link_states(at).get(0, (None,))[0]
    assert state == 3, f"after a pong timeout AT+WSOPEN? must show state 3; shows {state}"


@pytest.mark.clause("WSCFG.ping_timeout_sec.effect")
def test_late_pong_within_timeout_keeps_the_link(at, connected, ws_endpoint):
    ws_endpoint.answer_pings(delay_ms=1000)
    connected(0, cfg=(1, 3))
    ws_endpoint.wait_frames(lambda rf: rf.frame.opcode == 0x9, 3, timeout=3 * (2 + PING_SLACK_S))
    at.expect_no_urc(b"+WS_DISCONNECTED", 0, within=0.5)
    assert link_states(at)[0][0] == 2


@pytest.mark.slow
@pytest.mark.clause("WSCFG.ping_timeout_sec.default")
def test_default_pong_timeout_is_120_s(factory_defaults, connected, ws_endpoint):
    ws_endpoint.answer_pings(never=True)
    opened = time.monotonic()
    connected(0)
    expect_pong_timeout(factory_defaults, ws_endpoint, DEFAULT_INTV, DEFAULT_TIMEOUT, opened)
