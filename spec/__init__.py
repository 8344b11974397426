"""The WebSocket AT command set as data (spec/websocket_at.toml), loaded once."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SPEC_FILE = Path(__file__).with_name("websocket_at.toml")


@dataclass(frozen=True)
class Clause:
    id: str
    level: str                    # MUST or SHOULD
    source: str
    text: str
    known_deviation: str | None = None


@dataclass(frozen=True)
class Param:
    command: str
    name: str
    min: int
    max: int
    clause: str
    default: int | None = None
    optional: bool = False


@dataclass(frozen=True)
class Profile:
    name: str
    doc_date: str
    commands: tuple[str, ...]
    buffer_size_max: int
    wssend_length_max: int


@dataclass(frozen=True)
class Spec:
    clauses: dict[str, Clause]
    params: tuple[Param, ...]
    states: dict[int, str]
    profiles: dict[str, Profile]
    known_deviations: dict[str, str]

    def param(self, command: str, name: str) -> Param:
        for param in self.params:
            if param.command == command and param.name == name:
                return param
        raise KeyError(f"{command} has no parameter {name!r} in {SPEC_FILE.name}")


@cache
def load() -> Spec:
    data = tomllib.loads(SPEC_FILE.read_text())
    clauses = {c["id"]: Clause(**c) for c in data["clause"]}
    params = tuple(Param(**p) for p in data["param"])
    for param in params:
        if param.clause not in clauses:
            raise ValueError(f"{SPEC_FILE.name}: {param.command} {param.name} names unknown "
                             f"clause {param.clause}")
    profiles = {name: Profile(name=name, commands=tuple(p["commands"]), doc_date=p["doc_date"],
                              buffer_size_max=p["buffer_size_max"],
                              wssend_length_max=p["wssend_length_max"])
                for name, p in data["profiles"].items()}
    states = {int(code): text for code, text in data["states"].items()}
    known_deviations = dict(data["known_deviations"])
    for clause in clauses.values():
        if clause.known_deviation and clause.known_deviation not in known_deviations:
            raise ValueError(f"{SPEC_FILE.name}: {clause.id} names unknown deviation "
                             f"{clause.known_deviation}")
    return Spec(clauses=clauses, params=params, states=states, profiles=profiles,
                known_deviations=known_deviations)
