"""Named firmware defects the model can switch on, to measure the suite's detection power.

Each entry says what the firmware does differently; the code consults `device.has(name)` at the
point where the behaviour diverges. KD ids are the known deviations of BEHAVIOUR.md.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defect:
    name: str
    description: str
    kd: str | None = None  # the BEHAVIOUR.md known-deviation id, when it is one


_DEFECTS = (
    Defect("KD-1", "AT+WSOPEN <timeout_ms> checked as [1,180000]: 0 or an empty field answers ERROR",
           kd="KD-1"),
    Defect("KD-3", "AT+WSOPEN? never shows states 0 and 4: a link is removed as soon as it closes",
           kd="KD-3"),
    Defect("KD-4", "the ping clock restarts whenever data is readable: no pings while the server talks",
           kd="KD-4"),
    Defect("KD-5", "after AT+WSSEND opcode 8 the link stays connected (pings go on) and the server's "
           "close reply is answered with a second close frame", kd="KD-5"),
    Defect("KD-7", "the handshake accepts any HTTP status with the right Sec-WebSocket-Accept and never "
           "checks Upgrade/Connection or the subprotocol the server picked", kd="KD-7"),
    Defect("KD-10", "AT+WSSEND with opcode 8/9/10 and more than 125 bytes sends it as given "
           "(oversized, fragmented past buffer_size)", kd="KD-10"),
)

DEFECTS: dict[str, Defect] = {d.name: d for d in _DEFECTS}

# `--firmware shipping`: every implemented known deviation of shipping ESP-AT at once.
FIRMWARE_PRESETS: dict[str, tuple[str, ...]] = {
    "seed": (),
    "shipping": tuple(d.name for d in _DEFECTS if d.kd is not None),
}


def validate(names: tuple[str, ...] | list[str]) -> frozenset[str]:
    """The set of defect names, or ValueError naming the unknown ones."""
    unknown = [n for n in names if n not in DEFECTS]
    if unknown:
        raise ValueError(f"unknown defect(s) {', '.join(unknown)}; known: {', '.join(DEFECTS)}")
    return frozenset(names)
