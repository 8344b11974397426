"""Firmware profiles: the limits and the command list of each documented stage (VERSIONS.md).

Only `seed` is modelled today; its limits come from the spec data (spec/websocket_at.toml). The
later stages are recorded here as their VERSIONS.md deltas so that adding one is filling in data
plus the handlers its new fields need; asking for one that is not modelled yet is refused at
start-up rather than silently serving seed behaviour.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import spec

_SEED = spec.load().profiles["seed"]

# Commands every ESP-AT build has, in the order AT+CMD? lists them.
BASIC_COMMANDS = ("AT", "ATE0", "ATE1", "AT+RST", "AT+GMR", "AT+CMD", "AT+SYSRAM",
                  "AT+CWMODE", "AT+CWJAP", "AT+CIPSTA")
SEED_WS_COMMANDS = ("AT+WSCFG", "AT+WSOPEN", "AT+WSSEND", "AT+WSCLOSE")


@dataclass(frozen=True)
class Profile:
    name: str
    doc_date: str
    commands: tuple[str, ...]
    buffer_size_max: int = _SEED.buffer_size_max      # AT+WSCFG <buffer_size> upper bound
    wssend_length_max: int = _SEED.wssend_length_max  # VERSIONS.md `current`: 16384
    wssend_length0_sends_empty: bool = False  # `current`: length 0 sends an empty frame, no prompt
    wsopen_has_auth: bool = False          # `auth`: fifth AT+WSOPEN field -> Authorization header
    wscfg_has_tls: bool = False            # `tls`: AT+WSCFG auth_mode, pki_number, ca_number
    wssend_has_fin: bool = False           # `current`: AT+WSSEND [,<fin>]
    modelled: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)


SEED = Profile(name="seed", doc_date="2022-12", commands=BASIC_COMMANDS + SEED_WS_COMMANDS)

# Later stages (VERSIONS.md), not modelled yet: the deltas are data so the next step is mechanical.
WSHEAD = Profile(name="wshead", doc_date="2023-12", commands=SEED.commands + ("AT+WSHEAD",),
                 modelled=False)
AUTH = Profile(name="auth", doc_date="2023-12", commands=WSHEAD.commands, wsopen_has_auth=True,
               modelled=False)
TLS = Profile(name="tls", doc_date="2024-11", commands=AUTH.commands, wsopen_has_auth=True,
              wscfg_has_tls=True, modelled=False)
CURRENT = Profile(name="current", doc_date="2026-01", commands=TLS.commands + ("AT+WSDATAFMT",),
                  buffer_size_max=16384, wssend_length_max=16384, wssend_length0_sends_empty=True,
                  wsopen_has_auth=True, wscfg_has_tls=True, wssend_has_fin=True, modelled=False)

PROFILES: dict[str, Profile] = {p.name: p for p in (SEED, WSHEAD, AUTH, TLS, CURRENT)}


def get_profile(name: str) -> Profile:
    """The profile called `name`; ValueError if unknown or not modelled yet."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
    if not profile.modelled:
        modelled = ", ".join(p.name for p in PROFILES.values() if p.modelled)
        raise ValueError(f"profile {name!r} is not modelled yet; modelled: {modelled}")
    return profile
