"""The conformance matrix: a run record written as Markdown, JSON and HTML.

The run record (fixtures/run_record.py builds it at the end of a run) is plain data:

  schema        "esp-at-ws-conformance/run/1"
  header        suite (the suite's version), date (run start, ISO 8601), device, port (the AT
                port URL), firmware (AT+GMR's first line, "" if unknown), firmware_lines (all of
                AT+GMR), profile, expectations (the expectations file or None), model_defects
                ([] for a clean model or a board)
  summary       tests, passed, failed, skipped, expected, not_run, exit_status
  stopped       None, or {"why", "not_run": [nodeid]} when the session stopped early
  clauses       in spec order: id, command, level (MUST, SHOULD), text, known_deviation (KD-n or
                None), verdict (PASS, FAIL, KNOWN DEVIATION, EXPECTED KD-n, UNEXPECTED PASS,
                DEVICE FAULT, BROKEN, INTERRUPTED, SKIPPED, NOT RUN, NOT IN PROFILE), passed, failed, skipped,
                expected, tests (nodeids)
  tests         fixtures/verdicts.TestVerdict.to_json, the verdict log's lines too: nodeid, title,
                clauses, outcome (passed, failed, skipped, xfailed, not run), verdict ("" when
                passed or skipped; else NEW, KD-n, DEVICE FAULT, BROKEN, INTERRUPTED, UNEXPECTED
                PASS), class (the verdict's), expected (the KD-n the expectations file expects,
                or None), failed_clause, when, duration (s), time, message (the failure's first
                lines)
  observations  name, value, test: facts the spec does not rule on, never failures
"""
from __future__ import annotations

import json
from pathlib import Path

from fixtures.verdicts import Outcome, TestVerdict

from .html import esc, page, verdict_cell

SCHEMA = "esp-at-ws-conformance/run/1"
FILES = {"md": "conformance-matrix.md", "json": "conformance-matrix.json",
         "html": "conformance-matrix.html"}
HEADER_FIELDS = (("device", "device"), ("port", "AT port"), ("firmware", "firmware"),
                 ("profile", "profile"), ("profile_reason", "profile chosen by"),
                 ("expectations", "expectations"),
                 ("model_defects", "model defects"), ("date", "date"), ("suite", "suite"))
# What a reader of the record can rely on; load() refuses a file without them.
CLAUSE_KEYS = ("id", "level", "text", "verdict", "tests")
TEST_KEYS = ("nodeid", "outcome", "verdict")


def write(record: dict, out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / name for kind, name in FILES.items()}
    paths["md"].write_text(markdown(record), encoding="utf-8")
    # default=str: an option parsed as a Path must not cost the whole record.
    paths["json"].write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
    paths["html"].write_text(html(record), encoding="utf-8")
    return paths


def load(path: str | Path) -> dict:
    """A run record from its JSON file, or from the reports directory that holds it."""
    path = Path(path)
    if path.is_dir():
        path = path / FILES["json"]
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    problem = schema_problem(record)
    if problem:
        raise ValueError(f"{path}: not a run record of schema {SCHEMA} ({problem})")
    return record


def schema_problem(record: object) -> str:
    """What keeps this from being a run record, or ''."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if record.get("schema") != SCHEMA:
        return f"schema is {record.get('schema')!r}"
    for part, keys in (("clauses", CLAUSE_KEYS), ("tests", TEST_KEYS)):
        rows = record.get(part)
        if not isinstance(rows, list):
            return f"no {part} list"
        for n, row in enumerate(rows):
            missing = [k for k in keys if not isinstance(row, dict) or k not in row]
            if missing:
                return f"{part}[{n}] has no {', '.join(missing)}"
    if not isinstance(record.get("header"), dict):
        return "no header"
    return ""


def header_value(header: dict, key: str) -> str:
    value = header.get(key)
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value) if value not in (None, "") else "none"


def summary_line(record: dict) -> str:
    s = record.get("summary") or {}
    return (f"{s.get('tests', 0)} tests: {s.get('passed', 0)} passed, {s.get('failed', 0)} "
            f"failed, {s.get('expected', 0)} expected failures, {s.get('skipped', 0)} skipped, "
            f"{s.get('not_run', 0)} not run; exit status {s.get('exit_status', '?')}")


def stopped_words(record: dict) -> tuple[str, str]:
    """The bold reason and the rest of the sentence, or ('', '') when the run went to the end."""
    stopped = record.get("stopped")
    if not stopped:
        return "", ""
    return (f"The session stopped: {stopped['why']}",
            f"{len(stopped.get('not_run', []))} test(s) did not run; their clauses read NOT RUN.")


def cell(text: object) -> str:
    # A '|' or a line end inside a cell would split the row (tools/robustness.py reads them).
    return str(text).replace("|", "/").replace("\n", " ")


def markdown(record: dict) -> str:
    header = record.get("header", {})
    lines = ["# Conformance matrix", ""]
    lines += [f"- {label}: {cell(header_value(header, key))}" for key, label in HEADER_FIELDS]
    if len(header.get("firmware_lines") or []) > 1:
        lines.append(f"- AT+GMR: {cell('; '.join(header['firmware_lines']))}")
    lines += ["", summary_line(record), ""]
    why, rest = stopped_words(record)
    if why:
        lines += [f"**{why}** {rest}", ""]
    lines += ["| clause | level | verdict | passed | failed | skipped | expected | known deviation "
              "| text |", "|---|---|---|---|---|---|---|---|---|"]
    for c in record.get("clauses", []):
        lines.append(f"| {c['id']} | {c['level']} | {c['verdict']} | {c.get('passed', 0)} | "
                     f"{c.get('failed', 0)} | {c.get('skipped', 0)} | {c.get('expected', 0)} | "
                     f"{c.get('known_deviation') or ''} | {cell(c['text'])} |")
    observations = record.get("observations", [])
    if observations:
        lines += ["", "## Observations (no verdict)", ""]
        lines += [f"- {cell(o['name'])}: {cell(o['value'])} ({o['test']})" for o in observations]
    return "\n".join(lines) + "\n"


def header_list(header: dict) -> str:
    rows = [f"<dt>{esc(label)}</dt><dd>{esc(header_value(header, key))}</dd>"
            for key, label in HEADER_FIELDS]
    if len(header.get("firmware_lines") or []) > 1:
        gmr = "<br>".join(esc(line) for line in header["firmware_lines"])
        rows.append(f"<dt>AT+GMR</dt><dd>{gmr}</dd>")
    return "<dl class='header'>" + "".join(rows) + "</dl>"


def html(record: dict) -> str:
    header = record.get("header", {})
    tests = {t.nodeid: t for t in map(TestVerdict.from_json, record.get("tests", []))}
    parts = ["<h1>Conformance matrix</h1>", header_list(header),
             f"<p class='summary'>{esc(summary_line(record))}</p>"]
    why, rest = stopped_words(record)
    if why:
        parts.append(f"<p class='stopped'><b>{esc(why)}</b> {esc(rest)}</p>")
    groups: dict[str, list[dict]] = {}
    for clause in record.get("clauses", []):
        groups.setdefault(clause.get("command") or clause["id"].split(".")[0], []).append(clause)
    for command, clauses in groups.items():
        parts.append(f"<h2>{esc(command)}</h2><table><tr><th>clause</th><th>level</th>"
                     f"<th>verdict</th><th>tests</th><th>text</th></tr>")
        for c in clauses:
            kd = f" <span class='kd'>{esc(c['known_deviation'])}</span>" \
                if c.get("known_deviation") else ""
            parts.append(f"<tr><td class='id'>{esc(c['id'])}</td><td>{esc(c['level'])}</td>"
                         f"{verdict_cell(c['verdict'])}<td>{tests_cell(c, tests)}</td>"
                         f"<td>{esc(c['text'])}{kd}</td></tr>")
        parts.append("</table>")
    observations = record.get("observations", [])
    parts.append("<h2>Observations</h2>")
    if observations:
        parts.append("<p>Facts the spec does not rule on: never a failure.</p><table><tr>"
                     "<th>what</th><th>value</th><th>test</th></tr>")
        for o in observations:
            parts.append(f"<tr><td>{esc(o['name'])}</td><td>{esc(o['value'])}</td>"
                         f"<td>{esc(short(o['test']))}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>None recorded.</p>")
    return page(f"Conformance matrix: {header_value(header, 'firmware')}", "\n".join(parts))


def tests_cell(clause: dict, tests: dict[str, TestVerdict]) -> str:
    rows = []
    for nodeid in clause.get("tests", []):
        test = tests.get(nodeid) or TestVerdict(nodeid, Outcome.NOT_RUN)
        said = " ".join(filter(None, (test.outcome, test.verdict)))
        if test.failed_clause:
            said += f" ({test.failed_clause})"
        line = (f"<span class='outcome {esc(test.outcome.replace(' ', '-'))}'>{esc(said)}"
                f"</span> {esc(short(nodeid))}")
        message = test.message.strip()
        if message:
            line = f"<details><summary>{line}</summary><pre>{esc(message)}</pre></details>"
        rows.append(f"<div>{line}</div>")
    return "".join(rows) or "<i>no test ran</i>"


def short(nodeid: str) -> str:
    return nodeid.split("::", 1)[-1]
