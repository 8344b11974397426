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
    profile: str = DEFAULT_PROFILE   # the first profile that has it


@dataclass(frozen=True)
class Profile:
    """One documented stage of the command set (VERSIONS.md), resolved: the changes of every
    profile it is based on applied in order."""
    name: str
    doc_date: str
    firmware_from: str | None     # first firmware month known to carry it ("2024-09"); None: unknown
    adds: str                     # what it adds to the one before, in words
    commands: tuple[str, ...]
    buffer_size_max: int
    wssend_length_max: int
    wssend_length0_sends_empty: bool
    lineage: tuple[str, ...]      # seed .. this one

    def includes(self, profile: str) -> bool:
        """Whether this profile has what `profile` brought (itself or one it is based on)."""
        return profile in self.lineage


@dataclass(frozen=True)
class FormField:
    name: str
    optional: bool
    quoted: bool


@dataclass(frozen=True)
class Param:
    command: str
    name: str
    min: int
    max: int | str                # a number, or the name of a profile limit ("buffer_size_max")
    clause: str
    default: int | None = None
    optional: bool = False
    profile: str = DEFAULT_PROFILE

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
    forms: tuple[tuple[str, str, tuple[FormField, ...]], ...]   # (command, from profile, fields)
    wsdatafmt_fields: tuple[str, ...]   # +WS_DATA's optional fields, mask bit 0 first
    wsdatafmt_crlf_bit: int
    wsdatafmt_levels: tuple[str, ...]

    @property
    def profile_order(self) -> tuple[str, ...]:
        """Every profile, oldest first."""
        return tuple(sorted(self.profiles, key=lambda n: len(self.profiles[n].lineage)))

    def has(self, clause_id: str, profile: str) -> bool:
        """Whether the profile has the clause (it came with that profile or an earlier one)."""
        return self.profiles[profile].includes(self.clauses[clause_id].profile)

    def absent_reason(self, clause_id: str, profile: str) -> str | None:
        """Why a clause is not checked under `profile` (None when it is)."""
        if self.has(clause_id, profile):
            return None
        since = self.profiles[self.clauses[clause_id].profile]
        return (f"{clause_id} comes with profile {since.name} (doc {since.doc_date}: "
                f"{since.adds}); the profile under test is {profile}")

    def params_of(self, command: str, profile: str) -> tuple[Param, ...]:
        """The numeric parameters of `command` under `profile`."""
        under = self.profiles[profile]
        return tuple(p for p in self.params if p.command == command and under.includes(p.profile))

    def form(self, command: str, profile: str) -> tuple[FormField, ...]:
        """The fields of `command`'s set form under `profile` (VERSIONS.md)."""
        under = self.profiles[profile]
        fields = None
        for name, since, form_fields in self.forms:
            if name == command and under.includes(since):
                fields = form_fields          # later entries are later profiles
        if fields is None:
            raise KeyError(f"{command} has no set form under profile {profile}")
        return fields

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
    profiles = _profiles(data["profiles"])
    params = tuple(Param(**p) for p in data["param"])
    for item in (*clauses.values(), *params):
        if item.profile not in profiles:
            raise ValueError(f"{SPEC_FILE.name}: {item} names unknown profile {item.profile}")
    forms = tuple((f["command"], f.get("profile", DEFAULT_PROFILE),
                   tuple(_form_field(text) for text in f["fields"])) for f in data["form"])
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
    fmt = data["wsdatafmt"]
    return Spec(clauses=clauses, params=params, states=states, profiles=profiles,
                known_deviations=known_deviations, timing=Timing(**timing), at=AtLimits(**data["at"]),
                groups=groups, forms=forms, wsdatafmt_fields=tuple(fmt["fields"]),
                wsdatafmt_crlf_bit=fmt["trailing_crlf_bit"], wsdatafmt_levels=tuple(fmt["levels"]))


_CHANGEABLE = ("buffer_size_max", "wssend_length_max", "wssend_length0_sends_empty")


def _profiles(raw: dict) -> dict[str, Profile]:
    """Each profile resolved: its base's values, then its own changes."""
    resolved: dict[str, Profile] = {}

    def resolve(name: str, seen: tuple[str, ...] = ()) -> Profile:
        if name in resolved:
            return resolved[name]
        if name in seen or name not in raw:
            raise ValueError(f"{SPEC_FILE.name}: profile {name!r} is unknown or based on itself")
        entry = raw[name]
        base = resolve(entry["based_on"], seen + (name,)) if "based_on" in entry else None
        if base is None:
            values = {k: entry[k] for k in _CHANGEABLE}
            commands = tuple(entry["commands"])
        else:
            values = {k: entry.get(k, getattr(base, k)) for k in _CHANGEABLE}
            commands = base.commands + tuple(entry.get("commands_added", ()))
        resolved[name] = Profile(name=name, doc_date=entry["doc_date"],
                                 firmware_from=entry.get("firmware_from"), adds=entry["adds"],
                                 commands=commands,
                                 lineage=(base.lineage if base else ()) + (name,), **values)
        return resolved[name]

    for name in raw:
        resolve(name)
    return resolved


def _form_field(text: str) -> FormField:
    quoted = text.startswith('"')
    name = text.lstrip('"')
    return FormField(name=name.rstrip("?"), optional=name.endswith("?"), quoted=quoted)
