"""The esp_websocket_client versions the model's library can follow, as data: what each one's
task loop does differently (Behaviour knobs) and which known deviations it has fixed.

ESP-AT ships 1.2.3 (BEHAVIOUR.md); 1.8.0 is the newest, what firmware would carry once ESP-AT
moves its pin. Both run on ESP-IDF v5.4.4's transport, so every deviation that lives there (KD-6,
KD-7, KD-9, KD-10, KD-11, KD-13..KD-19) stays; SUMMARY.md "Where 1.2.3 and 1.8.0 really differ".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Library:
    version: str
    # Behaviour knobs of its task loop that are no deviation from the seed (timing within it).
    loop: dict[str, Any] = field(default_factory=dict)
    # Known deviations its code no longer has (their defects are left out of --firmware shipping).
    fixed: tuple[str, ...] = ()
    evidence: str = ""


LIBRARIES: dict[str, Library] = {
    "1.2.3": Library(
        "1.2.3", loop={"reconnect_waits_in_halves": True},
        evidence="traces/esp_websocket_client/1.2.3; C123:1006, 1040 (reconnect wait in halves)"),
    "1.8.0": Library(
        "1.8.0", fixed=("KD-4",),
        evidence="traces/esp_websocket_client/1.8.0; ping_with_server_stream (KD-4 fixed in "
                 "1.6.0), C180:1349-1357 (the reconnect wait is exact and woken by a stop)"),
}
SHIPPED = "1.2.3"        # what ESP-AT pins (BEHAVIOUR.md "Which library version")
# The host the traces were recorded on (traces/FORMAT.md "Host caveats"): x86-64 gcc, where a
# plain char is signed (TWS:553). Only a replay of those traces sets it (`python -m sim
# --signed-char`); an ESP32 build reads the byte unsigned.
TRACE_HOST_KNOBS = {"length64_sign_extended": True}


def library(version: str) -> Library:
    try:
        return LIBRARIES[version]
    except KeyError:
        raise ValueError(f"unknown library {version!r}; known: {', '.join(LIBRARIES)}") from None


def model_library(firmware: str, version: str | None) -> str | None:
    """The library a model of `firmware` runs: the one named, else for shipping firmware what
    ESP-AT pins; the conforming model has none of its own (its loop is the seed's reading)."""
    if version is not None:
        return library(version).version
    return SHIPPED if firmware == "shipping" else None
