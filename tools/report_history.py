"""Allure's history keyed by firmware: `python -m tools.report_history HISTORY RESULTS_DIR`.

Allure 3 appends one point to its history file (reports/history.jsonl) per generated report, so
its trends and each test's history are per run: ten runs of one firmware push the firmware before
it out of sight. A release engineer asks how each clause went from one firmware to the next. So,
before `allure generate` (make report): every point is named by its firmware (the run writes the
name into RESULTS_DIR/report.json, allurerc.mjs gives it to Allure), and this keeps the latest
point of every other firmware and drops the older points of the run's own firmware, whose new
point the report then appends. The file is then one point per firmware, oldest first.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPORT_FILE = "report.json"          # written by fixtures/reporting.py: {"name", "firmware"}


def one_point_per_firmware(lines: list[str], current: str) -> tuple[list[str], list[str]]:
    """The history's lines to keep (the latest point of each firmware but `current`, in the
    order of those points), and a word on every line dropped."""
    latest: dict[str, tuple[int, str]] = {}
    dropped = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            name = json.loads(line)["name"]
        except (ValueError, KeyError, TypeError):
            dropped.append(f"line {number}: not a history point, dropped")
            continue
        if name == current:
            dropped.append(f"line {number}: an older run of this firmware ({name}), replaced")
            continue
        if name in latest:
            dropped.append(f"line {latest[name][0]}: an older run of {name}, dropped")
        latest[name] = (number, line.rstrip("\n"))
    kept = [line for _, line in sorted(latest.values())]
    return kept, dropped


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m tools.report_history HISTORY_JSONL ALLURE_RESULTS_DIR",
              file=sys.stderr)
        return 2
    history, results = Path(argv[0]), Path(argv[1])
    try:
        current = json.loads((results / REPORT_FILE).read_text(encoding="utf-8"))["name"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"{results / REPORT_FILE}: {exc} (run the suite first: make conformance)",
              file=sys.stderr)
        return 2
    if not history.exists():
        print(f"history: none yet; this report starts {history} with {current}")
        return 0
    kept, dropped = one_point_per_firmware(
        history.read_text(encoding="utf-8").splitlines(), current)
    history.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    for word in dropped:
        print(f"history: {word}")
    print(f"history: {len(kept)} other firmware(s) kept in {history}; this report adds {current}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
