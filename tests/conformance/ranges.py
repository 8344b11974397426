"""Boundary cases of every parameter range in the spec data: min and max are accepted, one below
and one above are refused. A bound that is a profile limit (buffer_size_max: 8192, 16384 on the
development line) is collected by name and read from the profile under test when the test runs,
so one collection serves every profile; a parameter a later profile brings carries that profile's
clause and is skipped under an earlier one."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

import spec


@dataclass(frozen=True)
class RangeCase:
    command: str
    param: str
    bound: int | str              # a number, or the name of the profile limit ("buffer_size_max")
    offset: int                   # -1: one below the bound, +1: one above, 0: the bound
    in_range: bool
    clause: str

    def value(self, profile: spec.Profile) -> int:
        bound = getattr(profile, self.bound) if isinstance(self.bound, str) else self.bound
        return bound + self.offset

    def __str__(self) -> str:
        return f"{self.param}={self._written}-{'accepted' if self.in_range else 'refused'}"

    @property
    def _written(self) -> str:
        if isinstance(self.bound, int):
            return str(self.bound + self.offset)
        return "max" + (f"{self.offset:+d}" if self.offset else "")

    @property
    def shown(self) -> str:
        """How the reports show the case: the value sent and the answer the spec wants."""
        written = (self._written if isinstance(self.bound, int)
                   else f"the profile's {self._written}")
        return f"{self.param}={written} → {'OK' if self.in_range else 'ERROR'}"


def range_cases(the_spec: spec.Spec, command: str, names: tuple[str, ...] | None = None) -> list:
    """pytest params, each marked with the clause of its parameter's range."""
    cases = []
    for param in the_spec.params:
        if param.command != command or (names is not None and param.name not in names):
            continue
        for bound, offset, in_range in ((param.min, 0, True), (param.max, 0, True),
                                        (param.min, -1, False), (param.max, 1, False)):
            case = RangeCase(command, param.name, bound, offset, in_range, param.clause)
            cases.append(pytest.param(case, id=str(case), marks=pytest.mark.clause(param.clause)))
    return cases
