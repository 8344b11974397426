"""fixtures/verdicts.py: one classification of a failure, read by every report."""
import pytest

from esp_at.errors import (DeviceBusy, DeviceFlood, DeviceRebooted, DeviceSilent,
                           DeviceStoppedAnswering, DeviceViolation, PortClosed)
from results import matrix
from esp_at.errors import DeviceCrashed
from fixtures.verdicts import (BROKEN, DEVICE_FAULT, FAULT_PRECEDENCE, INTERRUPTED, NEW,
                               UNEXPECTED_PASS, HarnessAnomaly, Outcome, RunInterrupted,
                               TestVerdict, UnexpectedPass, class_of, clause_verdict, deviation,
                               label_of, worst)

KD_CLAUSE = "WSOPEN.timeout_ms.range"           # KD-1 in spec/websocket_at.toml


def violation(**kw):
    return DeviceViolation(what="wrong", sent=b"AT\r\n", expected="OK", received=b"ERROR", **kw)


def fault(kind):
    return kind(what="the device misbehaved", sent=None, expected="-", received=b"")


def raised_inside_deviation(exc):
    with pytest.raises(type(exc)) as info:
        with deviation(KD_CLAUSE):
            raise exc
    return info.value


def test_a_deviations_own_check_is_filed_as_that_kd():
    label = label_of(raised_inside_deviation(violation()), [KD_CLAUSE])
    assert (label.kind, label.clause, label.verdict_class) == ("KD-1", KD_CLAUSE, "violation")
    assert "KNOWN DEVIATION KD-1" in label.heading()


@pytest.mark.parametrize("kind", [DeviceRebooted, DeviceFlood, DeviceBusy,
                                  DeviceStoppedAnswering])
def test_a_device_fault_is_never_a_known_deviation_even_under_its_check(kind):
    label = label_of(raised_inside_deviation(fault(kind)), [KD_CLAUSE])
    assert (label.kind, label.verdict_class) == (DEVICE_FAULT, "device fault")
    assert not label.is_known_deviation
    assert label.heading(kind.story).startswith(f"DEVICE FAULT: the device {kind.story}")


def test_a_crash_on_uart0_is_a_device_fault():
    assert label_of(DeviceCrashed("Guru Meditation"), [KD_CLAUSE]).kind == DEVICE_FAULT


@pytest.mark.parametrize("exc", [PortClosed("gone"), RuntimeError("server"),
                                 HarnessAnomaly("a stranger connected")])
def test_anything_else_is_a_harness_fault(exc):
    label = label_of(exc, [KD_CLAUSE])
    assert (label.kind, label.verdict_class) == (BROKEN, "harness")


def test_an_interrupted_test_is_interrupted():
    assert label_of(RunInterrupted("SIGTERM"), ["X"]).kind == INTERRUPTED
    assert class_of(INTERRUPTED) == "interrupted"


def test_unexplained_output_takes_the_kd_label_away():
    exc = raised_inside_deviation(violation())
    assert label_of(exc, [KD_CLAUSE], unexplained_output=True).kind == NEW


def test_a_silence_outside_any_check_is_new():
    exc = DeviceSilent(what="no answer", sent=b"AT\r\n", expected="OK", received=b"")
    assert label_of(exc, [KD_CLAUSE]).kind == NEW


@pytest.mark.parametrize("kinds,expected", [
    ([("passed", "")], "PASS"),
    ([("failed", "KD-1")], "KNOWN DEVIATION"),
    ([("failed", "KD-1"), ("failed", "NEW")], "FAIL"),
    ([("failed", "DEVICE FAULT"), ("passed", "")], "DEVICE FAULT"),
    ([("failed", "BROKEN")], "BROKEN"),
    ([("failed", "INTERRUPTED")], "INTERRUPTED"),
    ([("failed", "BROKEN"), ("failed", "NEW")], "FAIL"),
    ([], "NOT RUN"),
    ([("xfailed", "KD-1"), ("passed", "")], "EXPECTED KD-1"),
    ([("xfailed", "KD-1"), ("failed", "UNEXPECTED PASS")], "UNEXPECTED PASS"),
    ([("failed", "UNEXPECTED PASS"), ("failed", "NEW")], "FAIL"),
    ([("xfailed", "KD-1"), ("failed", "KD-1")], "KNOWN DEVIATION"),
    ([("skipped", "")], "SKIPPED"),
    ([("passed", ""), ("not run", "")], "NOT RUN"),          # the session stopped before one
    ([("passed", ""), ("skipped", "")], "PASS"),
    ([("failed", "NEW"), ("not run", "")], "FAIL"),
])
def test_a_clause_fails_only_on_a_violation(kinds, expected):
    assert clause_verdict(TestVerdict(f"t{i}", outcome, kind)
                          for i, (outcome, kind) in enumerate(kinds)) == expected


def test_the_matrix_says_when_the_session_stopped():
    record = {"schema": matrix.SCHEMA, "header": {}, "summary": {}, "tests": [], "observations": [],
              "stopped": {"why": "the device is gone", "not_run": ["a", "b"]},
              "clauses": [{"id": KD_CLAUSE, "command": "AT+WSOPEN", "level": "MUST", "text": "t",
                           "known_deviation": "KD-1",
                           "verdict": clause_verdict([TestVerdict("t", "failed", "DEVICE FAULT")]), "passed": 0,
                           "failed": 1, "skipped": 0, "expected": 0, "tests": ["t"]}]}
    text = matrix.markdown(record)
    assert "**The session stopped: the device is gone** 2 test(s) did not run" in text
    assert f"| {KD_CLAUSE} | MUST | DEVICE FAULT |" in text


def test_an_unexpected_pass_is_filed_as_such_never_as_a_violation():
    label = label_of(UnexpectedPass("the file expects KD-1"), [KD_CLAUSE])
    assert (label.kind, label.clause, label.verdict_class) == (UNEXPECTED_PASS, KD_CLAUSE,
                                                               "expectation")
    assert label.heading().startswith(f"UNEXPECTED PASS of {KD_CLAUSE}")
    assert not label.is_known_deviation

# ---- which story wins, and the one record every report reads ------------------------------

def _fault(kind):
    if kind in (DeviceCrashed, PortClosed, HarnessAnomaly):
        return kind(kind.__name__)
    return kind(what=kind.__name__, sent=None, expected="", received=b"")


@pytest.mark.parametrize("better, worse", list(zip(FAULT_PRECEDENCE, FAULT_PRECEDENCE[1:])),
                         ids=lambda kind: kind.__name__)
def test_the_worse_story_wins_in_either_order(better, worse):
    first, second = _fault(better), _fault(worse)
    assert worst([second, None, first]) is first
    assert worst([first, second]) is first


def test_a_crash_outranks_every_other_story_and_nothing_is_none():
    everything = [_fault(kind) for kind in reversed(FAULT_PRECEDENCE)]
    assert isinstance(worst(everything), DeviceCrashed)
    assert worst([]) is None and worst([None, None]) is None


def test_a_story_with_no_rank_is_a_bug_not_a_silent_loss():
    with pytest.raises(TypeError, match="ValueError has no place in FAULT_PRECEDENCE"):
        worst([ValueError("x")])


def test_a_verdict_record_reads_back_as_written_and_an_old_one_reads_with_defaults():
    record = TestVerdict("tests/conformance/t.py::t", Outcome.FAILED, "KD-4", ("WSCFG.ping",),
                         "WSCFG.ping", "t", "KD-4", "call", 1.5, 10.0, "KNOWN DEVIATION KD-4")
    data = record.to_json()
    assert data["class"] == "violation" and data["outcome"] == "failed"
    assert TestVerdict.from_json(data) == record
    old = TestVerdict.from_json({"nodeid": "n", "outcome": "failed"})
    assert (old.verdict, old.shown_verdict, old.title, old.when) == ("", BROKEN, "", "call")
