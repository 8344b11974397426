"""The little HTML the matrix and the comparison share: one self-contained page (inline CSS, no
scripts, nothing fetched), so it can be attached to a release or opened from a CI artifact."""
from __future__ import annotations

from html import escape

from fixtures.verdicts import (EXPECTED, FAIL, KNOWN_DEVIATION, NEW, NO_VERDICT_KINDS, PASS,
                               UNEXPECTED_PASS, Outcome)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
dl.header { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dl.header dt { font-weight: 600; } dl.header dd { margin: 0; font-family: monospace; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .3em .5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.id { font-family: monospace; overflow-wrap: anywhere; min-width: 14em; }
.verdict { font-weight: 600; white-space: nowrap; }
.pass { background: #e3f6e5; color: #145a1f; } .fail { background: #fbe3e3; color: #8a1414; }
.known { background: #fff1d6; color: #7a4b00; } .unexpected { background: #f9d9f2; color: #7a0a5c; }
.fault { background: #e4ecf7; color: #23415f; } .none { background: #f0f0f0; color: #555; }
.kd { font-size: .85em; background: #fff1d6; padding: 0 .3em; border-radius: 3px; }
.outcome.failed { color: #8a1414; font-weight: 600; } .outcome.xfailed { color: #7a4b00; }
.outcome.passed { color: #145a1f; } .outcome.skipped, .outcome.not-run { color: #666; }
details summary { cursor: pointer; }
pre { white-space: pre-wrap; font-size: .85em; margin: .2em 0; }
p.stopped { background: #fbe3e3; padding: .5em; }
h2.group { padding: .2em .5em; border-left: .4em solid #999; }
h2.regressed { border-color: #c62828; color: #8a1414; }
h2.fixed { border-color: #2e7d32; color: #145a1f; }
h2.changed { border-color: #e0a000; color: #7a4b00; }
h2.inconclusive { border-color: #5c7fa8; color: #23415f; }
h2.new, h2.gone, h2.unchanged { border-color: #999; color: #555; }
"""


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n"
            f"</body></html>\n")


def verdict_class(verdict: str) -> str:
    """The colour of a clause verdict, a test's verdict or a test's outcome: pass, fail, known (a
    known or expected deviation), unexpected, fault (device, harness, interrupted: no verdict on
    the device), none (skipped, not run, absent)."""
    if verdict in (PASS, Outcome.PASSED):
        return "pass"
    if verdict in (FAIL, Outcome.FAILED, NEW):
        return "fail"
    if verdict.startswith((KNOWN_DEVIATION, EXPECTED, "KD-")) or verdict == Outcome.XFAILED:
        return "known"
    if verdict == UNEXPECTED_PASS:
        return "unexpected"
    if verdict in NO_VERDICT_KINDS:
        return "fault"
    return "none"


def verdict_cell(verdict: str, colour_of: str | None = None) -> str:
    """A coloured table cell; colour_of names the word that picks the colour when the cell shows
    more (a test's 'failed NEW' is coloured by NEW)."""
    return f"<td class='verdict {verdict_class(colour_of or verdict)}'>{esc(verdict)}</td>"
