"""The robustness run's judge: what a scenario's run left in its directory D (the verdict log,
JUnit, Allure results, the conformance matrix, the output, the proxy's log, the intruder's log,
every file for a secret) against every expectation the scenario has; each unmet one is a reason."""
from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from fixtures.reporting import NODEID_LABEL
from fixtures.verdicts import (BROKEN, DEVICE_FAULT, FAIL, INTERRUPTED, KNOWN_DEVIATION,
                               NO_VERDICT_KINDS, NOT_RUN, PASS, SKIPPED, Outcome, TestVerdict)
from tools.robustness.catalog import Scenario
from tools.robustness_intruder import INTRUDER_MARK
from tools.suite_run import Case, read_jsonl, read_junit, read_verdict_log

if TYPE_CHECKING:
    from tools.robustness.runner import Session

MATRIX_FILE = "conformance-matrix.md"


# ---- reading what a run left ------------------------------------------------------------------

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


def records_of(key: str, records: list[TestVerdict]) -> list[TestVerdict]:
    return [r for r in records if key in r.nodeid]


def seen_verdict(record: TestVerdict) -> str:
    if record.outcome == Outcome.PASSED:
        return PASS
    if record.outcome == Outcome.SKIPPED:
        return SKIPPED
    return record.verdict or "FAILED (no verdict)"


# The Allure/JUnit status each verdict must have (one classification in every report).
ALLURE_STATUS = {PASS: {"passed"}, DEVICE_FAULT: {"failed"}, BROKEN: {"broken"},
                 INTERRUPTED: {"failed", "broken", "skipped", "unknown"}}
JUNIT_STATUS = {PASS: {"passed"}, DEVICE_FAULT: {"failed"}, BROKEN: {"broken", "failed"},
                INTERRUPTED: {"failed", "broken", "skipped"}}


def expected_status(verdict: str, table: dict[str, set[str]]) -> set[str]:
    if verdict in table:
        return table[verdict]
    return {"failed"}                    # NEW, KD-n: a violation


def check_verdicts(scenario: Scenario, records: list[TestVerdict]) -> list[str]:
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


def check_reports(scenario: Scenario, records: list[TestVerdict], junit: list[Case] | str,
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


def check_matrix(records: list[TestVerdict], matrix: Path) -> list[str]:
    """The matrix exists once a test ran; a clause whose only test was a device fault, a harness
    fault or interrupted is not a known deviation (nor, unless a device fault, a FAIL)."""
    if not records:
        return []
    if not matrix.exists():
        return [f"no {MATRIX_FILE}"]
    rows = matrix_rows(matrix.read_text(errors="replace"))
    tests_of: dict[str, set[str]] = {}
    for record in records:
        for clause in record.clauses:
            tests_of.setdefault(clause, set()).add(record.nodeid)
    reasons = []
    for record in records:
        verdict = record.verdict
        if verdict not in NO_VERDICT_KINDS:
            continue
        for clause in record.clauses:
            if len(tests_of[clause]) != 1 or clause not in rows:
                continue
            row = rows[clause]
            if row.startswith(KNOWN_DEVIATION) or (verdict != DEVICE_FAULT and row == FAIL):
                reasons.append(f"matrix: {clause} reads {row!r} for a {verdict}")
    return reasons

# ---- secrets, sizes, output ------------------------------------------------------------------

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
                    error_line: str, records: list[TestVerdict]) -> list[str]:
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
    attempts = read_jsonl(log)
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
            junit: list[Case] | str = list(read_junit(d / "junit.xml").cases)
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

