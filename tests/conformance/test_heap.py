"""Free heap over many connection cycles (AT+SYSRAM?): a leak per open/close, per server close or
per refused open shows as a steady fall (field-defects I1)."""
import re
import time

import pytest

from esp_at.commands import wsclose, wsopen

from fixtures import margins
from fixtures.links import open_link, wait_link_closed, wsopen_answer_timeout
from fixtures.verdicts import check

CYCLES = 10                                      # of each kind, per batch
# Batches after the warm-up one: a leak shows in each of them, a board's transient allocations
# (lwIP keeps a few closed connections in TIME_WAIT, Wi-Fi buffers come and go) do not.
MEASURED_BATCHES = 2
SAMPLES = 3                                      # AT+SYSRAM? read this often, the best kept
_SYSRAM = re.compile(rb"\+SYSRAM:(\d+),(\d+)")


def free_heap(at) -> int:
    """The free heap (AT+SYSRAM?'s first field), the best of a few readings: a reading taken
    while something transient holds memory only looks like a leak."""
    readings = []
    for _ in range(SAMPLES):
        response = at.cmd("AT+SYSRAM?").expect(b"OK")
        match = _SYSRAM.fullmatch(response.lines[0]) if len(response.lines) == 1 else None
        assert match, f"AT+SYSRAM? answered {response.received!r}; expected +SYSRAM:<free>,<min_free>"
        readings.append(int(match.group(1)))
        time.sleep(0.1)
    return max(readings)


def open_and_close(at, endpoint):
    open_link(at, 0, endpoint.url)
    with check("WSCLOSE.set"):
        at.cmd(wsclose(0), timeout=margins.WSCLOSE_ANSWER_S).expect(b"OK")


def open_and_server_close(at, endpoint):
    open_link(at, 0, endpoint.url)
    endpoint.close(code=1000, drop_tcp=True)
    with check("URC.WS_CLOSED"):
        at.wait_urc(b"+WS_CLOSED", 0, timeout=margins.SERVER_SEES_IT_S)
    wait_link_closed(at, 0, margins.TCP_GONE_S)
    if at.cmd("AT+WSOPEN?").lines:               # a link shown in state 0 leaves on its own
        at.cmd(wsclose(0), timeout=margins.WSCLOSE_ANSWER_S).expect(b"OK")


def refused_open(at, endpoint):
    with check("WSOPEN.set.error"):
        at.cmd(wsopen(0, endpoint.url), timeout=wsopen_answer_timeout(None)).expect(b"ERROR")


@pytest.mark.clause("HEAP.no_leak")
def test_free_heap_does_not_drift_over_connection_cycles(at, new_endpoint):
    plain, closing, refusing = new_endpoint("plain"), new_endpoint("closing"), new_endpoint("refusing")
    refusing.refuse_handshake(403)
    kinds = [(open_and_close, plain), (open_and_server_close, closing), (refused_open, refusing)]

    def batch():
        for cycle, endpoint in kinds:
            for _ in range(CYCLES):
                cycle(at, endpoint)

    batch()                                      # warm up: first-use allocations are not leaks
    readings = [free_heap(at)]
    for _ in range(MEASURED_BATCHES):
        batch()
        readings.append(free_heap(at))
    budget = margins.HEAP_DRIFT_PER_CYCLE_B * CYCLES * len(kinds)
    falls = [before - after for before, after in zip(readings, readings[1:])]
    assert not all(fall > budget for fall in falls), (
        f"free heap after each batch of {CYCLES} cycles each of open/close, open/server close and "
        f"refused open: {readings} bytes; it fell by {falls} per batch, more than the "
        f"{budget}-byte budget ({margins.HEAP_DRIFT_PER_CYCLE_B} B a cycle) every time")
    assert readings[-1] >= readings[0] - budget * MEASURED_BATCHES, (
        f"free heap fell from {readings[0]} to {readings[-1]} over {MEASURED_BATCHES} batches")
