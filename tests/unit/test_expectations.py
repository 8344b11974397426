"""Known deviations as strict expectations (fixtures/expectations.py): the file is checked against
the spec data, an expected deviation is an expected failure in every report, a different failure
of an expected test stays a failure, and a fixed deviation fails the run as an unexpected pass."""
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fixtures.expectations import ExpectationsError, load
from tests.unit.test_wiring import run_suite

ROOT = Path(__file__).resolve().parents[2]
SHIPPING = ROOT / "expectations" / "esp-at-shipping.toml"
KD1_TEST = "tests/conformance/test_wsopen.py::test_parameter_range[timeout_ms=0-accepted]"
KD2_TEST = "tests/conformance/test_wsopen.py::test_timeout_ms_bounds_the_wait_for_a_silent_server"
pytestmark = pytest.mark.timeout(120)


def one_entry(tmp_path: Path, test: str, clause: str, kd: str) -> Path:
    path = tmp_path / "expectations.toml"
    path.write_text(f'[firmware]\nline = "a test line"\n\n[[expected]]\ntest = "{test}"\n'
                    f'clause = "{clause}"\nkd = "{kd}"\nreason = "the reason"\n'
                    f'evidence = "the evidence"\n')
    return path


def test_the_shipping_file_names_every_known_deviation_the_seed_profile_shows():
    expectations = load(SHIPPING)
    kds = {e.kd for e in expectations.entries}
    # KD-8 needs TLS verification, a later profile; KD-12 is the development line's (VERSIONS.md).
    assert kds == {f"KD-{n}" for n in range(1, 21)} - {"KD-8", "KD-12"}, kds


@pytest.mark.parametrize("clause,kd,why", [
    ("WSOPEN.timeout_ms.range", "KD-2", "has known deviation KD-1, not KD-2"),
    ("WSCFG.link_id.range", "KD-1", "has known deviation none, not KD-1"),
    ("NO.such.clause", "KD-1", "unknown clause"),
])
def test_an_entry_must_match_the_spec_data(tmp_path, clause, kd, why):
    with pytest.raises(ExpectationsError, match=why):
        load(one_entry(tmp_path, KD1_TEST, clause, kd))


def test_a_missing_field_is_named(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text('[[expected]]\ntest = "x"\nclause = "WSOPEN.timeout_ms.range"\nkd = "KD-1"\n')
    with pytest.raises(ExpectationsError, match="entry 1 lacks reason, evidence"):
        load(path)


def test_an_unknown_test_stops_the_run_in_one_line(tmp_path):
    path = one_entry(tmp_path, "tests/conformance/test_wsopen.py::test_no_such_thing",
                     "WSOPEN.timeout_ms.range", "KD-1")
    result = run_suite("tests/conformance/test_wsopen.py", "--expectations", str(path),
                       "--collect-only", "-q")
    assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
    assert "test_no_such_thing: no such test in tests/conformance/test_wsopen.py" in \
        result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("test,problem", [
    ("tests/conformance/test_ws_open.py::test_parameter_range[timeout_ms=0-accepted]",
     "no such file under"),
    ("tests/conformance/test_wsopen.py::test_parameter_range[timeout_ms=9-accepted]",
     "no such case of test_parameter_range (its cases: test_parameter_range[link_id=0-accepted]"),
], ids=["file", "case"])
def test_a_mistyped_file_or_case_stops_the_run_even_when_the_file_is_not_run(tmp_path, test, problem):
    path = one_entry(tmp_path, test, "WSOPEN.timeout_ms.range", "KD-1")
    result = run_suite("tests/conformance/test_wsopen.py", "tests/conformance/test_heap.py",
                       "--expectations", str(path), "--collect-only", "-q")
    assert result.returncode == 4 and problem in result.stdout + result.stderr, \
        result.stdout[-2000:] + result.stderr[-2000:]


def test_one_test_picked_by_node_id_runs_with_the_whole_file(tmp_path):
    """The file lists three tests of test_wsopen.py; picking one of them by node id is not a
    mistake in the file."""
    result = run_suite(f"{KD1_TEST.split('[')[0]}[link_id=0-accepted]", "--expectations",
                       str(SHIPPING), "--collect-only", "-q")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.parametrize("text,problem", [
    ('[expected]\ntest = "x"\n', "`expected` must be a list of tables, [[expected]]"),
    ('firmware = "3.2"\n[[expected]]\ntest = "x"\n', "`firmware` must be a table"),
], ids=["expected-a-table", "firmware-a-string"])
def test_a_file_of_the_wrong_shape_is_one_clear_error(tmp_path, text, problem):
    path = tmp_path / "e.toml"
    path.write_text(text)
    with pytest.raises(ExpectationsError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        load(path)


def test_an_expected_deviation_is_an_expected_failure_in_every_report(tmp_path):
    path = one_entry(tmp_path, KD1_TEST, "WSOPEN.timeout_ms.range", "KD-1")
    result = run_suite("tests/conformance/test_wsopen.py", "--model-defect", "KD-1",
                       "--expectations", str(path), "-k", "parameter_range and timeout_ms",
                       "--alluredir", str(tmp_path / "allure"),
                       "--junitxml", str(tmp_path / "junit.xml"), "-rx")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 failure(s) were EXPECTED" in result.stdout, result.stdout[-3000:]
    assert "[expected KD-1 WSOPEN.timeout_ms.range]" in result.stdout
    skipped = [case for case in ET.parse(tmp_path / "junit.xml").iter("testcase")
               if case.find("skipped") is not None]
    assert len(skipped) == 1 and skipped[0].find("skipped").get("type") == "pytest.xfail"
    assert skipped[0].find("skipped").get("message").startswith("KD-1: the reason")
    results = [json.loads(p.read_text()) for p in (tmp_path / "allure").glob("*-result.json")]
    expected = [r for r in results if r["status"] == "skipped"]
    assert len(expected) == 1 and expected[0]["statusDetails"]["message"].startswith("XFAIL KD-1")
    record = json.loads((tmp_path / "conformance-matrix.json").read_text())
    row = next(c for c in record["clauses"] if c["id"] == "WSOPEN.timeout_ms.range")
    assert row["verdict"] == "EXPECTED KD-1" and row["expected"] == 1, row
    assert record["header"]["expectations"] == str(path)


def test_a_fixed_deviation_fails_the_run_as_an_unexpected_pass(tmp_path):
    path = one_entry(tmp_path, KD1_TEST, "WSOPEN.timeout_ms.range", "KD-1")
    result = run_suite("tests/conformance/test_wsopen.py", "--expectations", str(path),
                       "-k", "parameter_range and timeout_ms", "--alluredir",
                       str(tmp_path / "allure"), "--junitxml", str(tmp_path / "junit.xml"))
    assert result.returncode == 1, result.stdout[-3000:]
    assert "UNEXPECTED PASS of WSOPEN.timeout_ms.range" in result.stdout, result.stdout[-3000:]
    assert "are UNEXPECTED PASSES" in result.stdout
    assert f"delete the entry from {path}" in result.stdout
    failures = [case for case in ET.parse(tmp_path / "junit.xml").iter("testcase")
                if case.find("failure") is not None]
    assert len(failures) == 1 and "UNEXPECTED PASS" in failures[0].find("failure").get("message")
    results = [json.loads(p.read_text()) for p in (tmp_path / "allure").glob("*-result.json")]
    failed = [r for r in results if r["status"] == "failed"]
    assert len(failed) == 1 and "UNEXPECTED PASS" in failed[0]["statusDetails"]["message"]
    record = json.loads((tmp_path / "conformance-matrix.json").read_text())
    row = next(c for c in record["clauses"] if c["id"] == "WSOPEN.timeout_ms.range")
    assert row["verdict"] == "UNEXPECTED PASS", row


def test_another_failure_of_an_expected_test_stays_a_failure(tmp_path):
    """open-timeout-ignored fails KD-2's test with a new signature (ERROR after the default
    15 s): the file's KD-2 entry does not cover it."""
    path = one_entry(tmp_path, KD2_TEST, "WSOPEN.timeout_ms.effect", "KD-2")
    result = run_suite("tests/conformance/test_wsopen.py", "--model-defect", "open-timeout-ignored",
                       "--expectations", str(path), "-k", "timeout_ms_bounds_the_wait")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "NEW FAILURE of WSOPEN.timeout_ms.effect" in result.stdout, result.stdout[-3000:]
    assert "expects this test to fail as KD-2; this failure is NEW" in result.stdout


def test_an_expected_deviation_seen_with_a_stranger_on_the_endpoint_is_broken_not_expected(tmp_path):
    """KD-4's signature fails the test, but a stranger also reached its endpoint: the failure
    cannot be trusted, so it is BROKEN and the run is red, not an expected failure."""
    from tests.unit.test_wiring import run_suite_with_env
    test = "tests/conformance/test_keepalive.py::test_pings_go_on_while_the_server_talks"
    path = one_entry(tmp_path, test, "WSCFG.ping_intv_sec.under_traffic", "KD-4")
    result = run_suite_with_env(test, "--model-defect", "KD-4", "--expectations", str(path),
                                "-p", "tools.robustness_intruder",
                                "--junitxml", str(tmp_path / "junit.xml"),
                                env={"ROBUSTNESS_INTRUDER_LOG": str(tmp_path / "intruder.jsonl")})
    assert result.returncode == 1, result.stdout[-3000:]
    assert "BROKEN" in result.stdout and "a connection that is not the device's" in result.stdout
    assert "EXPECTED" not in result.stdout, result.stdout[-3000:]
    assert 'type="pytest.xfail"' not in (tmp_path / "junit.xml").read_text()


def test_a_session_that_stops_still_writes_its_matrix_with_the_clauses_not_run(tmp_path):
    """A device that accepts the connection and never answers: the session stops at the first
    test; the matrix is written all the same, and the clauses of the tests left read NOT RUN."""
    import socket
    import threading
    silent = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.append(silent.accept()), daemon=True).start()
    try:
        result = run_suite("tests/conformance/test_wsclose.py",
                           "--at-port", f"socket://127.0.0.1:{silent.getsockname()[1]}",
                           "--junitxml", str(tmp_path / "junit.xml"))
    finally:
        silent.close()
    assert result.returncode != 0
    record = json.loads((tmp_path / "conformance-matrix.json").read_text())
    assert record["stopped"]["why"], record["stopped"]
    not_run = [t for t in record["tests"] if t["outcome"] == "not run"]
    assert len(not_run) >= 10 and all(t["clauses"] for t in not_run), not_run[:2]
    later = {c for t in not_run for c in t["clauses"]}
    first = {c for t in record["tests"] if t["outcome"] != "not run" for c in t["clauses"]}
    verdicts = {c["id"]: c["verdict"] for c in record["clauses"]}
    assert all(verdicts[c] == "NOT RUN" for c in later - first), verdicts


def test_the_projects_own_tests_write_no_conformance_matrix(tmp_path):
    result = run_suite("tests/unit/test_timeline.py", "-k", "same_input",
                       "--junitxml", str(tmp_path / "junit.xml"))
    assert result.returncode == 0, result.stdout[-2000:]
    assert not list(tmp_path.glob("conformance-matrix.*"))
    assert "esp-at-ws run" not in result.stdout
