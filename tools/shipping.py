"""The shipping firmware's verdict, every way: `python -m tools.shipping` (make shipping).

The model with shipping ESP-AT's known deviations (`--firmware shipping`: every KD the model has,
with a board's timing) is run:
  - with its expectations file: the run must pass (exit 0), every listed test an expected failure
    filed as its KD, nothing else failing;
  - without it: the run must fail (exit 1) on exactly the listed tests, each filed as its KD;
  - with the newest library (`--library 1.8.0`, the firmware once ESP-AT moves its pin) and the
    file: the run must fail on exactly the entries of the deviations that library fixed (KD-4),
    each an UNEXPECTED PASS, every other entry still an expected failure: the suite notices a
    fixed library, and nothing else changes.
So the file is exact: it lists every known deviation the suite catches, and nothing more.
Writes reports/shipping/shipping.md and each run's JUnit, verdict log and matrix.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fixtures.expectations import load
from fixtures.verdicts import UNEXPECTED_PASS, Outcome, TestVerdict
from sim.library import LIBRARIES
from tools.suite_run import markdown_table, pytest_argv, run_suite

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXPECTATIONS = "expectations/esp-at-shipping.toml"
OUT = PROJECT_ROOT / "reports" / "shipping"
RUN_TIMEOUT_S = 1500.0               # a hung run is a failure of this check, not a CI timeout
TIMED_OUT_CODE = -1                  # the exit this report gives a run killed at the bound


def run(name: str, extra: list[str], workers: str) -> tuple[int, list[TestVerdict], float, str]:
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    log = out / "verdicts.jsonl"
    argv = pytest_argv(device=("--firmware", "shipping"), verdict_log=log,
                       junit=out / "junit.xml", workers=workers, extra=extra)
    done = run_suite(argv, output=out / "stdout.txt", timeout_s=RUN_TIMEOUT_S, verdict_log=log)
    stdout = done.output_text()
    if done.timed_out:
        stdout = f"timed out after {RUN_TIMEOUT_S:g} s\n{stdout}"
        (out / "stdout.txt").write_text(stdout)
    code = TIMED_OUT_CODE if done.exit_code is None else done.exit_code
    return code, list(done.records), done.wall_s, stdout


def kd_for(nodeid: str, entries) -> str | None:
    """The KD the file expects of this test (an entry names a test case or a whole function)."""
    return next((e.kd for e in entries if e.matches(nodeid)), None)


def check_with(code: int, records: list[TestVerdict], entries) -> list[str]:
    problems = [] if code == 0 else [f"exit status {code}, not 0"]
    for r in records:
        if r.outcome == Outcome.FAILED:
            problems.append(f"{r.nodeid} failed ({r.verdict})")
        elif r.outcome == Outcome.XFAILED and kd_for(r.nodeid, entries) != r.verdict:
            problems.append(f"{r.nodeid} was an expected failure as {r.verdict}, the file "
                            f"says {kd_for(r.nodeid, entries)}")
    xfailed = [r.nodeid for r in records if r.outcome == Outcome.XFAILED]
    problems += [f"{e.test} is listed but was not an expected failure" for e in entries
                 if not any(e.matches(nodeid) for nodeid in xfailed)]
    return problems


def check_without(code: int, records: list[TestVerdict], entries) -> list[str]:
    problems = [] if code == 1 else [f"exit status {code}, not 1"]
    failed = {r.nodeid: r.verdict for r in records if r.outcome == Outcome.FAILED}
    for nodeid, verdict in failed.items():
        kd = kd_for(nodeid, entries)
        if kd is None:
            problems.append(f"{nodeid} failed ({verdict}) but is not listed")
        elif verdict != kd:
            problems.append(f"{nodeid} failed as {verdict}, the file says {kd}")
    problems += [f"{e.test} did not fail" for e in entries
                 if not any(e.matches(nodeid) for nodeid in failed)]
    return problems


def check_fixed_library(code: int, records: list[TestVerdict], entries) -> list[str]:
    fixed = set(LIBRARIES[NEWEST].fixed)
    problems = [] if code == 1 else [f"exit status {code}, not 1"]
    failed = {r.nodeid: r.verdict for r in records if r.outcome == Outcome.FAILED}
    xfailed = {r.nodeid for r in records if r.outcome == Outcome.XFAILED}
    for nodeid, verdict in failed.items():
        kd = kd_for(nodeid, entries)
        if kd not in fixed or verdict != UNEXPECTED_PASS:
            problems.append(f"{nodeid} failed as {verdict}; only the entries of {sorted(fixed)} "
                            f"may, as {UNEXPECTED_PASS}")
    for e in entries:
        seen = failed if e.kd in fixed else xfailed
        if not any(e.matches(nodeid) for nodeid in seen):
            problems.append(f"{e.test} ({e.kd}) was not "
                            f"{'an UNEXPECTED PASS' if e.kd in fixed else 'an expected failure'}")
    return problems


NEWEST = "1.8.0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="2", help="pytest-xdist workers per run (0: none)")
    args = parser.parse_args(argv)
    expectations = load(PROJECT_ROOT / EXPECTATIONS)
    rows, failures = [], 0
    for name, extra, checker in (
            ("with-expectations", ["--expectations", EXPECTATIONS], check_with),
            ("without-expectations", [], check_without),
            (f"library-{NEWEST}-with-expectations",
             ["--library", NEWEST, "--expectations", EXPECTATIONS], check_fixed_library)):
        code, records, took, stdout = run(name, extra, args.workers)
        problems = checker(code, records, expectations.entries) if records else \
            [f"no verdict log (exit {code}): {stdout[-1500:]}"]
        failures += bool(problems)
        counts = {o: sum(1 for r in records if r.outcome == o)
                  for o in (Outcome.PASSED, Outcome.FAILED, Outcome.XFAILED, Outcome.SKIPPED)}
        rows.append((name, code, took, counts, problems))
        verdict = "as it must be" if not problems else "WRONG: " + "; ".join(problems[:10])
        print(f"shipping firmware, {name.replace('-', ' ')}: exit {code} in {took:.0f} s, "
              f"{counts['passed']} passed, {counts['xfailed']} expected failures, "
              f"{counts['failed']} failed: {verdict}", flush=True)
        if checker is check_fixed_library and not problems:
            print("  the suite noticed the fixed library: " + "; ".join(
                f"{r.nodeid} {r.verdict}" for r in records if r.outcome == Outcome.FAILED),
                flush=True)
    lines = ["# Shipping firmware against its expectations", "",
             f"`{EXPECTATIONS}`: {len(expectations.entries)} expected failures of {expectations.line}.", ""]
    lines += markdown_table(
        ("run", "exit", "time", "passed", "expected failures", "failed", "verdict"),
        ((name, code, f"{took:.0f} s", counts[Outcome.PASSED], counts[Outcome.XFAILED],
          counts[Outcome.FAILED],
          "as it must be" if not problems else "; ".join(problems[:5]))
         for name, code, took, counts, problems in rows))
    (OUT / "shipping.md").write_text("\n".join(lines) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
