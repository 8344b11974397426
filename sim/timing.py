"""Every timing value of the model, in one place. Defaults follow BEHAVIOUR.md; tests may shorten
the long waits (reconnect) by passing their own `Timings` to `Device`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timings:
    # After an abort (pong timeout, TCP reset/EOF) the client waits this long in state 3 before
    # state 1 (firmware: about 10 s, sometimes 15 s; BEHAVIOUR.md "The state codes").
    reconnect_wait_s: float = 10.0
    # After answering a server close frame, wait at most this long for the server to drop TCP
    # (BEHAVIOUR.md "Close": 1 s).
    close_drain_wait_s: float = 1.0
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
    # AT+WSOPEN <timeout_ms> 0: the library's network timeout applies (websocket-v1.2.3 maps <=0
    # to 10000 ms; field-defects A8).
    network_timeout_default_ms: int = 10000
    # A reconnect attempt's connect+handshake bound (the library's network timeout).
    reconnect_attempt_timeout_ms: int = 10000


DEFAULT_TIMINGS = Timings()
