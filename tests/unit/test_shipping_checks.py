"""tools/shipping.py's two checks: with the file every listed test is an expected failure of
its KD and nothing fails; without it exactly the listed tests fail, each as its KD."""
from fixtures.expectations import Expectation
from tools.shipping import check_with, check_without

CASE = Expectation("t.py::test_range[timeout_ms=0-accepted]", "WSOPEN.timeout_ms.range", "KD-1",
                   "r", "e")
WHOLE = Expectation("t.py::test_pings", "WSCFG.ping_intv_sec.under_traffic", "KD-4", "r", "e")
ENTRIES = (CASE, WHOLE)


def rec(nodeid: str, outcome: str, verdict: str = "") -> dict:
    return {"nodeid": nodeid, "outcome": outcome, "verdict": verdict}


def test_with_the_file_a_whole_function_entry_covers_its_cases():
    records = [rec(CASE.test, "xfailed", "KD-1"), rec("t.py::test_pings[1]", "xfailed", "KD-4"),
               rec("t.py::test_pings[2]", "xfailed", "KD-4"), rec("t.py::test_other", "passed")]
    assert check_with(0, records, ENTRIES) == []


def test_with_the_file_a_failure_a_wrong_kd_and_a_missing_expected_failure_are_each_said():
    records = [rec(CASE.test, "xfailed", "KD-2"), rec("t.py::test_other", "failed", "NEW")]
    assert check_with(1, records, ENTRIES) == [
        "exit status 1, not 0",
        "t.py::test_range[timeout_ms=0-accepted] was an expected failure as KD-2, the file says KD-1",
        "t.py::test_other failed (NEW)",
        "t.py::test_pings is listed but was not an expected failure"]


def test_without_the_file_exactly_the_listed_tests_fail_as_their_kd():
    records = [rec(CASE.test, "failed", "KD-1"), rec("t.py::test_pings[2]", "failed", "KD-4"),
               rec("t.py::test_other", "passed")]
    assert check_without(1, records, ENTRIES) == []
    records = [rec(CASE.test, "failed", "NEW"), rec("t.py::test_other", "failed", "NEW")]
    assert check_without(0, records, ENTRIES) == [
        "exit status 0, not 1",
        "t.py::test_range[timeout_ms=0-accepted] failed as NEW, the file says KD-1",
        "t.py::test_other failed (NEW) but is not listed",
        "t.py::test_pings did not fail"]
