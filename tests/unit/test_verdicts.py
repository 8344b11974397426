"""fixtures/verdicts.py: one classification of a failure, read by every report."""
import pytest

from esp_at.errors import (DeviceBusy, DeviceFlood, DeviceRebooted, DeviceSilent,
                           DeviceStoppedAnswering, DeviceViolation, PortClosed)
from fixtures.run_record import verdict
from results import matrix
from fixtures.uart0 import DeviceCrashed
from fixtures.verdicts import (BROKEN, DEVICE_FAULT, INTERRUPTED, NEW, UNEXPECTED_PASS,
                               HarnessAnomaly, RunInterrupted, UnexpectedPass, class_of, deviation,
                               label_of)

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
    assert verdict([(f"t{i}", outcome, kind) for i, (outcome, kind) in enumerate(kinds)]) == expected


def test_the_matrix_says_when_the_session_stopped():
    record = {"schema": matrix.SCHEMA, "header": {}, "summary": {}, "tests": [], "observations": [],
              "stopped": {"why": "the device is gone", "not_run": ["a", "b"]},
              "clauses": [{"id": KD_CLAUSE, "command": "AT+WSOPEN", "level": "MUST", "text": "t",
                           "known_deviation": "KD-1",
                           "verdict": verdict([("t", "failed", "DEVICE FAULT")]), "passed": 0,
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