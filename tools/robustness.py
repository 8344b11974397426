"""The suite under faults: each scenario of SCENARIOS is its own pytest process of the conformance
suite (or, for bad input, of `python -m servers` / `python -m sim`), checked for what issue 12
asks: no hang, the verdict class asserted, the tests after the fault pass, results complete,
nothing secret in any artifact, no process left behind.

  python -m tools.robustness [--only NAME ...] [--jobs 2] [--out reports] [--list]

A proxy scenario starts `python -m sim` (its model args), then `python -m tools.faultproxy` in
front of it with the scenario's faults, then pytest with `--at-port` on the proxy. A suite
scenario gives no --at-port: the suite starts its own model (a signal scenario then checks that
it is gone). Every scenario runs in <out>/robustness/<name>/ (D): D/stdout.txt, D/stderr.txt,
D/verdicts.jsonl, D/junit.xml, D/reports/allure-results/, D/reports/conformance-matrix.md,
D/tmp/ (pytest's basetemp), D/runner/ (the runner's own model and proxy logs: not the suite's
artifacts, so neither counted in the artifact size nor searched for the secret; the runner's
model is the device, and is given the network's password on its command line).

Measured per scenario: wall time, peak memory of the pytest process tree (ru_maxrss from
os.wait4: the largest single process of the tree), whether the tests after the fault passed,
the verdicts. Writes <out>/robustness/robustness.md and .json; exits 0 only when every scenario
met every expectation.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import urllib.parse
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fixtures.model_process import read_announcements
from fixtures.reporting import NODEID_LABEL
from fixtures.verdicts import (BROKEN, DEVICE_FAULT, FAIL, INTERRUPTED, KNOWN_DEVIATION, NOT_RUN,
                               PASS, SKIPPED)
from tools.robustness_intruder import INTRUDER_LOG_ENV, INTRUDER_MARK

ROOT = Path(__file__).resolve().parent.parent
SUITE = "tests/conformance"
MATRIX_FILE = "conformance-matrix.md"
ANNOUNCE_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
LEFTOVER_GRACE_S = 5.0          # a process of the session still there this long after exit: left
POLL_S = 0.1
RUN_MARK_ENV = "ESP_AT_ROBUSTNESS_RUN"   # in the environment of everything a scenario starts
_live: set[int] = set()         # session leaders running now (killed if the runner is stopped)
PASSWORD_ENV = "ESP_AT_WIFI_PASSWORD"
SESSION_STOPS = "the session stops"
USAGE_ERROR = 4                       # pytest.ExitCode.USAGE_ERROR
ARGPARSE_ERROR = 2
SESSION_STOP_EXIT = 2                 # pytest.ExitCode.INTERRUPTED

# ---- the scenarios, as data ------------------------------------------------------------------

WSOPEN = "tests/conformance/test_wsopen.py::"
WSCLOSE = "tests/conformance/test_wsclose.py::"
WSCFG = "tests/conformance/test_wscfg.py::"
KEEPALIVE = "tests/conformance/test_keepalive.py::"

OPENS = WSOPEN + "test_open_prints_connected_once_then_ok"       # sends AT+WSOPEN= (1 s)
QUERY = WSOPEN + "test_query_without_connection_answers_only_ok"  # sends AT+WSOPEN? only
CFG_EXAMPLE = WSCFG + "test_doc_example_is_accepted_to_the_byte"
OPENS_AGAIN = WSCLOSE + "test_the_id_opens_again_at_once"
NO_PONG = KEEPALIVE + "test_no_pong_within_timeout_aborts_the_connection"   # about 4 s
CLOSE_OK = WSCLOSE + "test_close_answers_ok_and_the_link_is_gone"

LATER = (QUERY, CFG_EXAMPLE, OPENS_AGAIN)          # after the fault: the device is back, a link opens
CFG_SET = WSCFG + "test_set_answers_ok_and_nothing_else[buffer-size-left-off]"
LATER_NO_OPEN = (QUERY, CFG_EXAMPLE, CFG_SET)      # no AT+WSOPEN=: for a fault still armed on it
WIFI_AP = ("--wifi-ap", "lab:right-pass")         # the runner's model: one network
WIFI_PASSWORD = "wrong-s3cret-7f3a"


@dataclass(frozen=True)
class When:
    """When the signal goes: `delay_s` after the `test`-th selected test (1-based) started (its
    node id on the verbose terminal) or finished (its line in the verdict log), or `delay_s`
    after the start (event "start")."""
    event: str = "start"            # "start" | "started" | "finished"
    test: int = 0
    delay_s: float = 0.0


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str                                  # what the table calls it
    device: str = "proxy"                       # proxy: model + faultproxy; model: model direct;
                                                # suite: the suite's own model; none: no pytest
    faults: tuple[str, ...] = ()                # faultproxy SPECs
    model_args: tuple[str, ...] = ()            # `python -m sim` arguments (proxy, model)
    tests: tuple[str, ...] = ()                 # node ids, run in this order
    keyword: str | None = None                  # or -k over tests/conformance
    pytest_args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()               # device "none": `python -m ...` argv; {busy} is a
                                                # port the runner holds busy
    env: tuple[tuple[str, str], ...] = ()
    exit_code: int = 1
    verdicts: tuple[tuple[str, str], ...] = ()  # node id substring -> PASS, NOT RUN or a verdict
                                                # (alternatives separated by |)
    must_pass: tuple[str, ...] = ()             # the tests after the fault: "recovered"
    signal: int | None = None
    when: When | None = None
    secret: str | None = None
    stop_line: str | None = None                # the one line a session stop prints
    error_line: str | None = None               # bad input: the one line with the error
    intruder: bool = False
    max_peak_mib: float | None = None
    max_artifacts_mib: float | None = None
    bound_s: float = 120.0                      # finished within this, or it is a hang
    expected_s: float = 20.0                    # for scheduling: longest first

    @property
    def bad_input(self) -> bool:
        return self.error_line is not None

    def expected(self) -> dict[str, str]:
        return dict(self.verdicts)


def _fault(name: str, spec: str, verdict: str, *, later=LATER, bound_s=120.0, expected_s=25.0,
           **extra) -> Scenario:
    """A fault on the first test's AT+WSOPEN= (or `spec`'s trigger), the later tests passing."""
    return Scenario(name=name, fault=spec, faults=(spec,), tests=(OPENS, *later),
                    verdicts=((OPENS, verdict), *((t, PASS) for t in later)), must_pass=later,
                    exit_code=1, bound_s=bound_s, expected_s=expected_s, **extra)


def _signal(name: str, sig: int) -> Scenario:
    tests = (QUERY, NO_PONG, CLOSE_OK)
    return Scenario(name=name, fault=f"{signal.Signals(sig).name} mid-test", device="suite",
                    tests=tests, verdicts=((QUERY, PASS), (NO_PONG, INTERRUPTED),
                                           (CLOSE_OK, NOT_RUN)),
                    signal=sig, when=When("started", 2, 1.5), exit_code=SESSION_STOP_EXIT,
                    bound_s=60.0, expected_s=15.0)


def _bad_pytest(name: str, args: tuple[str, ...], error_line: str, **extra) -> Scenario:
    return Scenario(name=name, fault="bad input: " + " ".join(args), device="suite",
                    tests=(QUERY,), pytest_args=args, verdicts=((QUERY, NOT_RUN),),
                    exit_code=USAGE_ERROR, error_line=error_line, bound_s=60.0, expected_s=5.0,
                    **extra)


def _bad_command(name: str, command: tuple[str, ...], error_line: str) -> Scenario:
    return Scenario(name=name, fault="bad input: python -m " + " ".join(command), device="none",
                    command=command, exit_code=ARGPARSE_ERROR, error_line=error_line,
                    bound_s=20.0, expected_s=3.0)


SCENARIOS: list[Scenario] = [
    _fault("reboot", "reboot@AT+WSOPEN=", DEVICE_FAULT),
    _fault("garbage", "garbage@AT+WSOPEN=", DEVICE_FAULT),
    _fault("lone-prompt", "prompt@AT+WSOPEN=", DEVICE_FAULT),
    _fault("header-no-payload", "header@AT+WSOPEN=", DEVICE_FAULT),
    _fault("stall-60s", "stall:60@AT+WSOPEN=", DEVICE_FAULT, bound_s=240.0, expected_s=100.0),
    Scenario(name="gone", fault="gone@AT+WSOPEN=", faults=("gone@AT+WSOPEN=",),
             tests=(OPENS, *LATER),
             verdicts=((OPENS, f"{DEVICE_FAULT}|{BROKEN}"), *((t, NOT_RUN) for t in LATER)),
             exit_code=SESSION_STOP_EXIT, stop_line=SESSION_STOPS, bound_s=150.0,
             expected_s=60.0),
    _fault("port-drop-5s", "drop:5@AT+WSOPEN=", BROKEN, bound_s=150.0, expected_s=30.0),
    _fault("flood-32MB", "flood:33554432@AT+WSOPEN=", DEVICE_FAULT, max_peak_mib=200.0,
           max_artifacts_mib=10.0, bound_s=240.0, expected_s=60.0),
    Scenario(name="busy-restore", fault="busy:2@AT+WSOPEN?", faults=("busy:2@AT+WSOPEN?",),
             tests=(OPENS, *LATER), verdicts=tuple((t, PASS) for t in (OPENS, *LATER)),
             must_pass=LATER, exit_code=0),
    _fault("busy-test", "busy:50@AT+WSOPEN=", DEVICE_FAULT, later=LATER_NO_OPEN),
    _signal("sigint", signal.SIGINT),
    _signal("sigterm", signal.SIGTERM),
    Scenario(name="wifi-join-fails", fault="Wi-Fi join with a wrong password", device="model",
             model_args=WIFI_AP, tests=(QUERY, CFG_EXAMPLE),
             pytest_args=("--wifi-ssid", "lab"), env=((PASSWORD_ENV, WIFI_PASSWORD),),
             verdicts=((QUERY, NOT_RUN), (CFG_EXAMPLE, NOT_RUN)), exit_code=SESSION_STOP_EXIT,
             stop_line=SESSION_STOPS, secret=WIFI_PASSWORD, bound_s=120.0, expected_s=40.0),
    # The control: the password from the environment does reach the device, and is in no
    # artifact of a passing run either.
    Scenario(name="wifi-join-ok", fault="Wi-Fi join, password from the environment",
             device="model", model_args=WIFI_AP, tests=(QUERY, CFG_EXAMPLE),
             pytest_args=("--wifi-ssid", "lab"), env=((PASSWORD_ENV, "right-pass"),),
             verdicts=((QUERY, PASS), (CFG_EXAMPLE, PASS)), exit_code=0, secret="right-pass",
             bound_s=90.0, expected_s=10.0),
    Scenario(name="intruder", fault="a stranger on the endpoint", device="suite",
             tests=(NO_PONG, QUERY, CFG_EXAMPLE),
             pytest_args=("-p", "tools.robustness_intruder"),
             verdicts=((NO_PONG, BROKEN), (QUERY, PASS), (CFG_EXAMPLE, PASS)),
             must_pass=(QUERY, CFG_EXAMPLE), intruder=True, exit_code=1, bound_s=90.0,
             expected_s=15.0),
    _bad_pytest("at-port-nobody", ("--at-port", "socket://127.0.0.1:1"), "127.0.0.1:1"),
    _bad_pytest("at-port-no-such-device", ("--at-port", "/dev/ttyNOPE"), "/dev/ttyNOPE"),
    _bad_pytest("at-port-bad-url", ("--at-port", "foo://x"), "foo://x"),
    _bad_pytest("at-port-bad-port", ("--at-port", "socket://127.0.0.1:99999"), "99999"),
    _bad_pytest("ws-host-not-here", ("--ws-host", "10.255.255.1"), "10.255.255.1"),
    _bad_pytest("wifi-password-on-command-line",
                ("--wifi-ssid", "lab", "--wifi-password", "x"), PASSWORD_ENV),
    _bad_command("servers-port-busy", ("servers", "--port", "{busy}"), "{busy}"),
    _bad_command("sim-port-busy", ("sim", "--listen", "127.0.0.1:{busy}"), "{busy}"),
]
BY_NAME = {s.name: s for s in SCENARIOS}


# ---- reading what a run left ------------------------------------------------------------------

def read_verdict_log(path: Path) -> list[dict]:
    """One record per line; a torn last line (the process was killed mid-write) is left out."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


@dataclass(frozen=True)
class Case:
    """A JUnit testcase or an Allure result: where it is from, its name, its status (passed,
    failed, broken/error, skipped)."""
    module: str          # dotted: tests.conformance.test_wsopen (JUnit: may end in a class)
    name: str            # test_x or test_x[param]
    status: str


def read_junit(path: Path) -> list[Case]:
    """Raises ValueError when the file is missing or does not parse."""
    if not path.exists():
        raise ValueError("junit.xml missing")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"junit.xml does not parse: {exc}") from None
    cases = []
    for case in root.iter("testcase"):
        status = "passed"
        for child, meaning in (("failure", "failed"), ("error", "broken"), ("skipped", "skipped")):
            if case.find(child) is not None:
                status = meaning
                break
        cases.append(Case(case.get("classname", ""), case.get("name", ""), status))
    return cases


def read_allure(results_dir: Path) -> list[Case]:
    cases = []
    for path in sorted(results_dir.glob("*-result.json")) if results_dir.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            cases.append(Case("", path.name, "unreadable"))
            continue
        nodeid = next((label.get("value", "") for label in data.get("labels", [])
                       if label.get("name") == NODEID_LABEL), "")
        if nodeid:                      # the suite's tests: their names are titles in words
            module, name = _split(nodeid)
        else:
            module, name = data.get("fullName", "").partition("#")[0], data.get("name", "")
        cases.append(Case(module, name, data.get("status", "")))
    return cases


def _split(nodeid: str) -> tuple[str, str]:
    """tests/conformance/test_x.py::test_y[1] -> ("tests.conformance.test_x", "test_y[1]")."""
    path, _, name = nodeid.partition("::")
    return path.removesuffix(".py").replace("/", "."), name.rpartition("::")[2]


def cases_of(key: str, cases: list[Case]) -> list[Case]:
    """The cases of the test(s) `key` names (a node id: a parametrized test's cases all match)."""
    module, name = _split(key)
    base = name.partition("[")[0]
    found = []
    for case in cases:
        if not (case.module == module or case.module.startswith(module + ".")):
            continue
        if case.name == name or ("[" not in name and case.name.partition("[")[0] == base):
            found.append(case)
    return found


def records_of(key: str, records: list[dict]) -> list[dict]:
    return [r for r in records if key in r.get("nodeid", "")]


def seen_verdict(record: dict) -> str:
    if record.get("outcome") == "passed":
        return PASS
    if record.get("outcome") == "skipped":
        return SKIPPED
    return record.get("verdict") or "FAILED (no verdict)"


# The Allure/JUnit status each verdict must have (one classification in every report).
ALLURE_STATUS = {PASS: {"passed"}, DEVICE_FAULT: {"failed"}, BROKEN: {"broken"},
                 INTERRUPTED: {"failed", "broken", "skipped", "unknown"}}
JUNIT_STATUS = {PASS: {"passed"}, DEVICE_FAULT: {"failed"}, BROKEN: {"broken", "failed"},
                INTERRUPTED: {"failed", "broken", "skipped"}}


def expected_status(verdict: str, table: dict[str, set[str]]) -> set[str]:
    if verdict in table:
        return table[verdict]
    return {"failed"}                    # NEW, KD-n: a violation


def check_verdicts(scenario: Scenario, records: list[dict]) -> list[str]:
    reasons = []
    for key, want in scenario.verdicts:
        mine = records_of(key, records)
        short = key.rpartition("::")[2]
        if want == NOT_RUN:
            if mine:
                reasons.append(f"{short} ran ({seen_verdict(mine[0])}), expected not run")
            continue
        if not mine:
            reasons.append(f"{short}: no verdict log line (expected {want})")
            continue
        allowed = want.split("|")
        got = [seen_verdict(r) for r in mine]
        if not all(g in allowed for g in got):
            reasons.append(f"{short}: {', '.join(got)}, expected {want}")
    return reasons


def check_reports(scenario: Scenario, records: list[dict], junit: list[Case] | str,
                  allure: list[Case]) -> list[str]:
    """JUnit and Allure hold each test that ran once, with the status of its verdict."""
    reasons = []
    for key, want in scenario.verdicts:
        mine = records_of(key, records)
        if not mine and want == NOT_RUN:
            continue
        verdicts = [seen_verdict(r) for r in mine] or want.split("|")[:1]
        if isinstance(junit, list):
            reasons += _check_cases("junit.xml", key, want, verdicts, len(mine), junit,
                                    JUNIT_STATUS)
        reasons += _check_cases("Allure", key, want, verdicts, len(mine), allure, ALLURE_STATUS)
    if isinstance(junit, str):
        reasons.append(junit)
    return reasons


def _check_cases(report: str, key: str, want: str, verdicts: list[str], count: int,
                 cases: list[Case], statuses: dict[str, set[str]]) -> list[str]:
    short = key.rpartition("::")[2]
    mine = cases_of(key, cases)
    if not mine:
        return [f"{short}: not in {report}"]
    reasons = []
    if count and len(mine) != count:
        reasons.append(f"{short}: {len(mine)} entries in {report} for {count} test(s)")
    if want != NOT_RUN:
        allowed = set().union(*(expected_status(v, statuses) for v in verdicts))
        bad = [c.status for c in mine if c.status not in allowed]
        if bad:
            reasons.append(f"{short}: {report} says {bad[0]} for {verdicts[0]}")
    return reasons


def matrix_rows(text: str) -> dict[str, str]:
    """clause -> its verdict column, from conformance-matrix.md."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] not in ("clause", "") and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = cells[2]
    return rows


def check_matrix(records: list[dict], matrix: Path) -> list[str]:
    """The matrix exists once a test ran; a clause whose only test was a device fault, a harness
    fault or interrupted is not a known deviation (nor, unless a device fault, a FAIL)."""
    if not records:
        return []
    if not matrix.exists():
        return [f"no {MATRIX_FILE}"]
    rows = matrix_rows(matrix.read_text(errors="replace"))
    tests_of: dict[str, set[str]] = {}
    for record in records:
        for clause in record.get("clauses", []):
            tests_of.setdefault(clause, set()).add(record["nodeid"])
    reasons = []
    for record in records:
        verdict = record.get("verdict", "")
        if verdict not in (DEVICE_FAULT, BROKEN, INTERRUPTED):
            continue
        for clause in record.get("clauses", []):
            if len(tests_of[clause]) != 1 or clause not in rows:
                continue
            row = rows[clause]
            if row.startswith(KNOWN_DEVIATION) or (verdict != DEVICE_FAULT and row == FAIL):
                reasons.append(f"matrix: {clause} reads {row!r} for a {verdict}")
    return reasons


def session_processes(sid: int, ps_output: str | None = None, mark: str | None = None
                      ) -> list[tuple[int, str]]:
    """(pid, command) of every process whose session id is `sid` (`ps -eo pid=,sid=,args=`),
    and of every process whose environment carries `mark` (RUN_MARK_ENV): the suite starts its
    model in a session of its own, so the session id alone would miss it."""
    if ps_output is None:
        ps_output = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True,
                                   text=True, check=False).stdout
    found = []
    for line in ps_output.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit() and (
                int(parts[1]) == sid or (mark and carries_mark(int(parts[0]), mark))):
            found.append((int(parts[0]), parts[2] if len(parts) > 2 else ""))
    return found


def carries_mark(pid: int, mark: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{RUN_MARK_ENV}={mark}".encode() in environ.split(b"\0")


def kill_session(sid: int, mark: str | None = None) -> list[tuple[int, str]]:
    """SIGKILL every process of the session (and every marked one); returns those it found."""
    found = session_processes(sid, mark=mark)
    for pid, _ in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found


def leftovers(sid: int, grace_s: float = LEFTOVER_GRACE_S, mark: str | None = None
              ) -> list[tuple[int, str]]:
    """Processes of the session (or marked) still there `grace_s` after its leader exited (then
    killed)."""
    deadline = time.monotonic() + grace_s
    while True:
        found = session_processes(sid, mark=mark)
        if not found:
            return []
        if time.monotonic() >= deadline:
            return kill_session(sid, mark)
        time.sleep(0.2)


def secret_forms(secret: str) -> dict[str, bytes]:
    """The secret as it could appear in an artifact: plain, URL-encoded, hex, and base64 at each
    of the three alignments it can have inside a larger base64 text."""
    raw = secret.encode()
    forms = {"plain": raw, "url-encoded": urllib.parse.quote(secret, safe="").encode(),
             "url-encoded (+)": urllib.parse.quote_plus(secret).encode(),
             "hex": binascii.hexlify(raw)}
    for offset in range(3):
        data = b"\0" * offset + raw
        start = 3 if offset else 0
        end = start + (len(data) - start) // 3 * 3
        if end - start >= 6:
            encoded = base64.b64encode(data[start:end])
            forms[f"base64/{offset}"] = encoded
            forms[f"base64url/{offset}"] = encoded.replace(b"+", b"-").replace(b"/", b"_")
    return {name: form for name, form in dict(forms).items() if form}


def find_secret(root: Path, secret: str, skip: tuple[Path, ...] = ()) -> list[str]:
    """`file: form` for every file under `root` that holds the secret in any of its forms."""
    forms = secret_forms(secret)
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if any(path == s or s in path.parents for s in skip):
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        lowered = data.lower()
        for name, form in forms.items():
            if form in data or (name == "hex" and form in lowered):
                hits.append(f"{path.relative_to(root)}: {name}")
                break
    return hits


def find_bytes(root: Path, needle: bytes, skip: tuple[Path, ...] = ()) -> list[str]:
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if any(path == s or s in path.parents for s in skip):
            continue
        try:
            if needle in path.read_bytes():
                hits.append(str(path.relative_to(root)))
        except OSError:
            continue
    return hits


def size_mib(root: Path, skip: tuple[Path, ...] = ()) -> float:
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not any(path == s or s in path.parents for s in skip):
            total += path.stat().st_size
    return total / (1 << 20)


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def check_bad_input(scenario: Scenario, exit_code: int | None, output: str,
                    error_line: str, records: list[dict]) -> list[str]:
    reasons = []
    if "Traceback" in output:
        reasons.append("a Traceback in the output")
    carrying = lines_with(output, error_line)
    if len(carrying) != 1:
        reasons.append(f"{len(carrying)} lines carry {error_line!r}, expected exactly one")
    if records:
        reasons.append(f"{len(records)} test(s) ran before the refusal")
    return reasons


def check_not_run_listed(scenario: Scenario, output: str) -> list[str]:
    """After a session stop, each test that did not run is named on a `not run` line."""
    reasons = []
    for key, want in scenario.verdicts:
        if want != NOT_RUN:
            continue
        name = key.rpartition("::")[2]
        if not any(name in line and "not run" in line.lower() for line in output.splitlines()):
            reasons.append(f"{name} not listed as 'not run'")
    return reasons


def check_intruder(log: Path) -> list[str]:
    """The guessed path got 404 and the second connection to the real one 409, every time."""
    attempts = read_verdict_log(log)
    if not attempts:
        return ["the intruder made no attempt (is -p tools.robustness_intruder loaded?)"]
    reasons = []
    for kind, status in (("guessed", 404), ("real", 409)):
        mine = [a for a in attempts if a.get("kind") == kind]
        if not mine:
            reasons.append(f"the intruder made no {kind}-path attempt")
        bad = [a for a in mine if a.get("status") != status]
        if bad:
            reasons.append(f"intruder on the {kind} path {bad[0].get('path')}: got "
                           f"{bad[0].get('status') or bad[0].get('error')}, expected {status}")
    return reasons


# ---- running one scenario ---------------------------------------------------------------------

@dataclass
class Result:
    name: str
    fault: str
    ok: bool = False
    reasons: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    exit_code: int | None = None
    hang: bool = False
    peak_mib: float | None = None
    artifacts_mib: float | None = None
    recovered: str = "-"            # yes / no / - (nothing to recover to)
    verdicts: dict[str, str] = field(default_factory=dict)   # test name -> verdict seen
    leftover: list[str] = field(default_factory=list)
    signal_sent_s: float | None = None
    dir: str = ""

    @property
    def verdict_summary(self) -> str:
        if not self.verdicts:
            return f"exit {self.exit_code}" if self.exit_code is not None else ""
        faults = [v for v in self.verdicts.values() if v not in (PASS, NOT_RUN)]
        counts = [f"{n} {label}" for label, n in (
            ("passed", sum(v == PASS for v in self.verdicts.values())),
            ("not run", sum(v == NOT_RUN for v in self.verdicts.values()))) if n]
        return ", ".join(list(dict.fromkeys(faults)) + counts)


class Announced:
    """A helper process (the runner's model or proxy) that prints its URL on one line; its
    later stdout and its stderr go to a log."""

    def __init__(self, argv: list[str], prefix: str, log: Path, env: dict[str, str]) -> None:
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "ab")
        self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=self._log, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        _live.add(self.process.pid)
        self.url = self._read(prefix)
        threading.Thread(target=self._drain, daemon=True).start()

    def _read(self, prefix: str) -> str:
        found, seen = read_announcements(self.process.stdout, (prefix,), ANNOUNCE_TIMEOUT_S)
        if prefix in found:
            return found[prefix]
        self.stop()
        tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"{' '.join(self.process.args[1:4])} did not print {prefix!r} "
                           f"(exit {self.process.poll()}): {tail[0] if tail else seen!r}")

    def _drain(self) -> None:
        try:
            for chunk in iter(lambda: self.process.stdout.read1(4096), b""):
                self._log.write(chunk)
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT_S)
        _live.discard(self.process.pid)
        self._log.close()


def pytest_argv(scenario: Scenario, d: Path, at_url: str | None) -> list[str]:
    argv = [sys.executable, "-m", "pytest"]
    argv += list(scenario.tests) if scenario.tests else [SUITE]
    if scenario.keyword:
        argv += ["-k", scenario.keyword]
    argv += ["-v", "-p", "no:cacheprovider", "--basetemp", str(d / "tmp"),
             "--verdict-log", str(d / "verdicts.jsonl"), "--junitxml", str(d / "junit.xml"),
             "--alluredir", str(d / "reports" / "allure-results")]
    if importlib.util.find_spec("pytest_randomly") is not None:
        argv += ["-p", "no:randomly"]
    if at_url is not None:
        argv += ["--at-port", at_url]
    return argv + list(scenario.pytest_args)


@dataclass
class Session:
    exit_code: int | None
    wall_s: float
    peak_kib: int
    hang: bool
    leftover: list[tuple[int, str]]
    signal_sent_s: float | None


def signal_due(scenario: Scenario, started: float, now: float, stdout: Path, log: Path,
               since: dict) -> bool:
    """True once the scenario's signal should go (`since` remembers when its event was seen)."""
    when = scenario.when or When()
    if "at" not in since:
        if when.event == "start":
            since["at"] = started
        elif when.event == "started":
            nodeid = scenario.tests[when.test - 1]
            if stdout.exists() and nodeid in stdout.read_text(errors="replace"):
                since["at"] = now
        elif when.event == "finished":
            if len(read_verdict_log(log)) >= when.test:
                since["at"] = now
        else:
            raise ValueError(f"unknown signal event {when.event!r}")
    return "at" in since and now >= since["at"] + when.delay_s


def _as_from_a_terminal() -> None:
    """In the child, before exec: SIGINT as a terminal gives it. A shell that starts a job in
    the background (make under CI, `cmd &`) ignores SIGINT, the child inherits that, and Python
    then installs no KeyboardInterrupt handler: a SIGINT scenario would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_process(argv: list[str], env: dict[str, str], d: Path, scenario: Scenario) -> Session:
    """Run argv in a session of its own with stdout/stderr in D; signal it as the scenario says;
    reap it with wait4 (peak memory); kill the session on a hang; then look for leftovers."""
    stdout, stderr = d / "stdout.txt", d / "stderr.txt"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   preexec_fn=_as_from_a_terminal)
    _live.add(process.pid)
    started = time.monotonic()
    hang, sent_at, since = False, None, {}
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        now = time.monotonic()
        if now - started > scenario.bound_s:
            hang = True
            kill_session(process.pid, env.get(RUN_MARK_ENV))
            pid, status, usage = os.wait4(process.pid, 0)
            break
        if scenario.signal is not None and sent_at is None and signal_due(
                scenario, started, now, stdout, d / "verdicts.jsonl", since):
            os.kill(process.pid, scenario.signal)
            sent_at = now - started
        time.sleep(POLL_S)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)   # reaped here, not by Popen
    left = leftovers(process.pid, mark=env.get(RUN_MARK_ENV))
    _live.discard(process.pid)
    return Session(None if hang else process.returncode, round(wall, 1), usage.ru_maxrss, hang,
                   left, None if sent_at is None else round(sent_at, 1))


def busy_port() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def scenario_env(scenario: Scenario, d: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env[RUN_MARK_ENV] = f"{scenario.name}-{uuid.uuid4().hex}"   # inherited by all it starts
    if scenario.intruder:
        env[INTRUDER_LOG_ENV] = str(d / "intruder.jsonl")
    env.update(dict(scenario.env))
    return env


def execute(scenario: Scenario, out: Path) -> Result:
    try:
        return _execute(scenario, out)
    except Exception as exc:                     # the runner's own fault: said, not a crash
        return Result(scenario.name, scenario.fault, dir=str(out / scenario.name),
                      reasons=[f"runner error: {type(exc).__name__}: {exc}"])


def _execute(scenario: Scenario, out: Path) -> Result:
    d = out / scenario.name
    shutil.rmtree(d, ignore_errors=True)
    (d / "reports").mkdir(parents=True)
    result = Result(scenario.name, scenario.fault, dir=str(d))
    helpers: list[Announced] = []
    held: socket.socket | None = None
    env = scenario_env(scenario, d)
    helper_env = {k: v for k, v in env.items() if k not in (PASSWORD_ENV, RUN_MARK_ENV)}
    try:
        at_url = None
        if scenario.device in ("proxy", "model"):
            model = Announced([sys.executable, "-m", "sim", *scenario.model_args], "AT port: ",
                              d / "runner" / "model.log", helper_env)
            helpers.append(model)
            at_url = model.url
        if scenario.device == "proxy":
            argv = [sys.executable, "-m", "tools.faultproxy", "--target", at_url]
            for spec in scenario.faults:
                argv += ["--fault", spec]
            proxy = Announced(argv, "proxy port: ", d / "runner" / "proxy.log", helper_env)
            helpers.append(proxy)
            at_url = proxy.url
        error_line = scenario.error_line
        if scenario.device == "none":
            held = busy_port()
            port = str(held.getsockname()[1])
            argv = [sys.executable, "-m", *(a.replace("{busy}", port) for a in scenario.command)]
            error_line = (error_line or "").replace("{busy}", port)
        else:
            argv = pytest_argv(scenario, d, at_url)
        (d / "runner").mkdir(exist_ok=True)
        (d / "runner" / "argv.txt").write_text(" ".join(argv) + "\n")
        session = run_process(argv, env, d, scenario)
    except RuntimeError as exc:
        result.reasons.append(str(exc))
        return result
    finally:
        for helper in reversed(helpers):
            helper.stop()
        if held is not None:
            held.close()
    result.wall_s, result.exit_code, result.hang = session.wall_s, session.exit_code, session.hang
    result.peak_mib = round(session.peak_kib / 1024, 1)
    result.signal_sent_s = session.signal_sent_s
    result.leftover = [f"{pid} {args[:120]}" for pid, args in session.leftover]
    result.reasons = judge(scenario, d, session, error_line)
    records = read_verdict_log(d / "verdicts.jsonl")
    result.verdicts = {}
    for key, want in scenario.verdicts:
        mine = records_of(key, records)
        result.verdicts[key.rpartition("::")[2]] = seen_verdict(mine[0]) if mine else NOT_RUN
    if scenario.must_pass:
        result.recovered = "yes" if all(
            records_of(k, records) and all(seen_verdict(r) == PASS for r in records_of(k, records))
            for k in scenario.must_pass) else "no"
    result.artifacts_mib = round(size_mib(d, skip=(d / "tmp", d / "runner")), 2)
    result.ok = not result.reasons
    return result


def judge(scenario: Scenario, d: Path, session: Session, error_line: str | None) -> list[str]:
    """Every expectation the scenario has, against what the run left in D."""
    reasons = []
    if session.hang:
        reasons.append(f"HANG: not finished within {scenario.bound_s:g} s (session killed)")
    elif session.exit_code != scenario.exit_code:
        reasons.append(f"exit code {session.exit_code}, expected {scenario.exit_code}")
    if session.leftover:
        reasons.append(f"{len(session.leftover)} process(es) of the session left 5 s after exit "
                       f"(killed): {'; '.join(a[:60] for _, a in session.leftover)}")
    if scenario.signal is not None and session.signal_sent_s is None:
        reasons.append("the signal was never sent (its moment never came)")
    output = ((d / "stdout.txt").read_text(errors="replace") + "\n"
              + (d / "stderr.txt").read_text(errors="replace"))
    records = read_verdict_log(d / "verdicts.jsonl")
    if scenario.device == "proxy":
        proxy_log = (d / "runner" / "proxy.log")
        fired = proxy_log.read_text(errors="replace") if proxy_log.exists() else ""
        for spec in scenario.faults:
            if f"fired {spec} " not in fired:
                reasons.append(f"{spec} never fired: no selected test sent its trigger")
    if scenario.bad_input:
        reasons += check_bad_input(scenario, session.exit_code, output, error_line or "", records)
    if scenario.device != "none" and not scenario.bad_input:
        reasons += check_verdicts(scenario, records)
        try:
            junit: list[Case] | str = read_junit(d / "junit.xml")
        except ValueError as exc:
            junit = str(exc)
        allure = read_allure(d / "reports" / "allure-results")
        reasons += check_reports(scenario, records, junit, allure)
        reasons += check_matrix(records, d / "reports" / MATRIX_FILE)
    if scenario.stop_line is not None:
        stops = lines_with(output, scenario.stop_line)
        if len(stops) != 1:
            reasons.append(f"{len(stops)} lines say {scenario.stop_line!r}, expected one")
        reasons += check_not_run_listed(scenario, output)
    if scenario.secret is not None:
        hits = find_secret(d, scenario.secret, skip=(d / "runner",))   # the runner's own model
        if hits:
            reasons.append(f"the secret is in {len(hits)} file(s): {', '.join(hits[:5])}")
    if scenario.intruder:
        reasons += check_intruder(d / "intruder.jsonl")
        hits = find_bytes(d, INTRUDER_MARK.encode(), skip=(d / "intruder.jsonl", d / "runner"))
        if hits:
            reasons.append(f"the stranger's frames are in {', '.join(hits[:3])}")
    peak = session.peak_kib / 1024
    if scenario.max_peak_mib is not None and peak > scenario.max_peak_mib:
        reasons.append(f"peak memory {peak:.0f} MiB > {scenario.max_peak_mib:g} MiB")
    if scenario.max_artifacts_mib is not None:
        size = size_mib(d, skip=(d / "tmp", d / "runner"))
        if size > scenario.max_artifacts_mib:
            reasons.append(f"artifacts {size:.1f} MiB > {scenario.max_artifacts_mib:g} MiB")
    return reasons


# ---- the report --------------------------------------------------------------------------------

def table(results: list[Result]) -> str:
    lines = ["| scenario | fault | time (s) | exit | verdict(s) | recovered | peak MiB | result |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        peak = "" if r.peak_mib is None else f"{r.peak_mib:g}"
        mark = "pass" if r.ok else "FAIL: " + "; ".join(r.reasons)
        lines.append(f"| {r.name} | {r.fault.replace('|', '/')} | {r.wall_s:g} | "
                     f"{'' if r.exit_code is None else r.exit_code}{' (hang)' if r.hang else ''} | "
                     f"{r.verdict_summary.replace('|', '/')} | {r.recovered} | {peak} | "
                     f"{mark.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def report_markdown(results: list[Result], wall_s: float) -> str:
    good = sum(r.ok for r in results)
    return (f"# Robustness run\n\n- scenarios: {len(results)}; met every expectation: **{good}**; "
            f"failed: {len(results) - good}\n- wall time: {wall_s:.0f} s\n\n" + table(results))


def _stop_runner(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.robustness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME",
                        help="these scenarios only (--list names them)")
    parser.add_argument("--jobs", type=int, default=2, help="scenarios at once (default 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="where to write")
    parser.add_argument("--list", action="store_true", help="print the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:32} {s.device:6} {s.fault}")
        return 0
    unknown = [n for n in args.only if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown} (--list names them)")
    chosen = [BY_NAME[n] for n in args.only] if args.only else list(SCENARIOS)
    chosen.sort(key=lambda s: -s.expected_s)                 # longest first
    out = args.out.resolve() / "robustness"
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: list[Result] = []
    signal.signal(signal.SIGTERM, _stop_runner)
    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        futures = {pool.submit(execute, s, out): s for s in chosen}
        for done, future in enumerate(as_completed(futures), 1):
            result = future.result()
            results.append(result)
            print(f"[{done:2}/{len(chosen)}] {'ok  ' if result.ok else 'FAIL'} {result.name:30} "
                  f"{result.wall_s:6.1f} s  {result.verdict_summary}"
                  + ("" if result.ok else "\n        " + "\n        ".join(result.reasons)),
                  flush=True)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        for sid in list(_live):
            kill_session(sid)
        print("python -m tools.robustness: stopped; the running scenarios were killed",
              file=sys.stderr)
        return 130
    pool.shutdown()
    order = {s.name: i for i, s in enumerate(SCENARIOS)}
    results.sort(key=lambda r: order[r.name])
    wall_s = time.monotonic() - started
    report = report_markdown(results, wall_s)
    (out / "robustness.md").write_text(report)
    (out / "robustness.json").write_text(json.dumps(
        {"wall_s": round(wall_s, 1), "results": [asdict(r) | {"verdict_summary": r.verdict_summary}
                                                 for r in results]}, indent=2))
    print()
    print(table(results))
    print(f"wrote {out / 'robustness.md'} and {out / 'robustness.json'}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
