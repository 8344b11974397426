"""Every timing value of the model, in one place. The firmware's timers come from the spec data
([timing] in spec/websocket_at.toml, from BEHAVIOUR.md); the rest are the model's own. Tests may
shorten the long waits (reconnect) by passing their own `Timings` to `Device`."""
from __future__ import annotations

from dataclasses import dataclass

import spec

_FIRMWARE = spec.load().timing


@dataclass(frozen=True)
class Timings:
    # After an abort (pong timeout, TCP reset/EOF) the client waits this long in state 3 before
    # state 1 (firmware: about 10 s, sometimes 15 s; the model takes the shorter).
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


DEFAULT_TIMINGS = Timings()
