"""The suite on the reference model of every firmware profile (VERSIONS.md), with `--profile auto`:
each run must pick the model's profile, pass, and skip exactly the clauses the profile lacks.

  python -m tools.profiles [--fast] [--only NAME ...] [--jobs 2] [--out reports]

Per profile: one pytest run of tests/conformance against `python -m sim --profile NAME`
(`--model-profile NAME`, `--profile auto`, -n JOBS), its reports in <out>/profiles/NAME/. Writes
<out>/profiles/profiles.md and .json (clauses in the profile, tests passed and skipped, wall time,
the profile auto picked and why) and exits 0 only when every run passed and picked its profile.
--fast leaves the slow tests out (what `make check` runs).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import spec
from fixtures.verdicts import NOT_IN_PROFILE, PASS
from results import matrix
from tools.suite_run import ROOT, markdown_table, pytest_argv, read_junit, run_suite

RUN_TIMEOUT_S = {True: 900.0, False: 1800.0}


@dataclass
class ProfileRun:
    profile: str
    clauses: int = 0                # clauses the profile has
    exit_code: int | None = None
    tests: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    picked: str = ""                # what --profile auto chose
    picked_why: str = ""
    clauses_passed: int = 0
    clauses_not_in_profile: int = 0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return (self.exit_code == 0 and self.failed == 0 and self.picked == self.profile
                and self.passed > 0)


def run_profile(name: str, fast: bool, jobs: int, out: Path) -> ProfileRun:
    the_spec = spec.load()
    result = ProfileRun(name, clauses=sum(the_spec.has(c, name) for c in the_spec.clauses))
    folder = out / "profiles" / name
    folder.mkdir(parents=True, exist_ok=True)
    argv = pytest_argv(device=("--profile", "auto", "--model-profile", name),
                       junit=folder / "junit.xml", alluredir=folder / "allure-results",
                       workers=jobs if jobs > 1 else 0,
                       extra=("--clean-alluredir", *(("-m", "not slow") if fast else ())))
    done = run_suite(argv, output=folder / "output.txt", timeout_s=RUN_TIMEOUT_S[fast])
    result.exit_code = done.exit_code
    if done.timed_out:
        result.detail = f"no end within {RUN_TIMEOUT_S[fast]:g} s"
    result.wall_s = round(done.wall_s, 1)
    if (folder / "junit.xml").exists():
        try:
            junit = read_junit(folder / "junit.xml")
        except ValueError as exc:
            result.detail = result.detail or str(exc)
        else:
            result.tests, result.skipped = junit.tests, junit.skipped
            result.failed = junit.failures + junit.errors
            result.passed = result.tests - result.failed - result.skipped
    try:
        record = matrix.load(folder)
    except ValueError as exc:
        result.detail = result.detail or str(exc)
        return result
    result.picked = record["header"].get("profile", "")
    result.picked_why = record["header"].get("profile_reason", "")
    verdicts = [c["verdict"] for c in record["clauses"]]
    result.clauses_passed = verdicts.count(PASS)
    result.clauses_not_in_profile = verdicts.count(NOT_IN_PROFILE)
    if not result.ok and not result.detail:
        result.detail = " ".join(done.tail())
    return result


def markdown(runs: list[ProfileRun], fast: bool) -> str:
    lines = [f"# The suite on every profile's model ({'fast' if fast else 'full'})", ""]
    lines += markdown_table(
        ("profile", "clauses", "tests", "passed", "skipped", "failed", "wall time", "auto picked",
         "ok"),
        ((r.profile, r.clauses, r.tests, r.passed, r.skipped, r.failed, f"{r.wall_s:.0f} s",
          f"{r.picked} ({r.picked_why})", "yes" if r.ok else "NO: " + r.detail) for r in runs))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.profiles", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="no slow tests")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME",
                        choices=spec.load().profile_order, help="these profiles only")
    parser.add_argument("--jobs", type=int, default=2, help="pytest-xdist workers per run")
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="where to write")
    args = parser.parse_args(argv)
    runs = []
    for name in args.only or spec.load().profile_order:
        run = run_profile(name, args.fast, args.jobs, args.out)
        print(f"{'ok  ' if run.ok else 'FAIL'} {name:8} {run.clauses} clauses, {run.tests} tests: "
              f"{run.passed} passed, {run.skipped} skipped, {run.failed} failed in {run.wall_s:.0f} s;"
              f" auto picked {run.picked or '?'} {run.detail}", flush=True)
        runs.append(run)
    folder = args.out / "profiles"
    (folder / "profiles.md").write_text(markdown(runs, args.fast))
    (folder / "profiles.json").write_text(json.dumps([asdict(r) for r in runs], indent=2))
    print(f"wrote {folder / 'profiles.md'} and {folder / 'profiles.json'}")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
