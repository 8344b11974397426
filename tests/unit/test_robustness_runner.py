"""tools/robustness/'s own logic (catalog, runner, judge, cli) and tools/suite_run.py's readers,
without running the suite: the scenario table, reading a verdict log, JUnit and Allure results,
the expectations, the process checks, the secret grep and the report table."""
from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.verdicts import NOT_RUN, PASS, TestVerdict
from tools import suite_run
from tools.robustness import catalog, cli, judge, runner
from tools.faultproxy import parse_fault

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(30)
OPENS, QUERY, CFG = catalog.OPENS, catalog.QUERY, catalog.CFG_EXAMPLE


def entry(nodeid: str, outcome: str = "passed", verdict: str = "", clauses=("C.x",)) -> dict:
    """A line of the verdict log, as fixtures/run_record.VerdictLog writes it."""
    return {"nodeid": nodeid, "when": "call", "outcome": outcome, "verdict": verdict,
            "class": "", "failed_clause": "", "clauses": list(clauses), "duration": 0.1,
            "time": 0.0, "message": ""}


def record(*args, **kwargs) -> TestVerdict:
    return TestVerdict.from_json(entry(*args, **kwargs))


SCENARIO = catalog.Scenario(name="t", fault="reboot@AT+WSOPEN=", faults=("reboot@AT+WSOPEN=",),
                            tests=(OPENS, QUERY, CFG),
                            verdicts=((OPENS, "DEVICE FAULT|BROKEN"), (QUERY, PASS),
                                      (CFG, NOT_RUN)),
                            must_pass=(QUERY,))


# ---- the scenario table --------------------------------------------------------------------

def collected() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", suite_run.SUITE, "--collect-only", "-q",
                          "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    return {line.strip() for line in out.stdout.splitlines() if "::" in line}


def test_every_scenario_names_real_tests_and_valid_faults():
    nodeids = collected()
    assert len({s.name for s in catalog.SCENARIOS}) == len(catalog.SCENARIOS)
    for s in catalog.SCENARIOS:
        for nodeid in s.tests + tuple(k for k, _ in s.verdicts) + s.must_pass:
            assert any(n == nodeid or n.startswith(nodeid + "[") for n in nodeids), (s.name, nodeid)
        for spec in s.faults:
            assert parse_fault(spec).spec == spec
        assert (s.device == "proxy") == bool(s.faults), s.name
        assert s.device in ("proxy", "model", "suite", "none")
        assert set(s.must_pass) <= set(s.tests), s.name
        assert (s.signal is None) == (s.when is None), s.name
        if s.device == "none":
            assert s.command and s.bad_input
        else:
            assert s.tests and {k for k, _ in s.verdicts} == set(s.tests), s.name


def test_issue_12_is_covered():
    kinds = {parse_fault(spec).kind for s in catalog.SCENARIOS for spec in s.faults}
    assert kinds == {"reboot", "garbage", "prompt", "header", "stall", "gone", "drop", "flood",
                     "busy"}
    by = catalog.BY_NAME
    assert by["stall-60s"].faults == ("stall:60@AT+WSOPEN=",)
    assert by["flood-32MB"].faults == ("flood:33554432@AT+WSOPEN=",)
    assert by["flood-32MB"].max_peak_mib <= 200 and by["flood-32MB"].max_artifacts_mib <= 10
    assert {by["sigint"].signal, by["sigterm"].signal} == {signal.SIGINT, signal.SIGTERM}
    assert by["wifi-join-fails"].secret == dict(by["wifi-join-fails"].env)[catalog.PASSWORD_ENV]
    bad = [s for s in catalog.SCENARIOS if s.bad_input]
    assert {s.exit_code for s in bad} == {catalog.USAGE_ERROR, catalog.ARGPARSE_ERROR}
    assert len(bad) == 8
    assert by["wifi-join-ok"].secret == dict(by["wifi-join-ok"].env)[catalog.PASSWORD_ENV]


def test_pytest_argv_keeps_the_order_and_puts_the_matrix_in_d(tmp_path):
    argv = runner.pytest_argv(SCENARIO, tmp_path, "socket://127.0.0.1:5")
    assert argv[3:6] == [OPENS, QUERY, CFG] and suite_run.SUITE not in argv
    assert argv[argv.index("--alluredir") + 1] == str(tmp_path / "reports" / "allure-results")
    assert argv[argv.index("--at-port") + 1] == "socket://127.0.0.1:5"
    assert "--at-port" not in runner.pytest_argv(catalog.BY_NAME["sigint"], tmp_path, None)


def test_the_password_reaches_pytest_only_through_its_scenario(tmp_path, monkeypatch):
    monkeypatch.setenv(catalog.PASSWORD_ENV, "inherited")
    assert catalog.PASSWORD_ENV not in runner.scenario_env(SCENARIO, tmp_path)
    env = runner.scenario_env(catalog.BY_NAME["wifi-join-fails"], tmp_path)
    assert env[catalog.PASSWORD_ENV] == catalog.WIFI_PASSWORD and env["PYTHONPATH"] == str(ROOT)


# ---- reading a run ---------------------------------------------------------------------------

def test_verdict_log_leaves_out_a_torn_line(tmp_path):
    log = tmp_path / "v.jsonl"
    log.write_text(json.dumps(entry(OPENS, "failed", "DEVICE FAULT")) + "\n"
                   + '{"nodeid": "tests/x.py::t", "outc')
    assert suite_run.read_verdict_log(log) == [TestVerdict(
        OPENS, "failed", "DEVICE FAULT", ("C.x",), duration=0.1)]
    assert suite_run.read_verdict_log(tmp_path / "none.jsonl") == []


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.conformance.test_wsopen" name="test_open_prints_connected_once_then_ok"
 time="1.0"><failure message="DEVICE FAULT">x</failure></testcase>
<testcase classname="tests.conformance.test_wsopen" name="test_query_without_connection_answers_only_ok" time="0.1"/>
<testcase classname="tests.conformance.test_keepalive" name="test_pings_every_interval[1]" time="3"/>
<testcase classname="tests.conformance.test_keepalive" name="test_pings_every_interval[2]" time="3">
<error message="x">y</error></testcase>
<testcase classname="tests.conformance.test_wscfg" name="test_doc_example_is_accepted_to_the_byte"><skipped/></testcase>
</testsuite></testsuites>"""


def test_junit_cases_and_their_status(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    junit = suite_run.read_junit(path)
    assert (junit.tests, junit.failures, junit.errors, junit.skipped) == (4, 0, 0, 0)
    cases = list(junit.cases)
    assert [c.status for c in cases] == ["failed", "passed", "passed", "broken", "skipped"]
    assert [c.status for c in judge.cases_of(OPENS, cases)] == ["failed"]
    pings = "tests/conformance/test_keepalive.py::test_pings_every_interval"
    assert len(judge.cases_of(pings, cases)) == 2 and len(judge.cases_of(pings + "[2]", cases)) == 1
    path.write_text(JUNIT[:200])
    with pytest.raises(ValueError, match="does not parse"):
        suite_run.read_junit(path)
    with pytest.raises(ValueError, match="missing"):
        suite_run.read_junit(tmp_path / "nope.xml")


def allure_result(directory: Path, module: str, name: str, status: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    n = len(list(directory.glob("*-result.json")))
    (directory / f"{n:04d}-result.json").write_text(json.dumps(
        {"name": name, "fullName": f"{module}#{name.partition('[')[0]}", "status": status}))


def test_allure_results(tmp_path):
    results = tmp_path / "allure-results"
    allure_result(results, "tests.conformance.test_wsopen",
                  "test_open_prints_connected_once_then_ok", "failed")
    (results / "x-attachment.txt").write_text("transcript")
    cases = judge.read_allure(results)
    assert [(c.name, c.status) for c in judge.cases_of(OPENS, cases)] == [
        ("test_open_prints_connected_once_then_ok", "failed")]
    assert judge.read_allure(tmp_path / "missing") == []


def test_allure_results_named_in_words_are_found_by_their_node_id_label(tmp_path):
    results = tmp_path / "allure-results"
    results.mkdir()
    (results / "0-result.json").write_text(json.dumps({
        "name": "set answers ok and nothing else: buffer size left off", "status": "passed",
        "fullName": "tests.conformance.test_wscfg#test_set_answers_ok_and_nothing_else",
        "labels": [{"name": "nodeid", "value": "tests/conformance/test_wscfg.py::"
                                               "test_set_answers_ok_and_nothing_else[buffer-size-left-off]"}]}))
    key = "tests/conformance/test_wscfg.py::test_set_answers_ok_and_nothing_else[buffer-size-left-off]"
    assert [(c.name, c.status) for c in judge.cases_of(key, judge.read_allure(results))] == [
        ("test_set_answers_ok_and_nothing_else[buffer-size-left-off]", "passed")]


# ---- expectations ------------------------------------------------------------------------------

def test_check_verdicts():
    good = [record(OPENS, "failed", "DEVICE FAULT"), record(QUERY)]
    assert judge.check_verdicts(SCENARIO, good) == []
    assert judge.check_verdicts(SCENARIO, [record(OPENS, "failed", "BROKEN"), record(QUERY)]) == []
    bad = [record(OPENS, "failed", "KD-3"), record(CFG)]
    assert judge.check_verdicts(SCENARIO, bad) == [
        "test_open_prints_connected_once_then_ok: KD-3, expected DEVICE FAULT|BROKEN",
        "test_query_without_connection_answers_only_ok: no verdict log line (expected PASS)",
        "test_doc_example_is_accepted_to_the_byte ran (PASS), expected not run"]


def test_check_reports_reads_one_classification(tmp_path):
    records = [record(OPENS, "failed", "DEVICE FAULT"), record(QUERY)]
    junit = [suite_run.Case("tests.conformance.test_wsopen", "test_open_prints_connected_once_then_ok",
                     "failed"),
             suite_run.Case("tests.conformance.test_wsopen", "test_query_without_connection_answers_only_ok",
                     "passed")]
    allure = list(junit)
    assert judge.check_reports(SCENARIO, records, junit, allure) == []
    wrong = [suite_run.Case(c.module, c.name, "passed") for c in allure]
    assert judge.check_reports(SCENARIO, records, junit, wrong) == [
        "test_open_prints_connected_once_then_ok: Allure says passed for DEVICE FAULT"]
    assert judge.check_reports(SCENARIO, records, "junit.xml missing", []) == [
        "test_open_prints_connected_once_then_ok: not in Allure",
        "test_query_without_connection_answers_only_ok: not in Allure", "junit.xml missing"]
    twice = junit + junit[:1]
    assert judge.check_reports(SCENARIO, records, twice, allure) == [
        "test_open_prints_connected_once_then_ok: 2 entries in junit.xml for 1 test(s)"]


def test_an_interrupted_test_must_not_read_passed():
    scenario = catalog.BY_NAME["sigint"]
    records = [record(catalog.QUERY), record(catalog.NO_PONG, "failed", "INTERRUPTED")]
    cases = [suite_run.Case("tests.conformance.test_wsopen", "test_query_without_connection_answers_only_ok",
                     "passed"),
             suite_run.Case("tests.conformance.test_keepalive",
                     "test_no_pong_within_timeout_aborts_the_connection", "passed")]
    assert judge.check_verdicts(scenario, records) == []
    reasons = judge.check_reports(scenario, records, cases, cases)
    assert reasons == [
        "test_no_pong_within_timeout_aborts_the_connection: junit.xml says passed for INTERRUPTED",
        "test_no_pong_within_timeout_aborts_the_connection: Allure says passed for INTERRUPTED"]
    # SIGTERM that killed pytest outright: no verdict line, no junit, the test nowhere.
    assert judge.check_verdicts(scenario, [record(catalog.QUERY)]) == [
        "test_no_pong_within_timeout_aborts_the_connection: no verdict log line "
        "(expected INTERRUPTED)"]


def test_check_matrix(tmp_path):
    matrix = tmp_path / judge.MATRIX_FILE
    records = [record(OPENS, "failed", "BROKEN", clauses=("WSOPEN.set.connected",))]
    assert judge.check_matrix(records, matrix) == [f"no {judge.MATRIX_FILE}"]
    assert judge.check_matrix([], matrix) == []
    matrix.write_text("# Conformance matrix\n\n| clause | level | verdict | passed |\n|---|---|---|---|\n"
                      "| WSOPEN.set.connected | MUST | FAIL | 0 |\n")
    assert judge.check_matrix(records, matrix) == [
        "matrix: WSOPEN.set.connected reads 'FAIL' for a BROKEN"]
    matrix.write_text(matrix.read_text().replace("| FAIL |", "| BROKEN |"))
    assert judge.check_matrix(records, matrix) == []


def test_bad_input_wants_one_line_and_no_traceback():
    scenario = catalog.BY_NAME["at-port-bad-url"]
    assert judge.check_bad_input(scenario, 4, "ERROR: --at-port foo://x: not a URL\n", "foo://x",
                              []) == []
    output = "Traceback (most recent call last):\n  ...\nValueError: foo://x\nE   foo://x\n"
    assert judge.check_bad_input(scenario, 4, output, "foo://x", [record(QUERY)]) == [
        "a Traceback in the output", "2 lines carry 'foo://x', expected exactly one",
        "1 test(s) ran before the refusal"]


def test_not_run_tests_must_be_listed():
    scenario = catalog.BY_NAME["gone"]
    names = [k.rpartition("::")[2] for k, v in scenario.verdicts if v == NOT_RUN]
    listed = "\n".join(f"  {name}  not run" for name in names)
    assert judge.check_not_run_listed(scenario, listed) == []
    assert judge.check_not_run_listed(scenario, listed.splitlines()[0]) == [
        f"{name} not listed as 'not run'" for name in names[1:]]


def test_check_intruder(tmp_path):
    log = tmp_path / "intruder.jsonl"
    assert judge.check_intruder(log) == [
        "the intruder made no attempt (is -p tools.robustness_intruder loaded?)"]
    log.write_text(json.dumps({"kind": "guessed", "path": "/ep/1-t", "status": 101}) + "\n"
                   + json.dumps({"kind": "real", "path": "/ep/x-t", "status": 409}) + "\n")
    assert judge.check_intruder(log) == [
        "intruder on the guessed path /ep/1-t: got 101, expected 404"]


# ---- processes -------------------------------------------------------------------------------

def test_session_processes_parses_ps():
    ps = "    1     1 /sbin/init\n  200   150 python -m sim --listen x\n  201   150\n  300   300 sh\n"
    assert runner.session_processes(150, ps) == [(200, "python -m sim --listen x"), (201, "")]
    assert runner.session_processes(999, ps) == []


def test_a_process_left_in_the_session_is_found_and_killed():
    leader = subprocess.Popen(["sh", "-c", "sleep 30 & exit 0"], start_new_session=True)
    leader.wait(5)
    left = runner.leftovers(leader.pid, grace_s=0.3)
    assert [args for _, args in left] == ["sleep 30"]
    deadline = time.monotonic() + 3
    while runner.session_processes(leader.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runner.session_processes(leader.pid) == []
    quiet = subprocess.Popen(["true"], start_new_session=True)
    quiet.wait(5)
    assert runner.leftovers(quiet.pid, grace_s=0.3) == []


def scenario_for(script: str, **extra) -> tuple[catalog.Scenario, list[str]]:
    return catalog.Scenario(name="p", fault="-", device="none", **extra), [sys.executable, "-c", script]


def test_run_process_measures_peak_memory_of_the_tree(tmp_path):
    child = "b = bytearray(80 << 20); print(len(b))"
    script = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    scenario, argv = scenario_for(script, bound_s=20)
    session = runner.run_process(argv, {}, tmp_path, scenario)
    assert session.exit_code == 0 and not session.hang and session.leftover == []
    assert session.peak_kib > 80 * 1024                        # the child's, reaped by the parent
    assert (tmp_path / "stdout.txt").read_text().strip() == str(80 << 20)


def test_run_process_kills_a_hang(tmp_path):
    scenario, argv = scenario_for("import time; time.sleep(30)", bound_s=0.5)
    started = time.monotonic()
    session = runner.run_process(argv, {}, tmp_path, scenario)
    assert session.hang and session.exit_code is None and time.monotonic() - started < 5


def test_run_process_sends_the_signal_when_due(tmp_path):
    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGTERM, lambda *a: sys.exit(2))\n"
              "print('tests/x.py::t1 PASSED', flush=True); print('tests/x.py::t2 ', flush=True)\n"
              "time.sleep(20)\n")
    scenario, argv = scenario_for(script, tests=("tests/x.py::t1", "tests/x.py::t2"),
                                  signal=signal.SIGTERM, when=catalog.When("started", 2, 0.3),
                                  bound_s=10)
    session = runner.run_process(argv, {}, tmp_path, scenario)
    assert session.exit_code == 2 and 0.3 <= session.signal_sent_s < 3


def test_signal_after_the_nth_finished_test(tmp_path):
    scenario = catalog.Scenario(name="s", fault="-", tests=("a", "b"), signal=signal.SIGINT,
                           when=catalog.When("finished", 1, 0.0))
    log, since = tmp_path / "v.jsonl", {}
    assert not runner.signal_due(scenario, 0.0, 1.0, tmp_path / "out", log, since)
    log.write_text(json.dumps(entry("a")) + "\n")
    assert runner.signal_due(scenario, 0.0, 2.0, tmp_path / "out", log, since)


# ---- secrets ---------------------------------------------------------------------------------

def test_secret_found_in_every_form(tmp_path):
    secret = "p@ss w/rd-7f3a"
    (tmp_path / "clean.txt").write_text("nothing to see")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "plain.xml").write_text(f"<failure>joining with {secret}</failure>")
    (tmp_path / "url.txt").write_text("uri=" + "p%40ss%20w%2Frd-7f3a")
    (tmp_path / "hex.txt").write_text(secret.encode().hex().upper())
    for offset in range(3):
        blob = b"x" * offset + b"AT+CWJAP=\"lab\",\"" + secret.encode() + b"\"\r\n"
        (tmp_path / f"b64-{offset}.json").write_text(
            json.dumps({"attachment": base64.b64encode(blob).decode()}))
    hits = judge.find_secret(tmp_path, secret)
    assert [h.split(":")[0] for h in hits] == [
        "b64-0.json", "b64-1.json", "b64-2.json", "hex.txt", "sub/plain.xml", "url.txt"]
    assert judge.find_secret(tmp_path / "sub", "other-secret") == []


def test_size_and_bytes_leave_out_what_is_skipped(tmp_path):
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / "big").write_bytes(b"x" * (2 << 20))
    (tmp_path / "small").write_bytes(b"intruder-frame" + b"y" * 1000)
    assert judge.size_mib(tmp_path, skip=(tmp_path / "tmp",)) < 0.01
    assert judge.size_mib(tmp_path) > 2
    assert judge.find_bytes(tmp_path, b"intruder-frame") == ["small"]
    assert judge.find_bytes(tmp_path, b"intruder-frame", skip=(tmp_path / "small",)) == []


# ---- the report ------------------------------------------------------------------------------

def test_table():
    ok = runner.Result("reboot", "reboot@AT+WSOPEN=", ok=True, wall_s=12.3, exit_code=1,
                   peak_mib=71.5, recovered="yes",
                   verdicts={"t1": "DEVICE FAULT", "t2": PASS, "t3": PASS})
    bad = runner.Result("gone", "gone@AT+WSOPEN=", ok=False, wall_s=150.0, exit_code=None, hang=True,
                    reasons=["HANG: not finished", "a|b"], verdicts={"t1": "KD-3", "t2": "NOT RUN"})
    text = cli.table([ok, bad])
    lines = text.splitlines()
    assert lines[0].startswith("| scenario | fault | time (s) |")
    assert lines[2] == ("| reboot | reboot@AT+WSOPEN= | 12.3 | 1 | DEVICE FAULT, 2 passed | yes | "
                        "71.5 | pass |")
    assert lines[3] == ("| gone | gone@AT+WSOPEN= | 150 |  (hang) | KD-3, 1 not run | - |  | "
                        "FAIL: HANG: not finished; a/b |")
    assert all(line.count("|") == 9 for line in lines)
    assert "met every expectation: **1**" in cli.report_markdown([ok, bad], 160.0)
