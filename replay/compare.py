"""Compare what a device did with what a trace recorded, list by list, and name the first point
where they part.

Per list the device's labels must equal, in order, those of one of the trace's recorded runs
(the library's 1 s loop makes some runs differ: a ping one poll later); the content of each item
must equal run 1's where run 1 has that item; and each time must lie inside the trace's window for
its key (min..max over the runs that had it) widened by TOLERANCE_MS. The first difference is
the earliest in time over all lists.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from replay.projection import LISTS, Item, RunView

# How far a device's time may lie outside the trace's window: the trace's own clock granularity
# (0.1 ms) and loop jitter (FORMAT.md: "a few ms"), plus what the AT path adds on the model
# (the AT command's own round trip on a socket, the Python scheduler of three threads).
TOLERANCE_MS = 15.0
OUTSIDE = "outside the trace's window"


@dataclass(frozen=True)
class Difference:
    list_name: str
    index: int
    expected: Item | None
    got: Item | None
    why: str

    @property
    def timing_only(self) -> bool:
        """The same thing happened, outside the trace's window."""
        return self.why.startswith(OUTSIDE)

    @property
    def t(self) -> float:
        times = [i.t for i in (self.expected, self.got) if i is not None]
        return min(times) if times else 0.0

    def words(self) -> str:
        expected = self.expected.words() if self.expected else "nothing more"
        got = self.got.words() if self.got else "nothing"
        return f"{self.list_name}[{self.index}]: {self.why}: expected {expected}, got {got}"


@dataclass(frozen=True)
class Verdict:
    agree: bool
    first: Difference | None
    differences: tuple[Difference, ...]
    runs_matched: Mapping[str, int | None]   # per list: the recorded run whose shape matched
    worst_ms: float                          # the largest time error inside the windows' slack


def _labels(items: Sequence[Item]) -> list[str]:
    return [i.label for i in items]


def _first_label_difference(name: str, expected: Sequence[Item], got: Sequence[Item]
                            ) -> Difference:
    for index in range(max(len(expected), len(got))):
        e = expected[index] if index < len(expected) else None
        g = got[index] if index < len(got) else None
        if e is None or g is None or e.label != g.label:
            why = ("one more than the library did" if e is None else
                   "missing" if g is None else "a different one")
            return Difference(name, index, e, g, why)
    raise AssertionError("the label sequences are equal")


def _common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def compare_list(name: str, views: Sequence[RunView], windows: Mapping[str, tuple[float, float]],
                 got: Sequence[Item], tolerance_ms: float = TOLERANCE_MS
                 ) -> tuple[Difference | None, int | None, float]:
    """(first difference or None, the run matched, worst time error) for one list."""
    labels = _labels(got)
    matching = [v for v in views if _labels(v.lists[name]) == labels]
    if not matching:
        closest = max(views, key=lambda v: _common_prefix(_labels(v.lists[name]), labels))
        return _first_label_difference(name, closest.lists[name], got), None, 0.0
    run1 = views[0].lists[name]
    by_key = {i.key: i for i in run1}
    matched = matching[0]
    worst = 0.0
    for index, (expected, item) in enumerate(zip(matched.lists[name], got)):
        reference = by_key.get(expected.key)
        if reference is not None and reference.content:
            for field, value in reference.content.items():
                if item.content.get(field) != value:
                    return (Difference(name, index, reference, item,
                                       f"{field} differs: expected {value!r}, got "
                                       f"{item.content.get(field)!r}"), matched.run, worst)
        lo, hi = windows.get(expected.key, (expected.t, expected.t))
        hi += expected.late_ms
        error = max(lo - item.t, item.t - hi, 0.0)
        if error > tolerance_ms:
            return (Difference(name, index, expected, item,
                               f"{OUTSIDE} {lo:.1f}..{hi:.1f} ms (+-{tolerance_ms:g})"),
                    matched.run, worst)
        worst = max(worst, error)
    return None, matched.run, worst


def compare(views: Sequence[RunView], windows: Mapping[str, Mapping[str, tuple[float, float]]],
            got: Mapping[str, Sequence[Item]], tolerance_ms: float = TOLERANCE_MS) -> Verdict:
    differences = []
    runs: dict[str, int | None] = {}
    worst = 0.0
    for name in LISTS:
        difference, run, error = compare_list(name, views, windows.get(name, {}),
                                              got.get(name, []), tolerance_ms)
        runs[name] = run
        worst = max(worst, error)
        if difference is not None:
            differences.append(difference)
    differences.sort(key=lambda d: d.t)
    return Verdict(agree=not differences, first=differences[0] if differences else None,
                   differences=tuple(differences), runs_matched=runs, worst_ms=worst)
