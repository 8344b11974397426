"""One run of the conformance suite as a child process, for the tools that measure the suite
(mutation, profiles, shipping, robustness): its argv, a bounded run with its output in a file,
and what it left, read back as typed records.

  argv = pytest_argv(device=("--model-defect", "x"), verdict_log=log, extra=("-x",))
  run = run_suite(argv, output=d / "output.txt", timeout_s=300, verdict_log=log)
  run.exit_code, run.wall_s, run.records          # None: killed at the bound

The child runs in a session of its own (start_new_session): at the bound its whole process group
is killed, never only its leader. The verdict log is the JSONL `--verdict-log` writes
(fixtures/run_record.VerdictLog: one line per test as its verdict is known); JUnit XML is read
for its cases and its totals. `markdown_table` is the one table the tools' reports print.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fixtures.verdicts import TestVerdict
from results.matrix import cell

ROOT = Path(__file__).resolve().parent.parent
SUITE = "tests/conformance"
POLL_S = 0.1

# ---- the verdict log ----------------------------------------------------------------------------

def read_jsonl(path: Path) -> list[dict]:
    """One object per line; a torn last line (the writer was killed mid-write) is left out, and
    a missing file reads as no line."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return found


def read_verdict_log(path: Path) -> list[TestVerdict]:
    """The verdict log's records (fixtures/verdicts.TestVerdict, as the run record keeps them)."""
    return [TestVerdict.from_json(data) for data in read_jsonl(path)]


# ---- JUnit XML ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """A JUnit testcase or an Allure result: where it is from, its name, its status (passed,
    failed, broken/error, skipped)."""
    module: str          # dotted: tests.conformance.test_wsopen (JUnit: may end in a class)
    name: str            # test_x or test_x[param]
    status: str


@dataclass(frozen=True)
class Junit:
    """A JUnit file: its first test suite's totals as pytest wrote them, and every testcase."""
    tests: int
    failures: int
    errors: int
    skipped: int
    cases: tuple[Case, ...]


def read_junit(path: Path) -> Junit:
    """Raises ValueError when the file is missing or does not parse."""
    if not path.exists():
        raise ValueError("junit.xml missing")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"junit.xml does not parse: {exc}") from None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    totals = {key: int(suite.get(key, 0)) if suite is not None else 0
              for key in ("tests", "failures", "errors", "skipped")}
    cases = []
    for case in root.iter("testcase"):
        status = "passed"
        for child, meaning in (("failure", "failed"), ("error", "broken"), ("skipped", "skipped")):
            if case.find(child) is not None:
                status = meaning
                break
        cases.append(Case(case.get("classname", ""), case.get("name", ""), status))
    return Junit(**totals, cases=tuple(cases))


# ---- the child process --------------------------------------------------------------------------

def pytest_argv(tests: Sequence[str] = (SUITE,), *, device: Sequence[str] = (),
                verdict_log: Path | None = None, junit: Path | None = None,
                alluredir: Path | None = None, workers: int | str = 0, verbose: bool = False,
                extra: Sequence[str] = ()) -> list[str]:
    """`python -m pytest` of `tests` (node ids keep their order): `device` chooses the device
    (the model's options, --firmware, --profile, or --at-port URL), then the reports asked for,
    -n `workers` (0: no xdist), and any `extra` options last."""
    argv = [sys.executable, "-m", "pytest", *tests, "-v" if verbose else "-q",
            "-p", "no:cacheprovider", *device]
    if verdict_log is not None:
        argv += ["--verdict-log", str(verdict_log)]
    if junit is not None:
        argv += ["--junitxml", str(junit)]
    if alluredir is not None:
        argv += ["--alluredir", str(alluredir)]
    if str(workers) != "0":
        argv += ["-n", str(workers)]
    return argv + list(extra)


def suite_env(**extra: str) -> dict[str, str]:
    """This process's environment, with the project on PYTHONPATH."""
    return dict(os.environ, PYTHONPATH=str(ROOT), **extra)


@dataclass(frozen=True)
class Finished:
    """How a bounded process ended."""
    pid: int                        # also its session and process group id
    exit_code: int | None           # None: killed at the bound; negative: ended by that signal
    wall_s: float
    peak_kib: int                   # ru_maxrss of the process tree (its largest process)
    timed_out: bool


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_bounded(argv: Sequence[str], *, stdout: Path, stderr: Path | None = None,
                timeout_s: float, env: dict[str, str] | None = None, cwd: Path = ROOT,
                on_start: Callable[[int], None] | None = None,
                on_tick: Callable[[int, float], None] | None = None,
                kill: Callable[[int], object] = _kill_group,
                preexec_fn: Callable[[], None] | None = None) -> Finished:
    """Run argv in a session of its own, stdout into `stdout` (stderr too, unless `stderr` names
    a file of its own); `on_tick(pid, elapsed_s)` every POLL_S while it runs; past `timeout_s`
    `kill(pid)` (default: SIGKILL its process group). Reaped with wait4, which gives the peak
    memory of the tree."""
    stdout.parent.mkdir(parents=True, exist_ok=True)
    errors = open(stderr, "wb") if stderr else contextlib.nullcontext(subprocess.STDOUT)
    with open(stdout, "wb") as out, errors as err:
        process = subprocess.Popen(list(argv), cwd=cwd, env=env if env is not None else suite_env(),
                                   stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   start_new_session=True, preexec_fn=preexec_fn)
    if on_start is not None:
        on_start(process.pid)
    started = time.monotonic()
    timed_out = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        elapsed = time.monotonic() - started
        if elapsed > timeout_s:
            timed_out = True
            kill(process.pid)
            pid, status, usage = os.wait4(process.pid, 0)
            break
        if on_tick is not None:
            on_tick(process.pid, elapsed)
        time.sleep(POLL_S)
    wall_s = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)   # reaped here, not by Popen
    return Finished(process.pid, None if timed_out else process.returncode, wall_s,
                    usage.ru_maxrss, timed_out)


@dataclass(frozen=True)
class SuiteRun:
    """A finished run of the suite: how it ended and the verdict log it wrote."""
    argv: tuple[str, ...]
    exit_code: int | None           # None: killed at the bound
    timed_out: bool
    started: float                  # time.time() at the start: the verdict log's clock
    wall_s: float
    output: Path                    # stdout and stderr
    records: tuple[TestVerdict, ...]

    def with_outcome(self, *outcomes: str) -> list[TestVerdict]:
        return [r for r in self.records if r.outcome in outcomes]

    def count(self, outcome: str) -> int:
        return len(self.with_outcome(outcome))

    def output_text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def tail(self, lines: int = 3) -> list[str]:
        """The last lines of the output (pytest's summary)."""
        return self.output_text().strip().splitlines()[-lines:]


def run_suite(argv: Sequence[str], *, output: Path, timeout_s: float,
              verdict_log: Path | None = None, env: dict[str, str] | None = None) -> SuiteRun:
    """Run the suite (argv from pytest_argv) bounded by `timeout_s`; read its verdict log."""
    started = time.time()
    finished = run_bounded(argv, stdout=output, timeout_s=timeout_s, env=env)
    records = read_verdict_log(verdict_log) if verdict_log is not None else []
    return SuiteRun(tuple(argv), finished.exit_code, finished.timed_out, started,
                    finished.wall_s, output, tuple(records))


# ---- the reports --------------------------------------------------------------------------------

def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table's lines; a '|' or a line end inside a cell is made harmless
    (results.matrix.cell), so that a row never splits."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines
