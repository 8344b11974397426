"""Ping/pong keepalive per AT+WSCFG: cadence (also under traffic), pong timeout, and the defaults.

Bounds come from fixtures/margins.py: ping spacing is ping_intv_sec plus the pong's round trip plus
up to about one timer tick, never less; the pong timeout is checked about once a second. Spacing
and timeouts are measured between two events seen at the server, so the network delay cancels.
"""
import threading
import time

import pytest

import spec

from wire.frames import OP_CLOSE, OP_PING

from fixtures import margins
from fixtures.progress import waiting_for
from fixtures.links import state_of
from fixtures.timeline import Timing, timed
from fixtures.verdicts import check, deviation

SPEC = spec.load()
DEFAULT_INTV = SPEC.default("AT+WSCFG", "ping_intv_sec")
DEFAULT_TIMEOUT = SPEC.default("AT+WSCFG", "ping_timeout_sec")
WAIT_RECONNECT = SPEC.state("wait_reconnect")


def is_ping(rf) -> bool:
    return rf.frame.opcode == OP_PING


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in zip(times, times[1:])]


def assert_pings_every(interval: int, pings, clause: str, since: float | None = None) -> None:
    """Consecutive pings (and, from `since`, the first) are interval apart within the bounds."""
    lo, hi = margins.ping_gap_bounds(interval)
    times = ([since] if since is not None else []) + [rf.time for rf in pings]
    for index, (start, end) in enumerate(zip(times, times[1:]), 1):
        timed(f"ping {index}", start, (lo, hi), end, f"ping_intv_sec {interval}")
    with check(clause):
        assert all(lo <= g <= hi for g in gaps(times)), (
            f"ping_intv_sec {interval}: expected pings {lo:.2f}-{hi:.2f} s apart; gaps were "
            f"{gaps(times)}")
        assert all(rf.frame.fin and rf.frame.masked and not rf.frame.payload for rf in pings), pings


@pytest.mark.timer
@pytest.mark.clause("WSCFG.ping_intv_sec.effect")
@pytest.mark.parametrize("interval", [1, 2])
def test_pings_every_interval(at, connected, ws_endpoint, interval):
    opened = time.monotonic()                    # the ping clock starts when AT+WSOPEN runs
    connected(0, cfg=(interval, 60))
    count = 3
    pings = ws_endpoint.wait_frames(is_ping, count,
                                    timeout=count * margins.ping_gap_bounds(interval)[1] + 1)
    assert_pings_every(interval, pings, "WSCFG.ping_intv_sec.effect", since=opened)


@pytest.mark.timer
@pytest.mark.clause("WSCFG.ping_intv_sec.under_traffic")
def test_pings_go_on_while_the_server_talks(at, connected, ws_endpoint):
    interval = 2
    connected(0, cfg=(interval, 60))
    quiet = ws_endpoint.wait_frames(is_ping, 2, timeout=2 * margins.ping_gap_bounds(interval)[1] + 1)
    assert_pings_every(interval, quiet, "WSCFG.ping_intv_sec.effect")   # first without traffic
    stop = threading.Event()

    def talk():
        while not stop.wait(0.4):                # more often than the ping interval
            ws_endpoint.send_text(b"tick")

    talker = threading.Thread(target=talk, daemon=True)
    started = quiet[-1].time
    talker.start()
    window = 3 * margins.ping_gap_bounds(interval)[1]
    try:
        time.sleep(window)
    finally:
        stop.set()
        talker.join(2)
    pings = [rf for rf in ws_endpoint.frames if is_ping(rf) and rf.time > started]
    lo, hi = margins.ping_gap_bounds(interval)
    times = [started] + [rf.time for rf in pings]
    spaced = [g for g in gaps(times)] + [round(time.monotonic() - times[-1], 3)]
    for index, (start, end) in enumerate(zip(times, times[1:] + [None]), 1):
        timed(f"ping {index} under traffic", start, (lo, hi), end, f"ping_intv_sec {interval}, "
              f"the server sending every 0.4 s")
    message = (f"ping_intv_sec {interval} while the server sends every 0.4 s: pings "
               f"{lo:.2f}-{hi:.2f} s apart expected; gaps {spaced[:-1]}, then {spaced[-1]} s "
               f"without a ping")
    if not pings:
        with deviation("WSCFG.ping_intv_sec.under_traffic"):   # KD-4: no pings under traffic
            raise AssertionError(message)
    assert all(lo <= g <= hi for g in spaced[:-1]) and spaced[-1] <= hi, message


@pytest.mark.slow
@pytest.mark.timer
@pytest.mark.clause("WSCFG.ping_intv_sec.default")
def test_default_ping_interval_holds(factory_defaults, connected, ws_endpoint):
    opened = time.monotonic()
    connected(0)
    lo, hi = margins.ping_gap_bounds(DEFAULT_INTV)
    pings = ws_endpoint.wait_frames(is_ping, 2, timeout=2 * hi + 1)
    assert_pings_every(DEFAULT_INTV, pings, "WSCFG.ping_intv_sec.default", since=opened)


def expect_pong_timeout(at, endpoint, interval, timeout):
    """Pongs never come: the abort follows the first unanswered ping by the timeout (both seen at
    the server), TCP closed without a close frame, +WS_DISCONNECTED, state 3."""
    first_ping = endpoint.wait_frame(is_ping, timeout=margins.ping_gap_bounds(interval)[1] + 1)
    lo, hi = margins.pong_timeout_bounds(timeout)
    timing = Timing("pong timeout", first_ping.time, (lo, hi),
                    f"ping_timeout_sec {timeout}, from the first unanswered ping to the abort")
    with waiting_for("the pong timeout", hi + 1):
        connection = endpoint.wait_disconnect(timeout=hi + 1)
    timing.came(connection.closed_at)
    waited = connection.closed_at - first_ping.time
    assert lo <= waited <= hi, (
        f"ping_timeout_sec {timeout}: the connection was aborted {waited:.2f} s after the first "
        f"unanswered ping; expected {lo:.2f}-{hi:.2f} s")
    closes = [rf for rf in connection.frames if rf.frame.opcode == OP_CLOSE]
    assert not closes, f"a pong timeout is an abort (BEHAVIOUR.md), yet close frames were sent: {closes}"
    urc = at.wait_urc(b"+WS_DISCONNECTED", 0, timeout=margins.AT_ONCE_S)
    assert urc.raw == b"+WS_DISCONNECTED:0\r\n", urc
    assert state_of(at, 0) == WAIT_RECONNECT, "after a pong timeout AT+WSOPEN? must show state 3"


@pytest.mark.timer
@pytest.mark.clause("WSCFG.ping_timeout_sec.effect")
def test_no_pong_within_timeout_aborts_the_connection(at, connected, ws_endpoint):
    ws_endpoint.answer_pings(never=True)
    connected(0, cfg=(1, 3))
    expect_pong_timeout(at, ws_endpoint, 1, 3)


@pytest.mark.timer
@pytest.mark.clause("WSCFG.ping_timeout_sec.effect")
def test_late_pong_within_timeout_keeps_the_link(at, connected, ws_endpoint):
    ws_endpoint.answer_pings(delay_ms=1000)
    connected(0, cfg=(1, 3))
    ws_endpoint.wait_frames(is_ping, 4, timeout=4 * margins.ping_gap_bounds(2)[1])
    at.expect_no_urc(b"+WS_DISCONNECTED", 0, within=0)
    assert ws_endpoint.connections[-1].is_open and len(ws_endpoint.connections) == 1
    assert state_of(at, 0) == SPEC.state("established")


@pytest.mark.slow
@pytest.mark.timer
@pytest.mark.clause("WSCFG.ping_timeout_sec.default")
def test_default_pong_timeout_holds(factory_defaults, connected, ws_endpoint):
    ws_endpoint.answer_pings(never=True)
    connected(0)
    expect_pong_timeout(factory_defaults, ws_endpoint, DEFAULT_INTV, DEFAULT_TIMEOUT)
