"""The model as a golden trace's replay needs it, as a process of its own (as the suite runs it):
the firmware and library asked for, and what the trace sets that has no AT command (the library's
network and reconnect timeouts) set through the model's own options. It runs at the trace host's
pace (no network delay, answers at once) and, where the host's compiler shows (a signed char,
TWS:553), with the host's reading."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fixtures.model_process import ModelProcess
from sim.defects import firmware_defects
from sim.library import SHIPPED

if TYPE_CHECKING:
    from replay.run import ModelOptions
    from replay.trace import Trace


def fin_send_for(options: "ModelOptions") -> bool:
    """Can the model send AT+WSSEND's <fin> and an empty final continuation? The conforming
    development line can; shipping firmware cannot (released: no <fin>; development: KD-12)."""
    return options.firmware == "seed"


def model_argv(trace: "Trace") -> tuple[str, ...]:
    """The trace's settings that have no AT command, and the traces' x86-64 host."""
    c = trace.config
    return ("--reconnect-wait", f"{c.reconnect_timeout_ms / 1000:g}",
            "--network-timeout", f"{c.network_timeout_ms / 1000:g}", "--signed-char")


@contextmanager
def start_model(trace: "Trace", options: "ModelOptions") -> Iterator[str]:
    from replay.projection import needs_fin
    profile = "current" if needs_fin(trace) else "seed"
    shipping = options.firmware == "shipping"
    defects = firmware_defects(options.firmware, profile,
                               options.library if shipping else SHIPPED) + options.defects
    model = ModelProcess(profile, defects, library=options.model_library, extra=model_argv(trace))
    url = model.start()
    try:
        yield url
    finally:
        model.stop()
