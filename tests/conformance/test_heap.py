"""Free heap over many connection cycles (AT+SYSRAM?): a leak per open/close, per server close or
per refused open shows as a steady fall (field-defects I1)."""
import re

import pytest

from esp_at.commands import wsclose, wsopen

from fixtures import margins
from fixtures.links import open_link, wait_link_closed, wsopen_answer_timeout
from fixtures.verdicts import check

CYCLES = 20                                      # of each kind
_SYSRAM = re.compile(rb"\+SYSRAM:(\d+),(\d+)")


def sysram(at) -> tuple[int, int]:
    """(free heap, its low-water mark)."""
    response = at.cmd("AT+SYSRAM?").expect(b"OK")
    match = _SYSRAM.fullmatch(response.lines[0]) if len(response.lines) == 1 else None
    assert match, f"AT+SYSRAM? answered {response.received!r}; expected +SYSRAM:<free>,<min_free>"
    return int(match.group(1)), int(match.group(2))


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
    cycles = [(open_and_close, plain), (open_and_server_close, closing), (refused_open, refusing)]
    for cycle, endpoint in cycles:               # warm up: first-use allocations are not leaks
        cycle(at, endpoint)
    free_before, low_before = sysram(at)
    for cycle, endpoint in cycles:
        for _ in range(CYCLES):
            cycle(at, endpoint)
    free_after, low_after = sysram(at)
    budget = margins.HEAP_DRIFT_PER_CYCLE_B * CYCLES * len(cycles)
    assert free_after >= free_before - budget, (
        f"free heap fell from {free_before} to {free_after} bytes over {CYCLES} cycles each of "
        f"open/close, open/server close and refused open: {free_before - free_after} bytes, "
        f"more than the {budget}-byte budget ({margins.HEAP_DRIFT_PER_CYCLE_B} B a cycle)")
    assert low_after >= low_before - budget, (
        f"the heap's low-water mark fell from {low_before} to {low_after} over the same cycles")
