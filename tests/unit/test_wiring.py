"""The suite's wiring, end to end: the clause map, --at-port against a device someone else
started, known deviations told apart from new failures, and no silent pass on zero tests."""
import json
import os
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from esp_rfc2217_server.redirector import Redirector

from esp_at.serial_port import open_at_port

import spec
from fixtures.model_process import ModelProcess
from spec import coverage

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def run_suite(*args: str, timeout: float = 100) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_every_clause_has_a_conformance_test():
    mapping = coverage.tests_by_clause()
    untested = [clause for clause in spec.load().clauses if not mapping.get(clause)]
    assert not untested, f"clauses with no conformance test: {untested}"


@pytest.mark.parametrize("pty", [False, True], ids=["socket", "pty"])
def test_at_port_runs_the_suite_against_an_independently_started_device(tmp_path, pty):
    model = ModelProcess(log_path=tmp_path / "model.log", pty=pty)
    url = model.start()
    try:
        result = run_suite("tests/conformance/test_wsopen.py", "--at-port", url,
                           "--ws-host", "127.0.0.1", "-k", "query or connected", "-q")
    finally:
        model.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


class LoopbackRfc2217Bridge:
    """esptool's RFC 2217 redirector (what esp_rfc2217_server runs beside a board in a lab),
    bound to loopback only, in front of a model's socket:// port."""

    def __init__(self, device_url: str) -> None:
        self.serial = open_at_port(device_url)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"rfc2217://127.0.0.1:{self.listener.getsockname()[1]}?ign_set_control"
        self.connection = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # One client at a time, the next once it left: as esp_rfc2217_server's loop does (the
        # suite's start-up check connects once before the AT client does).
        while True:
            try:
                self.connection, _ = self.listener.accept()
            except OSError:
                return
            try:
                Redirector(self.serial, self.connection).shortcircuit()
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        if self.connection is not None:
            self.connection.shutdown(socket.SHUT_RDWR)   # ends the redirector's copy loops
        self._thread.join(3)                      # its threads stop before the port they poll goes
        if self.connection is not None:
            self.connection.close()
        self.serial.close()


def test_at_port_over_rfc2217(tmp_path):
    model = ModelProcess(log_path=tmp_path / "model.log")
    bridge = LoopbackRfc2217Bridge(model.start())
    try:
        result = run_suite("tests/conformance/test_wssend.py", "--at-port", bridge.url,
                           "-k", "prompt_flow or all-bytes or masked", "-q")
    finally:
        bridge.close()
        model.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_known_deviation_is_reported_as_such(tmp_path):
    # The model with shipping firmware's KD-1 refuses timeout_ms 0: the seed's range test fails,
    # and the report must say it is a known deviation, not a new failure.
    result = run_suite("tests/conformance/test_wsopen.py", "--model-defect", "KD-1",
                       "-k", "parameter_range and timeout_ms", "--alluredir",
                       str(tmp_path / "allure"), "--junitxml", str(tmp_path / "junit.xml"))
    assert result.returncode == 1, result.stdout[-3000:]
    assert "1 failure(s) are KNOWN DEVIATIONS" in result.stdout, result.stdout[-3000:]
    assert "KNOWN DEVIATION KD-1" in result.stdout
    assert "are NEW" not in result.stdout
    matrix = (tmp_path / "conformance-matrix.md").read_text()
    assert "| WSOPEN.timeout_ms.range | MUST | KNOWN DEVIATION |" in matrix
    categories = (tmp_path / "allure" / "categories.json").read_text()
    assert "Known deviations" in categories


@pytest.mark.parametrize("defect,filed_as", [
    ("teardown-blocks", "KNOWN DEVIATION KD-2 of WSOPEN.timeout_ms.effect"),
    ("open-timeout-ignored", "NEW FAILURE of WSOPEN.timeout_ms.effect"),
])
def test_a_failure_is_filed_under_a_deviation_only_when_it_is_that_deviation(tmp_path, defect,
                                                                             filed_as):
    """Both defects fail the same KD-2 test; only KD-2's own signature (ERROR when the library's
    10 s attempt ends) is filed as KD-2, the other (ERROR after the default 15 s) is new."""
    log = tmp_path / "verdicts.jsonl"
    result = run_suite("tests/conformance/test_wsopen.py", "--model-defect", defect,
                       "-k", "timeout_ms_bounds_the_wait", "--verdict-log", str(log))
    assert result.returncode == 1, result.stdout[-3000:]
    assert filed_as in result.stdout, result.stdout[-3000:]
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["outcome"] == "failed" and record["failed_clause"] == "WSOPEN.timeout_ms.effect"
    assert record["verdict"] == ("KD-2" if "KD-2" in filed_as else "NEW")


def test_a_test_with_an_ambiguous_label_is_refused_at_collection():
    result = run_suite("tests/unit/probes/probe_ambiguous.py", "-q")
    assert result.returncode == 4, result.stdout[-3000:]
    assert "WSOPEN.state.closing has a known deviation" in result.stdout + result.stderr


def test_model_defects_are_checked_before_the_run():
    unknown = run_suite("tests/conformance", "--model-defect", "no-such-defect", "-q")
    assert unknown.returncode == 4 and "no-such-defect" in unknown.stdout + unknown.stderr
    on_a_board = run_suite("tests/conformance", "--model-defect", "KD-1", "--at-port",
                           "socket://127.0.0.1:9", "-q")
    assert on_a_board.returncode == 4 and "--at-port" in on_a_board.stdout + on_a_board.stderr


def test_no_tests_is_not_a_pass():
    result = run_suite("tests/conformance", "-k", "no_such_test_anywhere", "-q")
    assert result.returncode == 5


def test_a_dead_device_is_recovered_and_the_run_goes_on():
    result = run_suite("tests/unit/probes/probe_recovery.py", "-q")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout


def run_suite_with_env(*args: str, env: dict, timeout: float = 100
                       ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **env))


@pytest.mark.parametrize("given", ["env", "file"])
def test_wifi_password_never_reaches_reports(tmp_path, given):
    secret = "s3cret-Pa55word"
    how = ["--wifi-password-file", str(tmp_path / "pw")] if given == "file" else []
    (tmp_path / "pw").write_text(secret + "\n")
    result = run_suite_with_env("tests/unit/probes/probe_wifi.py", "--wifi-ssid", "lab-net", *how,
                                "--alluredir", str(tmp_path / "allure"),
                                "--junitxml", str(tmp_path / "junit.xml"),
                                env={"ESP_AT_WIFI_PASSWORD": secret} if given == "env" else {})
    (tmp_path / "pw").unlink()
    assert result.returncode == 1, result.stdout[-3000:]
    assert "lab-net" in result.stdout             # the join happened and the query shows it
    first = next(case for case in ET.parse(tmp_path / "junit.xml").iter("testcase")
                 if case.get("name") == "test_fails_after_join")
    assert "lab-net" in ET.tostring(first, encoding="unicode"), \
        "the session's start did not join Wi-Fi: only the reset of the second test did"
    assert secret not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"the password leaked into {path}"


def test_a_password_on_the_command_line_is_refused_in_one_line():
    result = run_suite("tests/conformance", "--wifi-ssid", "lab", "--wifi-password", "x")
    assert result.returncode == 4
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "wifi-password" in line]
    assert len(lines) == 1 and "ESP_AT_WIFI_PASSWORD" in lines[0], result.stderr


def test_pytest_embedded_options_are_kept():
    help_text = run_suite("--help").stdout
    assert "--embedded-services" in help_text and "--at-port" in help_text
