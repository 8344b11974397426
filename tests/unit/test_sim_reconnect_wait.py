"""The model's reconnect wait under esp_websocket_client 1.2.3: the task sleeps the wait in halves
(vTaskDelay(T/2)) and checks `elapsed > T` between them, so a lost connection comes back after
three halves (two with a board's late tick), never after one or four: BEHAVIOUR.md's 9-16.75 s for T = 10 s.

Where the loss is found must not matter: a FIN is seen by the read after a poll, a reset by the
poll itself. The model once counted a half it had not slept when the poll found the loss, and
reconnected after one half (5 s on a board)."""
from __future__ import annotations

import dataclasses
import socket
import struct
import time

import pytest

from sim import SimThread
from tests.unit.test_sim import FAST, OK, AtPort, open_link, running_ws_server

HALF_S = 0.25                         # half of the shortened reconnect wait
EXACT = dataclasses.replace(FAST, reconnect_wait_s=2 * HALF_S)
# A board's late tick makes the check at two halves true; the conforming library's late share
# (one check longer) must not add to it: 1.2.3 waits the timeout itself, not a drawn one.
LATE_TICK = dataclasses.replace(EXACT, tick_jitter_ms_span=(1, 1), reconnect_late_share=1.0,
                                reconnect_check_s=HALF_S)
SCHEDULING_S = 0.1                    # this host's timers, a thread hop to the server


def _reset(conn) -> None:
    """Drop the connection with a TCP reset (SO_LINGER 0), not a FIN."""
    sock = conn.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _fin(conn) -> None:
    conn.close()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("drop", [_fin, _reset], ids=["fin", "reset"])
@pytest.mark.parametrize("timings, halves", [(EXACT, 3), (LATE_TICK, 2)],
                         ids=["exact-ticks", "late-tick"])
def test_1_2_3_reconnects_after_whole_halves_however_the_loss_is_found(drop, timings, halves):
    with SimThread("seed", library_version="1.2.3", timings=timings).start() as model, \
            running_ws_server() as server:
        at = AtPort(model.url)
        try:
            assert at.cmd("ATE0").endswith(OK)
            conn = open_link(at, server)
            drop(conn)
            at.expect(b"+WS_DISCONNECTED:0\r\n")
            lost = time.monotonic()
            server.accept(timeout=6 * HALF_S)
            after = time.monotonic() - lost
        finally:
            at.close()
    assert halves * HALF_S - SCHEDULING_S <= after <= halves * HALF_S + SCHEDULING_S, \
        f"reconnected {after:.2f} s after the loss; the 1.2.3 loop: {halves} halves of {HALF_S} s"
