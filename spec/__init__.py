"""The WebSocket AT command set as data (spec/websocket_at.toml), loaded once.

This is the one source of ranges, limits, defaults, state codes and firmware timers: the model
(sim/) and the suite (tests/, fixtures/) both read them from here.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SPEC_FILE = Path(__file__).with_name("websocket_at.toml")
DEFAULT_PROFILE = "seed"


@dataclass(frozen=True)
class Clause:
    id: str
    level: str                    # MUST or SHOULD
    source: str
    text: str
    known_deviation: str | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    doc_date: str
    commands: tuple[str, ...]
    buffer_size_max: int
    wssend_length_max: int


@dataclass(frozen=True)
class Param:
    command: str
    name: str
    min: int
    max: int | str                # a number, or the name of a profile limit ("buffer_size_max")
    clause: str
    default: int | None = None
    optional: bool = False

    def bounds(self, profile: Profile) -> tuple[int, int]:
        """[min, max] under `profile`."""
        high = getattr(profile, self.max) if isinstance(self.max, str) else self.max
        return self.min, high


@dataclass(frozen=True)
class State:
    code: int
    name: str                     # closed, reconnecting, established, wait_reconnect, closing
    text: str


@dataclass(frozen=True)
class Timing:
    """The firmware's timers as BEHAVIOUR.md gives them (seconds)."""
    timer_tick_s: float
    reconnect_wait_s: tuple[float, float]
    reconnect_check_s: float
    network_timeout_s: float
    close_drain_s: float
    wsclose_answer_s: float
    wsclose_waiting_answer_s: float


@dataclass(frozen=True)
class AtLimits:
    command_line_max_bytes: int
    control_payload_max: int


@dataclass(frozen=True)
class Spec:
    clauses: dict[str, Clause]
    params: tuple[Param, ...]
    states: dict[int, State]
    profiles: dict[str, Profile]
    known_deviations: dict[str, str]
    timing: Timing
    at: AtLimits
    groups: dict[str, str]        # a clause id's first part -> what the reports call it

    def group_of(self, clause_id: str) -> str:
        """AT+WSCFG for WSCFG.link_id.range: where the clause sits in the reports' tree."""
        return self.groups[clause_id.split(".")[0]]

    def param(self, command: str, name: str) -> Param:
        for param in self.params:
            if param.command == command and param.name == name:
                return param
        raise KeyError(f"{command} has no parameter {name!r} in {SPEC_FILE.name}")

    def bounds(self, command: str, name: str, profile: str = DEFAULT_PROFILE) -> tuple[int, int]:
        return self.param(command, name).bounds(self.profiles[profile])

    def default(self, command: str, name: str) -> int:
        value = self.param(command, name).default
        if value is None:
            raise KeyError(f"{command} {name} has no default in {SPEC_FILE.name}")
        return value

    def state(self, name: str) -> int:
        """The AT+WSOPEN? code of a state by its name (`established` -> 2)."""
        for state in self.states.values():
            if state.name == name:
                return state.code
        raise KeyError(f"no state named {name!r} in {SPEC_FILE.name}")


@cache
def load() -> Spec:
    data = tomllib.loads(SPEC_FILE.read_text())
    clauses = {c["id"]: Clause(**c) for c in data["clause"]}
    profiles = {name: Profile(name=name, commands=tuple(p["commands"]), doc_date=p["doc_date"],
                              buffer_size_max=p["buffer_size_max"],
                              wssend_length_max=p["wssend_length_max"])
                for name, p in data["profiles"].items()}
    params = tuple(Param(**p) for p in data["param"])
    for param in params:
        if param.clause not in clauses:
            raise ValueError(f"{SPEC_FILE.name}: {param.command} {param.name} names unknown "
                             f"clause {param.clause}")
        for profile in profiles.values():
            param.bounds(profile)                 # a profile limit that does not exist fails here
    states = {int(code): State(code=int(code), **s) for code, s in data["states"].items()}
    known_deviations = dict(data["known_deviations"])
    for clause in clauses.values():
        if clause.known_deviation and clause.known_deviation not in known_deviations:
            raise ValueError(f"{SPEC_FILE.name}: {clause.id} names unknown deviation "
                             f"{clause.known_deviation}")
    groups = dict(data["clause_groups"])
    ungrouped = sorted({c.split(".")[0] for c in clauses} - set(groups))
    if ungrouped:
        raise ValueError(f"{SPEC_FILE.name}: [clause_groups] lacks {', '.join(ungrouped)}")
    timing = data["timing"]
    timing["reconnect_wait_s"] = tuple(timing["reconnect_wait_s"])
    return Spec(clauses=clauses, params=params, states=states, profiles=profiles,
                known_deviations=known_deviations, timing=Timing(**timing), at=AtLimits(**data["at"]),
                groups=groups)
