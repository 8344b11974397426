"""Firmware profiles (VERSIONS.md) as the model runs them: the spec data's resolved profiles
(spec/websocket_at.toml, `spec.load().profiles`) plus what the model adds to each, the basic ESP-AT
commands AT+CMD? lists before the WebSocket ones and the compile time AT+GMR prints. Commands,
limits and command forms are the spec's; nothing of them is repeated here. Every profile of the
spec data is modelled; an unknown name is a ValueError.
"""
from __future__ import annotations

from dataclasses import dataclass

import spec

# Commands every ESP-AT build has, in the order AT+CMD? lists them (the WebSocket ones follow).
BASIC_COMMANDS = ("AT", "ATE0", "ATE1", "AT+RST", "AT+GMR", "AT+CMD", "AT+SYSRAM",
                  "AT+CWMODE", "AT+CWJAP", "AT+CIPSTA")
# ESP-AT's AT+GMR: `compile time(<commit>):Sep 12 2024 10:20:30`; the model's date is in its
# profile's firmware period (compile_date below), its day and time fixed.
COMPILE_DAY = 15
COMPILE_CLOCK = "10:20:30"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _month(text: str) -> tuple[int, int]:
    year, month = text.split("-")
    return int(year), int(month)


@dataclass(frozen=True)
class Profile:
    """One spec profile as the model serves it. Limits and forms are read from `spec`."""

    spec: spec.Profile

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def doc_date(self) -> str:
        return self.spec.doc_date

    @property
    def firmware_from(self) -> str | None:
        return self.spec.firmware_from

    @property
    def commands(self) -> tuple[str, ...]:
        """What AT+CMD? lists: the basic commands, then the profile's WebSocket commands."""
        return BASIC_COMMANDS + self.spec.commands

    @property
    def buffer_size_max(self) -> int:
        return self.spec.buffer_size_max

    @property
    def wssend_length_max(self) -> int:
        return self.spec.wssend_length_max

    @property
    def wssend_length0_sends_empty(self) -> bool:
        return self.spec.wssend_length0_sends_empty

    def includes(self, profile: str) -> bool:
        """Whether this profile has what `profile` brought (itself or an earlier one)."""
        return self.spec.includes(profile)

    def form(self, command: str) -> tuple[spec.FormField, ...]:
        """The fields of `command`'s set form under this profile."""
        return spec.load().form(command, self.name)

    def field_names(self, command: str) -> tuple[str, ...]:
        return tuple(f.name for f in self.form(command))

    def compile_date(self) -> tuple[int, int]:
        """(year, month) AT+GMR's compile time names: the profile's first firmware month
        (firmware_from, else its doc date), moved before the first firmware of any later profile
        that it would otherwise reach. That keeps the date alone telling profiles with the same
        commands apart the way `--profile auto` reads it (fixtures/profile.py): wshead's doc is
        2023-12, but auth's firmware is from 2023-07, so the wshead model is compiled in 2023-06.
        """
        the_spec = spec.load()
        year, month = _month(self.firmware_from or self.doc_date)
        order = the_spec.profile_order
        for later in order[order.index(self.name) + 1:]:
            since = the_spec.profiles[later].firmware_from
            if since is not None and _month(since) <= (year, month):
                year, month = _month(since)
                year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        return year, month

    def compile_time(self) -> str:
        """`Sep 15 2024 10:20:30`, as ESP-AT prints its build's __DATE__ and __TIME__."""
        year, month = self.compile_date()
        return f"{_MONTHS[month - 1]} {COMPILE_DAY} {year} {COMPILE_CLOCK}"


PROFILES: dict[str, Profile] = {name: Profile(spec.load().profiles[name])
                                for name in spec.load().profile_order}


def get_profile(name: str | Profile | spec.Profile) -> Profile:
    """The profile called `name` (or the model's view of a spec.Profile); ValueError if unknown."""
    if isinstance(name, Profile):
        return name
    if isinstance(name, spec.Profile):
        name = name.name
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
