"""`python -m tools.robustness`: the command line, the scenarios run in a pool, and the report
(<out>/robustness/robustness.md and .json)."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import tools.robustness
from tools.robustness.catalog import BY_NAME, SCENARIOS
from tools.robustness.runner import Result, live_sessions, execute, kill_session
from tools.suite_run import ROOT, markdown_table


def table(results: list[Result]) -> str:
    rows = [(r.name, r.fault, f"{r.wall_s:g}",
             f"{'' if r.exit_code is None else r.exit_code}{' (hang)' if r.hang else ''}",
             r.verdict_summary, r.recovered, "" if r.peak_mib is None else f"{r.peak_mib:g}",
             "pass" if r.ok else "FAIL: " + "; ".join(r.reasons))
            for r in results]
    return "\n".join(markdown_table(("scenario", "fault", "time (s)", "exit", "verdict(s)",
                                      "recovered", "peak MiB", "result"), rows)) + "\n"


def report_markdown(results: list[Result], wall_s: float) -> str:
    good = sum(r.ok for r in results)
    return (f"# Robustness run\n\n- scenarios: {len(results)}; met every expectation: **{good}**; "
            f"failed: {len(results) - good}\n- wall time: {wall_s:.0f} s\n\n" + table(results))


def _stop_runner(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.robustness",
                                     description=tools.robustness.__doc__,
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
        for sid in list(live_sessions):
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

