"""tools/suite_run.py, the one runner of the suite that mutation, profiles, shipping and
robustness share: the argv, the bound (the whole process group killed), the verdict log read back
as typed records (from a real run of one test, and from a stand-in suite through each tool's own
reading of it), and the Markdown table."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from fixtures.verdicts import DEVICE_FAULT, FAULT_CLASS, NEW, VIOLATION_CLASS, Outcome
from tools import mutation, profiles, shipping, suite_run
from tools.robustness.catalog import QUERY

pytestmark = pytest.mark.timeout(120)


def line(nodeid: str, outcome: str, verdict: str = "", **extra) -> dict:
    """A line of the verdict log, as fixtures/run_record.VerdictLog writes it."""
    return {"nodeid": nodeid, "outcome": outcome, "verdict": verdict, "clauses": ["C.x"],
            "duration": 0.5, "message": "", "when": "call", "class": "", "failed_clause": "",
            "time": time.time(), **extra}


def stand_in(lines: list[dict], exit_code: int = 0, sleep_s: float = 0.0,
             junit: str | None = None) -> list[str]:
    """argv of a process that plays a suite run: writes the verdict log named by its first
    argument (and JUnit XML by its second), prints a summary, sleeps, exits."""
    script = ("import sys, time\n"
              f"open(sys.argv[1], 'w').write({''.join(json.dumps(x) + chr(10) for x in lines)!r})\n"
              f"if {junit!r}: open(sys.argv[2], 'w').write({junit!r})\n"
              "print('=== a summary line ===', flush=True)\n"
              f"time.sleep({sleep_s})\n"
              f"sys.exit({exit_code})\n")
    return [sys.executable, "-c", script]


# ---- the runner --------------------------------------------------------------------------------

def test_a_real_run_of_one_test_reads_back_as_records(tmp_path):
    log, junit = tmp_path / "verdicts.jsonl", tmp_path / "junit.xml"
    argv = suite_run.pytest_argv((QUERY,), verdict_log=log, junit=junit)
    done = suite_run.run_suite(argv, output=tmp_path / "out.txt", timeout_s=100,
                               verdict_log=log)
    assert done.exit_code == 0 and not done.timed_out, done.tail()
    assert [(r.nodeid, r.outcome, r.verdict, r.when) for r in done.records] == [
        (QUERY, Outcome.PASSED, "", "call")]
    assert done.records[0].clauses == ("WSOPEN.query.none",)
    assert done.started <= done.records[0].time <= done.started + done.wall_s + 1
    assert "1 passed" in done.output_text()
    assert suite_run.read_junit(junit).tests == 1


def test_argv_keeps_the_tests_first_and_the_extra_options_last(tmp_path):
    argv = suite_run.pytest_argv(("a", "b"), device=("--model-defect", "x"),
                                 verdict_log=tmp_path / "v", workers="0", extra=("-x",))
    assert argv[1:5] == ["-m", "pytest", "a", "b"] and argv[-1] == "-x" and "-n" not in argv
    assert argv[argv.index("--model-defect") + 1] == "x"
    argv = suite_run.pytest_argv(workers=2, verbose=True)
    assert argv[3] == suite_run.SUITE and "-v" in argv
    assert argv[argv.index("-n") + 1] == "2"


def test_the_bound_kills_the_whole_process_group(tmp_path):
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              "print(child.pid, flush=True)\n"
              "time.sleep(60)\n")
    started = time.monotonic()
    done = suite_run.run_suite([sys.executable, "-c", script], output=tmp_path / "out.txt",
                               timeout_s=1.0, verdict_log=tmp_path / "none.jsonl")
    assert done.timed_out and done.exit_code is None and done.records == ()
    assert time.monotonic() - started < 10
    child = int(done.output_text().split()[0])
    deadline = time.monotonic() + 5
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child)


def gone(pid: int) -> bool:
    """No such process, or a zombie (killed, not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def test_a_torn_line_is_left_out_and_the_class_comes_from_the_verdict(tmp_path):
    log = tmp_path / "v.jsonl"
    log.write_text(json.dumps(line("t.py::a", "failed", DEVICE_FAULT)) + "\n"
                   + json.dumps(line("t.py::b", "failed", "KD-2", **{"class": VIOLATION_CLASS}))
                   + "\n" + '{"nodeid": "t.py::c", "outc')
    records = suite_run.read_verdict_log(log)
    assert [(r.nodeid, r.verdict_class) for r in records] == [
        ("t.py::a", FAULT_CLASS), ("t.py::b", VIOLATION_CLASS)]
    assert suite_run.read_verdict_log(tmp_path / "missing.jsonl") == []


def test_markdown_table_keeps_every_row_whole():
    lines = suite_run.markdown_table(("a", "b"), [(1, "x|y"), ("two\nlines", "")])
    assert lines == ["| a | b |", "|---|---|", "| 1 | x/y |", "| two lines |  |"]


# ---- each tool reads a run through it ----------------------------------------------------------

def test_mutation_files_a_kill_from_the_verdict_log(tmp_path, monkeypatch):
    records = [line("t.py::ok", "passed"),
               line("t.py::bad", "failed", NEW, failed_clause="C.x", message="E  no\nmore")]
    monkeypatch.setattr(mutation, "pytest_argv",
                        lambda run, fast, log: stand_in(records, 1) + [str(log)])
    run = mutation.execute(mutation.Run("some-defect", clauses=("C.x",)), True, tmp_path,
                           {"t.py::bad"})
    assert (run.outcome, run.reported_as, run.reported_right, run.first_failure) == (
        mutation.KILLED, NEW, True, "t.py::bad")
    assert run.killed_by_slow_test and run.tests_run == 2 and run.detail == "E  no"
    assert run.failed_clause == "C.x" and 0 <= run.seconds_to_kill < 30

    monkeypatch.setattr(mutation, "pytest_argv",
                        lambda run, fast, log: stand_in([], 0, sleep_s=30) + [str(log)])
    monkeypatch.setattr(mutation, "RUN_TIMEOUT_S", {True: 0.5})
    run = mutation.execute(mutation.Run("other"), True, tmp_path, set())
    assert run.outcome == mutation.TIMED_OUT and run.detail == "no failure within 0.5 s"


def test_shipping_reads_its_records_and_reports_a_timeout(tmp_path, monkeypatch):
    records = [line("t.py::a", "xfailed", "KD-1"), line("t.py::b", "passed")]
    monkeypatch.setattr(shipping, "OUT", tmp_path)
    monkeypatch.setattr(shipping, "pytest_argv",
                        lambda **kw: stand_in(records, 0) + [str(kw["verdict_log"])])
    code, got, took, stdout = shipping.run("with", [], "0")
    assert code == 0 and [(r.nodeid, r.outcome, r.verdict) for r in got] == [
        ("t.py::a", "xfailed", "KD-1"), ("t.py::b", "passed", "")]
    assert "a summary line" in stdout and "a summary line" in (tmp_path / "with" /
                                                                 "stdout.txt").read_text()
    monkeypatch.setattr(shipping, "RUN_TIMEOUT_S", 0.5)
    monkeypatch.setattr(shipping, "pytest_argv",
                        lambda **kw: stand_in([], 0, sleep_s=30) + [str(kw["verdict_log"])])
    code, got, took, stdout = shipping.run("hung", [], "0")
    assert code == shipping.TIMED_OUT_CODE and took < 10
    assert (tmp_path / "hung" / "stdout.txt").read_text().startswith("timed out after 0.5 s\n")


JUNIT = ('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" '
         'failures="1" skipped="2" tests="9"></testsuite></testsuites>')


def test_profiles_counts_from_junit(tmp_path, monkeypatch):
    def argv(**kw):
        return stand_in([], 1, junit=JUNIT) + [str(tmp_path / "v.jsonl"), str(kw["junit"])]
    monkeypatch.setattr(profiles, "pytest_argv", argv)
    run = profiles.run_profile("seed", True, 1, tmp_path)
    assert (run.exit_code, run.tests, run.failed, run.skipped, run.passed) == (1, 9, 2, 2, 5)
    assert not run.ok and run.detail          # no matrix was written: said, not a crash
    assert os.path.exists(tmp_path / "profiles" / "seed" / "output.txt")
