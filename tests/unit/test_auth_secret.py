"""The AT+WSOPEN <auth> value is a secret: a run of tests/conformance/test_auth.py against the
model (profile auth), with every report on (Allure results, JUnit XML, the reports beside them,
the verdict log, the model's log), leaves it in no file it writes and prints it nowhere. Once on
the clean model, and once with a defect that fails the auth tests, so that failure texts (messages,
stories, attachments of failed tests) are written too.

The value is given as the suite takes it, through $ESP_AT_WS_AUTH_SECRET, in a Digest-style form
with quotes and commas (RFC 7235 auth-params), which the AT command line escapes (`\\"`, `\\,`): the
device's echo of the line then carries it in another form than the header does. It is searched for
plainly, URL-encoded, hex and base64 (tools/robustness/judge.py `find_secret`), and in parts: any
16 characters of its random token, so that a value cut in two (across two reads of the AT port,
or by a device that truncates it) is found as well."""
from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from esp_at.commands import quote
from tools.robustness import find_secret

ROOT = Path(__file__).resolve().parents[2]
SUITE_FILE = "tests/conformance/test_auth.py"
AUTH_SECRET_ENV = "ESP_AT_WS_AUTH_SECRET"
PART = 16                          # characters of the token that count as a leak on their own
RUN_TIMEOUT_S = 600
# A defect of profile auth that fails tests of test_auth.py (sim/defects.py) with the value still
# on the wire (`authorization: <auth>`): the failed tests' reports then show the request head the
# server recorded. (auth-header-dropped would fail them with nothing there to leak.)
FAILING_DEFECT = "auth-header-lowercase"
pytestmark = pytest.mark.timeout(RUN_TIMEOUT_S + 60)


def auth_value(token: str) -> str:
    """The secret: the token's two halves in a Digest-style credential."""
    half = len(token) // 2
    return f'Digest username="{token[:half]}", response="{token[half:]}"'


def parts(token: str) -> list[str]:
    """Every PART-long piece of the token that is whole in the secret (within one half)."""
    half = len(token) // 2
    return [piece[i:i + PART] for piece in (token[:half], token[half:])
            for i in range(len(piece) - PART + 1)]


def leaks(root: Path, secret: str, token: str) -> list[str]:
    """`file: form` for each file under `root` holding the secret or a part of its token (the
    first form found in it)."""
    hits = {}
    for hit in find_secret(root, secret):
        hits.setdefault(hit.rpartition(": ")[0], hit)
    for part in parts(token):
        for hit in find_secret(root, part):
            hits.setdefault(hit.rpartition(": ")[0], f"{hit} (a {PART}-character part)")
    return [hits[name] for name in sorted(hits)]


def hidden(text: str, secret: str, token: str) -> str:
    """`text` with the secret and every part of it replaced: this test's own messages show the
    inner run's output, never the value."""
    for value in [secret, token, *parts(token)]:
        text = text.replace(value, "<auth>")
    return text


def run_auth_tests(out: Path, secret: str, *extra: str) -> subprocess.CompletedProcess:
    """`python -m pytest tests/conformance/test_auth.py --model-profile auth` with every report
    written under `out`, the secret in the environment only."""
    argv = [sys.executable, "-m", "pytest", SUITE_FILE, "-p", "no:cacheprovider", "-v",
            "--model-profile", "auth", f"--alluredir={out / 'allure-results'}",
            f"--junitxml={out / 'junit.xml'}", f"--basetemp={out / 'basetemp'}",
            f"--verdict-log={out / 'verdicts.jsonl'}", *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env[AUTH_SECRET_ENV] = secret
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=RUN_TIMEOUT_S,
                            check=False)
    (out / "pytest-output.txt").write_bytes(result.stdout + b"\n---- stderr ----\n" + result.stderr)
    return result


def junit_counts(path: Path) -> dict[str, int]:
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    counts["failure texts"] = sum(1 for case in suite.iter("testcase")
                                  for child in case if child.tag in ("failure", "error")
                                  and (child.text or child.get("message")))
    return counts


def written_in_project_since(started: float) -> list[Path]:
    """Files of the project the run may have written besides its reports (none are expected)."""
    skip = {".git", ".venv", "node_modules", "__pycache__"}
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            path = Path(folder) / name
            try:
                if path.stat().st_mtime >= started:
                    found.append(path)
            except OSError:
                continue
    return found


@pytest.mark.parametrize("defect", [None, FAILING_DEFECT], ids=["clean", FAILING_DEFECT])
def test_the_auth_value_is_in_no_report_and_no_output(tmp_path, defect):
    token = secrets.token_urlsafe(32)
    secret = auth_value(token)
    out = tmp_path / "run"
    out.mkdir()
    started = time.time()
    result = run_auth_tests(out, secret, *(["--model-defect", defect] if defect else []))
    output = hidden((result.stdout + result.stderr).decode(errors="replace"), secret, token)

    # The run did what it is for: tests ran (not all skipped) and, with the defect, failed.
    junit = out / "junit.xml"
    assert junit.is_file(), f"the run wrote no JUnit XML; its output:\n{output[-4000:]}"
    counts = junit_counts(junit)
    ran = counts["tests"] - counts["skipped"]
    assert ran >= 5 and counts["errors"] == 0, (counts, output[-4000:])
    if defect is None:
        assert result.returncode == 0 and counts["failures"] == 0, (counts, output[-4000:])
    else:
        assert result.returncode == 1 and counts["failures"] >= 1, (counts, output[-4000:])
        assert counts["failure texts"] >= 1, f"no failure text was written: {counts}"
    allure = out / "allure-results"
    results = list(allure.glob("*-result.json"))
    attachments = list(allure.glob("*-attachment*"))
    assert results and attachments, (
        f"{len(results)} Allure results for {counts['tests']} tests, {len(attachments)} "
        f"attachments")
    model_logs = list((out / "basetemp").rglob("model-*.log"))
    assert model_logs, "the model's log was not written under --basetemp"

    # And the secret is nowhere: not in any file under the run's directory (the pytest output
    # is one of them), not in any file it wrote in the project, not in what it printed.
    found = leaks(out, secret, token)
    assert not found, f"the auth value leaked into {len(found)} file(s): {found}"
    for path in written_in_project_since(started):
        data = path.read_bytes()
        assert secret.encode() not in data and not any(p.encode() in data for p in parts(token)), (
            f"the auth value leaked into {path.relative_to(ROOT)}")
    printed = (result.stdout + result.stderr).decode(errors="replace")
    assert secret not in printed and not any(p in printed for p in parts(token)), (
        "the auth value is in the run's output (pytest-output.txt holds it with the value hidden "
        "in this message)")


def test_the_search_finds_the_value_whole_and_in_parts(tmp_path):
    """The search this file relies on: a value written plainly, or cut in two, or base64-encoded,
    or as the AT command line escapes it, is found; a file without it is not."""
    token = secrets.token_urlsafe(32)
    secret = auth_value(token)
    (tmp_path / "clean.txt").write_text('nothing here but Digest username="<auth>"')
    assert leaks(tmp_path, secret, token) == []
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "whole.json").write_text(f'{{"message": "{secret}"}}')
    half = len(secret) // 2
    (tmp_path / "cut.txt").write_text(f"<< b'{secret[:half]}'\n<< b'{secret[half:]}'")
    (tmp_path / "encoded.txt").write_bytes(base64.b64encode(secret.encode()))
    (tmp_path / "echo.txt").write_text(f"<< b'AT+WSOPEN=0,\"ws://h:1/p\",,,{quote(secret)}\\r\\n'")
    hit_files = {hit.split(":")[0] for hit in leaks(tmp_path, secret, token)}
    assert hit_files == {"a/b/whole.json", "cut.txt", "encoded.txt", "echo.txt"}, hit_files
    assert hidden(f"x {secret} y {token[3:3 + PART]}", secret, token) == "x <auth> y <auth>"
