"""Every timing value of the model, in one place. The firmware's timers come from the spec data
([timing] in spec/websocket_at.toml, from BEHAVIOUR.md); the rest are the model's own. Tests may
shorten the long waits (reconnect) by passing their own `Timings` to `Device`.

Two presets, chosen once when the model starts: DEFAULT_TIMINGS (plain: exact timers, answers at
loopback speed) and BOARD_TIMINGS (`python -m sim --board-like`: what a board on Wi-Fi shows, so
the suite meets a board's timing without a board)."""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import spec

_FIRMWARE = spec.load().timing
# The board-like preset's random draws (network delays, which reconnect waits run late) come from
# this seed, so a failure seen once can be run again with the same draws.
BOARD_SEED = 6455


@dataclass(frozen=True)
class Timings:
    # After an abort (pong timeout, TCP reset/EOF) the client waits this long in state 3 before
    # state 1 (firmware: about 10 s, sometimes 15 s; the model takes the shorter, unless
    # reconnect_late_share says otherwise).
    reconnect_wait_s: float = _FIRMWARE.reconnect_wait_s[0]
    # The reconnect wait is checked this often; a stop (KD-2's teardown) waits for the next check.
    reconnect_check_s: float = _FIRMWARE.reconnect_check_s
    # After answering a server close frame, wait at most this long for the server to drop TCP.
    close_drain_wait_s: float = _FIRMWARE.close_drain_s
    # How long a closed link stays listed with state 0 before it disappears (seed: state 0 exists;
    # BEHAVIOUR.md: "briefly, then the link disappears").
    closed_state_linger_s: float = 0.5
    # After the host sent a close frame itself (AT+WSSEND opcode 8), wait this long for the
    # server's close reply before dropping TCP (RFC 6455 §7.1.1; long enough for the C4 test's 3 s).
    client_close_wait_s: float = 5.0
    # AT+RST: the port is quiet this long before boot noise and `ready` (a board takes 50-100 ms).
    rst_quiet_s: float = 0.075
    # AT+WSSEND data mode: give up (ERROR) when the host sends no byte for this long, so a silent
    # host cannot wedge the model forever.
    data_input_idle_timeout_s: float = 20.0
    # The library's connect/handshake bound (AT+WSOPEN <timeout_ms> 0, reconnect attempts, KD-2).
    network_timeout_s: float = _FIRMWARE.network_timeout_s

    # ---- board-like timing (None / 0: off, the plain model) ------------------------------------
    # The conforming library waits exactly reconnect_wait_s; this share of its waits lasts
    # reconnect_check_s longer (10 s, or 15 s: BEHAVIOUR.md "the wait is checked every 5 s").
    reconnect_late_share: float = 0.0
    # 1.2.3 sleeps half the wait per pass in exact ticks and reconnects once MORE than the wait
    # has passed: after 1.5 x the wait, unless a check runs this many ms late (uniform, whole ms)
    # and it reconnects after the wait.
    tick_jitter_ms_span: tuple[int, int] | None = None
    # One-way delay (uniform in [lo, hi] seconds, drawn per write and per read, order preserved)
    # on the link's TCP traffic, in each direction; a connect costs one round trip.
    network_delay_s: tuple[float, float] | None = None
    # How long the firmware takes to answer an AT command (uniform in [lo, hi]): applied to what
    # the AT port prints by whoever builds the port's sink (AtOutputDelay below).
    at_answer_latency_s: tuple[float, float] | None = None
    # Where the random draws come from (shared by every link of the device).
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def draw(self, span: tuple[float, float]) -> float:
        lo, hi = span
        return self.rng.uniform(lo, hi)

    def network_delay(self) -> float:
        """One way across the network, this time; 0 in the plain model."""
        return self.draw(self.network_delay_s) if self.network_delay_s is not None else 0.0

    def reconnect_wait_ms(self) -> int:
        """The library's reconnect timeout (reconnect_timeout_ms)."""
        return round(self.reconnect_wait_s * 1000)

    def drawn_reconnect_wait_ms(self) -> int:
        """This wait in state 3 (conforming library): the timeout, or one check longer
        (reconnect_late_share)."""
        if self.reconnect_late_share and self.rng.random() < self.reconnect_late_share:
            return round((self.reconnect_wait_s + self.reconnect_check_s) * 1000)
        return self.reconnect_wait_ms()

    def tick_jitter_ms(self) -> int:
        """How late a reconnect check of 1.2.3 runs, in whole ms (0 on the traces' host)."""
        span = self.tick_jitter_ms_span
        return self.rng.randint(*span) if span is not None else 0


DEFAULT_TIMINGS = Timings()

# A board on a lab's Wi-Fi: its 10-or-15 s reconnect wait (10 s three times in four), 2-20 ms one
# way to the server, AT answers in 1-5 ms. (The client task's 1 s poll is the library's, always.) The UART's 115200
# baud pacing is the AT port's (sim/uart.py).
BOARD_TIMINGS = Timings(
    reconnect_late_share=0.25,
    tick_jitter_ms_span=(0, 3),
    network_delay_s=(0.002, 0.020),
    at_answer_latency_s=(0.001, 0.005),
    rng=random.Random(BOARD_SEED),
)


class AtOutputDelay:
    """A sink for Device.attach that hands what the device prints on to `sink` after the
    firmware's answer latency (at_answer_latency_s), in order; with no latency set, at once.
    Must be called from the event loop that runs the device."""

    def __init__(self, sink, timings: Timings) -> None:
        self._sink = sink
        self._timings = timings
        self._queue: list[tuple[float, bytes]] = []
        self._last_due = 0.0

    def __call__(self, data: bytes) -> None:
        span = self._timings.at_answer_latency_s
        if span is None:
            self._sink(data)
            return
        loop = asyncio.get_running_loop()
        due = max(self._last_due, loop.time() + self._timings.draw(span))
        self._last_due = due
        self._queue.append((due, data))
        loop.call_at(due, self._flush)

    def _flush(self) -> None:
        now = asyncio.get_running_loop().time()
        while self._queue and self._queue[0][0] <= now:
            self._sink(self._queue.pop(0)[1])
