"""Boundary cases of every parameter range in the spec data: min and max are accepted, one below
and one above are refused. Ranges are the profile's (a maximum may be a profile limit)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

import spec


@dataclass(frozen=True)
class RangeCase:
    command: str
    param: str
    value: int
    in_range: bool
    clause: str

    def __str__(self) -> str:
        return f"{self.param}={self.value}-{'accepted' if self.in_range else 'refused'}"

    @property
    def shown(self) -> str:
        """How the reports show the case: the value sent and the answer the spec wants."""
        return f"{self.param}={self.value} → {'OK' if self.in_range else 'ERROR'}"


def range_cases(the_spec: spec.Spec, command: str, names: tuple[str, ...] | None = None,
                profile: str = spec.DEFAULT_PROFILE) -> list:
    """pytest params, each marked with the clause of its parameter's range."""
    cases = []
    for param in the_spec.params:
        if param.command != command or (names is not None and param.name not in names):
            continue
        lo, hi = param.bounds(the_spec.profiles[profile])
        for value, in_range in ((lo, True), (hi, True), (lo - 1, False), (hi + 1, False)):
            case = RangeCase(command, param.name, value, in_range, param.clause)
            cases.append(pytest.param(case, id=str(case), marks=pytest.mark.clause(param.clause)))
    return cases
