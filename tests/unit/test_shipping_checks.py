"""tools/shipping.py's checks: with the file every listed test is an expected failure of
its KD and nothing fails; without it exactly the listed tests fail, each as its KD."""
from fixtures.expectations import Expectation
from tools.shipping import check_with, check_without
from fixtures.verdicts import TestVerdict

CASE = Expectation("t.py::test_range[timeout_ms=0-accepted]", "WSOPEN.timeout_ms.range", "KD-1",
                   "r", "e")
WHOLE = Expectation("t.py::test_pings", "WSCFG.ping_intv_sec.under_traffic", "KD-4", "r", "e")
ENTRIES = (CASE, WHOLE)


def rec(nodeid: str, outcome: str, verdict: str = "") -> TestVerdict:
    return TestVerdict(nodeid, outcome, verdict)


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


def test_with_the_newest_library_only_the_fixed_deviations_pass_unexpectedly():
    """1.8.0 fixed KD-4 (sim/library.py): its entry must be an UNEXPECTED PASS, KD-1's still an
    expected failure; any other failure, or a fixed entry expected, is said."""
    from tools.shipping import check_fixed_library
    records = [rec(CASE.test, "xfailed", "KD-1"),
               rec("t.py::test_pings[1]", "failed", "UNEXPECTED PASS")]
    assert check_fixed_library(1, records, ENTRIES) == []
    records = [rec(CASE.test, "failed", "UNEXPECTED PASS"), rec("t.py::test_pings[1]", "xfailed",
                                                                "KD-4")]
    assert check_fixed_library(1, records, ENTRIES) == [
        "t.py::test_range[timeout_ms=0-accepted] failed as UNEXPECTED PASS; only the entries of "
        "['KD-4'] may, as UNEXPECTED PASS",
        "t.py::test_range[timeout_ms=0-accepted] (KD-1) was not an expected failure",
        "t.py::test_pings (KD-4) was not an UNEXPECTED PASS"]
