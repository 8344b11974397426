"""The suite's detection power: run it against the clean model and against every named defect of
the model's catalog (sim/defects.py), and report which defects it kills and how it files them.

  python -m tools.mutation [--fast] [--jobs 2] [--only NAME ...] [--out reports]

Each run is its own pytest process with its own model and server, stops at its first failure
(-x), runs the tests of the defect's clauses first (--clause-first), and is bounded in time. A
defect runs on the model of its profile (the profile of its first clause, VERSIONS.md), and each
profile that has a defect in the run gets its own clean run: the suite must pass on that
profile's clean model for a kill there to count. A
defect is killed when a test fails as a device violation or a device fault; it is reported right
when a known deviation's defect is filed as that KD and every other defect as NEW or DEVICE FAULT
(never as a KD, never as a harness fault). --fast leaves out the slow
tests and the defects only a slow test can catch (what `make check` runs).

Writes <out>/mutation.json and <out>/mutation.md and prints the kill matrix; exits 0 only when the
clean model passes and every defect is killed and reported right.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

import spec
from fixtures.verdicts import DEVICE_FAULT, FAULT_CLASS, NEW, VIOLATION_CLASS, Outcome
from sim.defects import DEFECTS, Defect
from tools.suite_run import ROOT, SUITE, markdown_table, run_suite
from tools.suite_run import pytest_argv as suite_argv

RUN_TIMEOUT_S = {True: 300.0, False: 900.0}     # fast / full: a survivor runs the whole suite
KILLED, SURVIVED, BROKEN, TIMED_OUT = "killed", "survived", "broken", "timed out"


@dataclass
class Run:
    name: str                       # "clean", or the defect's name
    profile: str = spec.DEFAULT_PROFILE
    kd: str | None = None
    clauses: tuple[str, ...] = ()
    outcome: str = ""               # killed / survived / broken / timed out; clean: passed/failed
    first_failure: str = ""
    failed_clause: str = ""
    reported_as: str = ""           # KD-n, NEW, DEVICE FAULT or BROKEN
    reported_right: bool = False
    seconds_to_kill: float | None = None
    killed_by_slow_test: bool = False
    wall_s: float = 0.0
    tests_run: int = 0
    detail: str = ""

    @property
    def label(self) -> str:
        return f"clean ({self.profile})" if self.name == "clean" else self.name

    @property
    def ok(self) -> bool:
        if self.name == "clean":
            return self.outcome == "passed"
        return self.outcome == KILLED and self.reported_right


@dataclass
class Plan:
    fast: bool
    defects: list[Defect]
    slow_tests: set[str]
    left_out: list[str] = field(default_factory=list)   # (fast) only a slow test could catch them


class _Collector:
    """Which tests name which clause, and which tests are slow."""

    def __init__(self) -> None:
        self.by_clause: dict[str, list[str]] = {}
        self.slow: set[str] = set()

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if item.get_closest_marker("slow"):
                self.slow.add(item.nodeid)
            for mark in item.iter_markers("clause"):
                for clause_id in mark.args:
                    self.by_clause.setdefault(clause_id, []).append(item.nodeid)


def collect() -> _Collector:
    collector = _Collector()
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", SUITE],
                           plugins=[collector])
    if code != 0:
        raise SystemExit(f"collecting {SUITE} failed (exit {code})")
    return collector


def plan(fast: bool, only: list[str]) -> Plan:
    defects = [DEFECTS[name] for name in only] if only else list(DEFECTS.values())
    tests = collect()
    if not fast:
        return Plan(fast, defects, tests.slow)
    kept, left_out = [], []
    for defect in defects:
        fast_tests = [t for c in defect.clauses for t in tests.by_clause.get(c, [])
                      if t not in tests.slow]
        (kept if fast_tests and not defect.needs_slow_test else left_out).append(defect)
    return Plan(fast, kept, tests.slow, [d.name for d in left_out])


def defect_profile(defect: Defect) -> str:
    """The profile a defect runs under: that of its first clause (sim/defects.py)."""
    return getattr(defect, "profile", None) or spec.load().clauses[defect.clause].profile


def pytest_argv(run: Run, fast: bool, log: Path) -> list[str]:
    device = ["--profile", run.profile]
    extra = ["-m", "not slow"] if fast else []
    if run.name != "clean":
        device += ["--model-defect", run.name]
        extra = ["-x", *extra, *(a for clause in run.clauses for a in ("--clause-first", clause))]
    return suite_argv(device=device, verdict_log=log, extra=extra)


def execute(run: Run, fast: bool, workdir: Path, slow_tests: set[str]) -> Run:
    log = workdir / f"{run.name}-{run.profile}.jsonl"
    done = run_suite(pytest_argv(run, fast, log), output=workdir / f"{run.name}-{run.profile}.txt",
                     timeout_s=RUN_TIMEOUT_S[fast], verdict_log=log)
    run.wall_s = round(done.wall_s, 1)
    run.tests_run = len(done.records)
    failures = done.with_outcome(Outcome.FAILED)
    if run.name == "clean":
        run.outcome = "passed" if done.exit_code == 0 and not failures else "failed"
        run.detail = ("; ".join(f"{r.nodeid} [{r.verdict}]" for r in failures)
                      or " ".join(done.tail()))
        return run
    if failures:
        first = failures[0]
        run.first_failure = first.nodeid
        run.killed_by_slow_test = first.nodeid in slow_tests
        run.failed_clause = first.failed_clause
        run.reported_as = first.verdict
        run.seconds_to_kill = round(first.time - done.started, 1)
        run.outcome = KILLED if first.verdict_class in CAUGHT else BROKEN
        run.reported_right = run.outcome == KILLED and right_verdict(run, first.verdict)
        run.detail = first.message.splitlines()[0][:200] if first.message else ""
    elif done.timed_out:
        run.outcome = TIMED_OUT
        run.detail = f"no failure within {RUN_TIMEOUT_S[fast]:g} s"
    else:
        run.outcome = SURVIVED if done.exit_code == 0 else BROKEN
        run.detail = " ".join(done.tail())
    return run


# The verdict classes that catch a defect (fixtures/verdicts.py): a clause broken, or the device
# seen to misbehave (reboot, silence, flood...). A harness fault or an interruption catches nothing.
CAUGHT = (VIOLATION_CLASS, FAULT_CLASS)


def right_verdict(run: Run, verdict: str) -> bool:
    """A known deviation's defect must be filed as that KD; any other defect as NEW or as a
    DEVICE FAULT (a crash or a wedge is caught, and it is never filed as a known deviation)."""
    if run.kd:
        return verdict == run.kd
    return verdict in (NEW, DEVICE_FAULT)


def matrix_markdown(runs: list[Run], the_plan: Plan, wall_s: float) -> str:
    cleans = [r for r in runs if r.name == "clean"]
    defects = [r for r in runs if r.name != "clean"]
    good = sum(r.ok for r in defects)
    lines = [f"# Mutation run ({'fast' if the_plan.fast else 'full'})", ""]
    lines += [f"- clean model, profile {clean.profile}: **{clean.outcome}** ({clean.tests_run} "
              f"tests, {clean.wall_s:g} s)" + (f": {clean.detail}" if clean.outcome != "passed" else "")
              for clean in cleans]
    lines += [
             f"- defects: {len(defects)}; killed and reported right: **{good}**; "
             f"killed but filed wrong: {sum(r.outcome == KILLED and not r.reported_right for r in defects)}; "
             f"survived: {sum(r.outcome == SURVIVED for r in defects)}; "
             f"broken or timed out: {sum(r.outcome in (BROKEN, TIMED_OUT) for r in defects)}",
             f"- wall time: {wall_s:.0f} s", ""]
    if the_plan.left_out:
        lines += [f"- left out (only a slow test catches them; `make mutation` runs them): "
                  f"{', '.join(the_plan.left_out)}", ""]
    slow_kills = [r.name for r in defects if r.killed_by_slow_test]
    if slow_kills and not the_plan.fast:
        lines += [f"- killed first by a slow test ({len(slow_kills)}): {', '.join(slow_kills)}", ""]
    per_profile = []
    for clean in cleans:
        mine = [r for r in defects if r.profile == clean.profile]
        per_profile.append((clean.profile, f"{clean.outcome} ({clean.tests_run} tests, "
                            f"{clean.wall_s:g} s)", len(mine), sum(r.ok for r in mine)))
    lines += [""] + markdown_table(
        ("profile", "clean run", "defects", "killed and filed right"), per_profile)
    lines += [""] + markdown_table(
        ("defect", "profile", "kd", "outcome", "reported as", "right", "first failing test",
         "its clause", "to kill (s)"),
        ((r.name, r.profile, r.kd or "", r.outcome, r.reported_as,
          "yes" if r.reported_right else "NO",
          (r.first_failure or r.detail) + (" (slow)" if r.killed_by_slow_test else ""),
          r.failed_clause, "" if r.seconds_to_kill is None else r.seconds_to_kill)
         for r in defects))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mutation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true",
                        help="no slow tests; only defects a non-slow test can catch")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default 2: both cores)")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME",
                        help="these defects only (names from python -m sim --list-defects)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="where to write")
    args = parser.parse_args(argv)
    unknown = [n for n in args.only if n not in DEFECTS]
    if unknown:
        parser.error(f"unknown defect(s) {unknown}")
    the_plan = plan(args.fast, args.only)
    clauses = spec.load().clauses
    defect_runs = [Run(d.name, defect_profile(d), d.kd, tuple(c for c in d.clauses if c in clauses))
                   for d in the_plan.defects]
    profiles = [p for p in spec.load().profile_order
                if p == spec.DEFAULT_PROFILE or any(r.profile == p for r in defect_runs)]
    runs = [Run("clean", p) for p in profiles] + defect_runs
    started = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp, \
            ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(execute, run, args.fast, Path(tmp), the_plan.slow_tests) for run in runs]
        for done, future in enumerate(as_completed(futures), 1):
            run = future.result()
            mark = "ok  " if run.ok else "FAIL"
            print(f"[{done:3}/{len(runs)}] {mark} {run.label:40} {run.outcome:10} "
                  f"{run.reported_as:6} {run.first_failure or run.detail}", flush=True)
    wall_s = time.time() - started
    report = matrix_markdown(runs, the_plan, wall_s)
    (args.out / "mutation.md").write_text(report)
    (args.out / "mutation.json").write_text(json.dumps(
        {"mode": "fast" if args.fast else "full", "wall_s": round(wall_s, 1),
         "left_out": the_plan.left_out, "runs": [asdict(r) for r in runs]}, indent=2))
    print()
    print("\n".join(report.split("\n| defect |")[0].splitlines()))
    bad = [r for r in runs if not r.ok]
    for r in bad:
        print(f"  NOT OK: {r.label}: {r.outcome} {r.reported_as} {r.first_failure} {r.detail}")
    print(f"wrote {args.out / 'mutation.md'} and {args.out / 'mutation.json'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
