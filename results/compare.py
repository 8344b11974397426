"""Two runs side by side: which clauses and tests got worse, got better, changed or could not be
judged, from run A (the baseline: shipping firmware, last night) to run B.

    python -m results.compare RUN_A RUN_B [--out DIR]

RUN_A and RUN_B are run records (conformance-matrix.json) or the reports directories that hold
them. Prints the comparison as Markdown and writes compare.md and compare.html to DIR (default:
the current directory). Exit status 0 whatever changed (a comparison is information, not a
verdict); 2 when a run cannot be read.

Each clause (matched by id) and each test (by nodeid) lands in exactly one group:

  regressed     its rank got worse      fixed        its rank got better
  changed       same rank, different verdict (KNOWN DEVIATION <-> EXPECTED KD-4, KD-4 -> KD-5,
                a failing test's failed clause)
  inconclusive  one side has no verdict on the device (DEVICE FAULT, BROKEN, INTERRUPTED,
                SKIPPED, NOT RUN) and the two differ
  unchanged     the same verdict both times (also two identical inconclusive ones)
  new, gone     only in B, only in A

Ranks, best first: PASS; KNOWN DEVIATION and EXPECTED KD-n (known bad); FAIL and UNEXPECTED PASS.
For tests: passed; xfailed or failed as a KD (the same known deviation, expected or not); failed
as NEW or UNEXPECTED PASS. Observations are compared by name and never count as regressions.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from fixtures.verdicts import (BROKEN, DEVICE_FAULT, EXPECTED, FAIL, INTERRUPTED, KNOWN_DEVIATION,
                               NEW, NO_VERDICT_KINDS, NOT_IN_PROFILE, NOT_RUN, PASS, SKIPPED,
                               UNEXPECTED_PASS, Outcome, TestVerdict)

from . import matrix
from .html import esc, page, verdict_cell

GROUPS = ("regressed", "fixed", "changed", "inconclusive", "unchanged", "new", "gone")
NO_VERDICT = (*NO_VERDICT_KINDS, SKIPPED, NOT_RUN, NOT_IN_PROFILE)
HEADER_ROWS = (("firmware", "firmware"), ("device", "device"), ("profile", "profile"),
               ("expectations", "expectations"), ("model_defects", "model defects"),
               ("port", "AT port"), ("date", "date"), ("suite", "suite"))
ABSENT = "—"
OUTPUT_FILES = ("compare.md", "compare.html")
UNEXPECTED_PASS_NOTE = ("An UNEXPECTED PASS counts as regressed: the run fails until the "
                        "expectations file drops its entry, although the device met the check.")


def clause_rank(verdict: str) -> int | None:
    """0 best; None: no verdict on the device (or a verdict this code does not know)."""
    if verdict == PASS:
        return 0
    if verdict == KNOWN_DEVIATION or verdict.startswith(EXPECTED):
        return 1
    if verdict in (FAIL, UNEXPECTED_PASS):
        return 2
    return None


def outcome_words(test: TestVerdict) -> str:
    """A test's outcome with its verdict: 'passed', 'xfailed KD-4', 'failed NEW', 'not run'."""
    return f"{test.outcome} {test.shown_verdict}".strip()


def outcome_rank(test: TestVerdict) -> int | None:
    if test.outcome == Outcome.PASSED:
        return 0
    if test.outcome == Outcome.XFAILED:
        return 1
    if test.outcome == Outcome.FAILED:
        if test.verdict in (NEW, UNEXPECTED_PASS):
            return 2
        # A KD failure is the device's same known deviation whether or not the file expects it.
        if test.verdict.startswith("KD-"):
            return 1
    return None


def group_of(same: bool, rank_a: int | None, rank_b: int | None) -> str:
    if same:
        return "unchanged"
    if rank_a is None or rank_b is None:
        return "inconclusive"
    if rank_b > rank_a:
        return "regressed"
    if rank_b < rank_a:
        return "fixed"
    return "changed"


def no_verdict_why(sides: list[tuple[str, str, int | None]]) -> str:
    """Which side gave no verdict on the device, and what it read instead."""
    said = [f"{side} {word}" for side, word, rank in sides if rank is None]
    return ", ".join(said) + ": no verdict on the device" if said else ""


def compare(a: dict, b: dict) -> dict:
    """The plain-data diff of run A and run B."""
    return {
        "a": {k: a.get(k) for k in ("header", "summary", "stopped")},
        "b": {k: b.get(k) for k in ("header", "summary", "stopped")},
        "title": run_labels(a.get("header") or {}, b.get("header") or {}),
        "clauses": compare_clauses(a.get("clauses", []), b.get("clauses", [])),
        "tests": compare_tests([TestVerdict.from_json(t) for t in a.get("tests", [])],
                               [TestVerdict.from_json(t) for t in b.get("tests", [])]),
        "observations": compare_observations(a.get("observations", []),
                                             b.get("observations", [])),
    }


def run_labels(a: dict, b: dict) -> list[str]:
    """The firmware of each run; their dates when the firmware does not tell them apart."""
    if a.get("firmware") and b.get("firmware") and a["firmware"] != b["firmware"]:
        return [a["firmware"], b["firmware"]]
    return [a.get("date") or "run A", b.get("date") or "run B"]


def empty_groups() -> dict[str, list[dict]]:
    return {group: [] for group in GROUPS}


def matched(rows_a: list, rows_b: list, key: Callable):
    """(a, b) pairs by key, in B's order, then the ones only A has in A's order."""
    by_key_a = {key(row): row for row in rows_a}
    keys_b = {key(row) for row in rows_b}
    for row in rows_b:
        yield by_key_a.get(key(row)), row
    for row in rows_a:
        if key(row) not in keys_b:
            yield row, None


def compare_clauses(clauses_a: list[dict], clauses_b: list[dict]) -> dict[str, list[dict]]:
    groups = empty_groups()
    for a, b in matched(clauses_a, clauses_b, lambda clause: clause["id"]):
        either = b or a
        entry = {"id": either["id"], "command": either.get("command", ""),
                 "text": either["text"], "a": a and a["verdict"], "b": b and b["verdict"],
                 "why": ""}
        if a is None:
            group = "new"
        elif b is None:
            group = "gone"
        else:
            rank_a, rank_b = clause_rank(a["verdict"]), clause_rank(b["verdict"])
            group = group_of(a["verdict"] == b["verdict"], rank_a, rank_b)
            if group == "inconclusive":
                entry["why"] = no_verdict_why([("A", a["verdict"], rank_a),
                                               ("B", b["verdict"], rank_b)])
        groups[group].append(entry)
    return groups


HEADINGS = (f"{NEW} FAILURE of", KNOWN_DEVIATION, UNEXPECTED_PASS, DEVICE_FAULT, BROKEN,
            INTERRUPTED)     # Label.heading's first words: they repeat the clause column


def first_line(test: TestVerdict | None) -> str:
    """What went wrong in a word: the failure's story, past the heading that names the clause."""
    lines = [line.strip() for line in (test.message if test else "").strip().splitlines()]
    lines = [line for line in lines if line]
    if len(lines) > 1 and lines[0].startswith(HEADINGS):
        return lines[1]
    return lines[0] if lines else ""


def clause_words(a: TestVerdict | None, b: TestVerdict | None) -> str:
    """The clause a failure was filed under, with its change; else the clauses the test names."""
    failed_a, failed_b = (t.failed_clause if t else "" for t in (a, b))
    if failed_a and failed_b and failed_a != failed_b:
        return f"{failed_a} → {failed_b}"
    if failed_b or failed_a:
        return failed_b or failed_a
    return " ".join((b or a).clauses)


def compare_tests(tests_a: list[TestVerdict], tests_b: list[TestVerdict]
                  ) -> dict[str, list[dict]]:
    groups = empty_groups()
    for a, b in matched(tests_a, tests_b, lambda test: test.nodeid):
        either = b or a
        entry = {"nodeid": either.nodeid, "title": either.title or either.nodeid,
                 "a": a and outcome_words(a), "b": b and outcome_words(b),
                 "clause": clause_words(a, b), "message": first_line(b), "why": ""}
        if a is None:
            group = "new"
        elif b is None:
            group = "gone"
        else:
            rank_a, rank_b = outcome_rank(a), outcome_rank(b)
            same = entry["a"] == entry["b"] and a.failed_clause == b.failed_clause
            group = group_of(same, rank_a, rank_b)
            if group == "inconclusive":
                entry["why"] = no_verdict_why([("A", entry["a"], rank_a),
                                               ("B", entry["b"], rank_b)])
        groups[group].append(entry)
    return groups


def observed(observations: list[dict]) -> dict[str, list[str]]:
    values: dict[str, set[str]] = {}
    for o in observations:
        values.setdefault(str(o["name"]), set()).add(str(o["value"]))
    return {name: sorted(found) for name, found in values.items()}


def compare_observations(obs_a: list[dict], obs_b: list[dict]) -> dict:
    """Per name, the values each run saw; a name only one run has counts as changed."""
    a, b = observed(obs_a), observed(obs_b)
    names = list(b) + [name for name in a if name not in b]
    changed = [{"name": name, "a": a.get(name, []), "b": b.get(name, [])}
               for name in names if a.get(name) != b.get(name)]
    return {"changed": changed, "unchanged": [name for name in names if a.get(name) == b.get(name)]}


def counts(groups: dict[str, list[dict]]) -> str:
    return ", ".join(f"{len(groups[group])} {group}" for group in GROUPS)


def summary_line(diff: dict) -> str:
    return f"{counts(diff['clauses'])} (clauses); {counts(diff['tests'])} (tests)"


def header_rows(diff: dict) -> list[tuple[str, str, str]]:
    """(label, A, B) for the header block, the summaries and, when set, why a run stopped."""
    rows = [(label, matrix.header_value(diff["a"]["header"] or {}, key),
             matrix.header_value(diff["b"]["header"] or {}, key)) for key, label in HEADER_ROWS]
    rows.append(("tests", matrix.summary_line(diff["a"]), matrix.summary_line(diff["b"])))
    if diff["a"]["stopped"] or diff["b"]["stopped"]:
        rows.append(("stopped", *((run["stopped"] or {}).get("why", "no")
                                  for run in (diff["a"], diff["b"]))))
    return rows


def shown(verdict: str | None) -> str:
    return verdict if verdict else ABSENT


def cell(text: object) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def has_unexpected_pass(entries: list[dict]) -> bool:
    return any((e["b"] or "").endswith(UNEXPECTED_PASS) for e in entries)


def markdown(diff: dict) -> str:
    label_a, label_b = diff["title"]
    lines = [f"# Comparison: {label_a} → {label_b}", "", summary_line(diff), "",
             "| | A | B |", "|---|---|---|"]
    lines += [f"| {label} | {cell(a)} | {cell(b)} |" for label, a, b in header_rows(diff)]
    for group in GROUPS:
        clauses, tests = diff["clauses"][group], diff["tests"][group]
        if group == "unchanged":
            lines += ["", f"Unchanged: {len(clauses)} clause(s), {len(tests)} test(s) "
                          f"(listed in compare.html)."]
            continue
        if not clauses and not tests:
            continue
        lines += ["", f"## {group.capitalize()}: {len(clauses)} clause(s), {len(tests)} test(s)"]
        why = group == "inconclusive"
        if group == "regressed" and has_unexpected_pass(clauses + tests):
            lines += ["", UNEXPECTED_PASS_NOTE]
        if clauses:
            lines += ["", "| clause | A verdict | B verdict | " + ("why | " if why else "")
                      + "text |", "|---|---|---|" + ("---|" if why else "") + "---|"]
            lines += [f"| {c['id']} | {shown(c['a'])} | {shown(c['b'])} | "
                      + (f"{cell(c['why'])} | " if why else "") + f"{cell(c['text'])} |"
                      for c in clauses]
        if tests:
            lines += ["", "| test | A | B | clause | " + ("why | " if why else "")
                      + "B's message |", "|---|---|---|---|" + ("---|" if why else "") + "---|"]
            lines += [f"| {cell(t['nodeid'])} | {shown(t['a'])} | {shown(t['b'])} | "
                      f"{cell(t['clause'])} | " + (f"{cell(t['why'])} | " if why else "")
                      + f"{cell(t['message'])} |" for t in tests]
    observations = diff["observations"]
    lines += ["", "## Observations that changed (not failures)", ""]
    if observations["changed"]:
        lines += ["| observation | A | B |", "|---|---|---|"]
        lines += [f"| {cell(o['name'])} | {cell(values(o['a']))} | {cell(values(o['b']))} |"
                  for o in observations["changed"]]
    else:
        lines.append("None.")
    lines += ["", f"{len(observations['unchanged'])} observation(s) the same."]
    return "\n".join(lines) + "\n"


def values(seen: list[str]) -> str:
    return "; ".join(seen) if seen else ABSENT


def colour_word(verdict: str | None) -> str:
    """The word of a test's 'failed NEW' or 'xfailed KD-4' that picks its colour."""
    verdict = verdict or ""
    if verdict.startswith(f"{Outcome.XFAILED} "):
        return Outcome.XFAILED
    if verdict.startswith(f"{Outcome.FAILED} "):
        return verdict[len(Outcome.FAILED) + 1:]
    return verdict


def html_tables(clauses: list[dict], tests: list[dict], why: bool) -> str:
    parts = []
    why_head = "<th>why</th>" if why else ""
    if clauses:
        parts.append(f"<table><tr><th>clause</th><th>A verdict</th><th>B verdict</th>{why_head}"
                     f"<th>text</th></tr>")
        for c in clauses:
            why_cell = f"<td>{esc(c['why'])}</td>" if why else ""
            parts.append(f"<tr><td class='id'>{esc(c['id'])}</td>"
                         f"{verdict_cell(shown(c['a']))}{verdict_cell(shown(c['b']))}"
                         f"{why_cell}<td>{esc(c['text'])}</td></tr>")
        parts.append("</table>")
    if tests:
        parts.append(f"<table><tr><th>test</th><th>A</th><th>B</th><th>clause</th>{why_head}"
                     f"<th>B's message</th></tr>")
        for t in tests:
            why_cell = f"<td>{esc(t['why'])}</td>" if why else ""
            parts.append(f"<tr><td class='id' title='{esc(t['title'])}'>{esc(t['nodeid'])}</td>"
                         f"{verdict_cell(shown(t['a']), colour_word(t['a']))}"
                         f"{verdict_cell(shown(t['b']), colour_word(t['b']))}"
                         f"<td class='id'>{esc(t['clause'])}</td>{why_cell}"
                         f"<td>{esc(t['message'])}</td></tr>")
        parts.append("</table>")
    return "\n".join(parts)


def html(diff: dict) -> str:
    label_a, label_b = diff["title"]
    title = f"Comparison: {label_a} → {label_b}"
    parts = [f"<h1>{esc(title)}</h1>", f"<p class='summary'>{esc(summary_line(diff))}</p>",
             "<table><tr><th></th><th>A</th><th>B</th></tr>"]
    parts += [f"<tr><th>{esc(label)}</th><td>{esc(a)}</td><td>{esc(b)}</td></tr>"
              for label, a, b in header_rows(diff)]
    parts.append("</table>")
    for group in GROUPS:
        clauses, tests = diff["clauses"][group], diff["tests"][group]
        if not clauses and not tests:
            continue
        heading = f"{group.capitalize()}: {len(clauses)} clause(s), {len(tests)} test(s)"
        tables = html_tables(clauses, tests, why=group == "inconclusive")
        if group == "unchanged":
            parts.append(f"<details><summary><b>{esc(heading)}</b></summary>{tables}</details>")
            continue
        parts.append(f"<h2 class='group {group}'>{esc(heading)}</h2>")
        if group == "regressed" and has_unexpected_pass(clauses + tests):
            parts.append(f"<p>{esc(UNEXPECTED_PASS_NOTE)}</p>")
        parts.append(tables)
    observations = diff["observations"]
    parts.append("<h2>Observations that changed (not failures)</h2>")
    if observations["changed"]:
        parts.append("<table><tr><th>observation</th><th>A</th><th>B</th></tr>")
        parts += [f"<tr><td>{esc(o['name'])}</td><td>{esc(values(o['a']))}</td>"
                  f"<td>{esc(values(o['b']))}</td></tr>" for o in observations["changed"]]
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append(f"<p>{len(observations['unchanged'])} observation(s) the same.</p>")
    return page(title, "\n".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m results.compare",
        description="Compare two conformance runs: what regressed, what was fixed, what changed.")
    parser.add_argument("run_a", metavar="RUN_A", help="the baseline: a conformance-matrix.json "
                                                       "or the reports directory holding it")
    parser.add_argument("run_b", metavar="RUN_B", help="the run to compare with it")
    parser.add_argument("--out", metavar="DIR", type=Path, default=Path("."),
                        help="where compare.md and compare.html go (default: here)")
    args = parser.parse_args(argv)
    try:
        diff = compare(matrix.load(args.run_a), matrix.load(args.run_b))
    except ValueError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    text = markdown(diff)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / OUTPUT_FILES[0]).write_text(text, encoding="utf-8")
        (args.out / OUTPUT_FILES[1]).write_text(html(diff), encoding="utf-8")
    except OSError as exc:
        print(f"compare: cannot write to {args.out} ({exc.strerror or exc})", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
