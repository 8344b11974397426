"""`python -m replay`: the model (or a device) against the golden traces of esp_websocket_client.

  python -m replay check                                (make replay: four runs, judged)
  python -m replay run [--firmware shipping] [--library 1.2.3] [--only SCENARIO ...]
  python -m replay record --at-port URL --out DIR      (a device's own traces; see README)
  python -m replay compare DIR                         (a recording against both libraries)

A trace that is not JSON or names an unknown step stops with one line naming the file and step.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from replay.compare import TOLERANCE_MS
from replay.run import ModelOptions, replay_model, summary, write_reports
from replay.trace import LIBRARY_VERSIONS, TRACES_DIR, TraceError, load_all

REPORTS = Path("reports")


def _progress(record) -> None:
    verdict = "not reachable" if not record.reachable else "agree" if record.agree else "DIFFER"
    detail = f": {record.first_difference}" if record.agree is False else ""
    print(f"  {record.library} {record.scenario:36} {verdict}{detail}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m replay", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    chk = sub.add_parser("check", help="shipping 1.2.3 and 1.8.0 must agree with their traces, "
                                       "the conforming model differ exactly where listed")
    chk.add_argument("--out", default=str(REPORTS), metavar="DIR")
    chk.add_argument("--only", nargs="+", default=[], metavar="SCENARIO")
    chk.add_argument("--jobs", type=int, default=2)
    run = sub.add_parser("run", help="replay the traces against the model")
    run.add_argument("--firmware", choices=("seed", "shipping"), default="shipping")
    run.add_argument("--library", choices=LIBRARY_VERSIONS, default="1.2.3",
                     help="the library the model follows, and the traces it is compared with")
    run.add_argument("--traces", default=str(TRACES_DIR), metavar="DIR")
    run.add_argument("--only", nargs="+", default=[], metavar="SCENARIO")
    run.add_argument("--defect", action="append", default=[], metavar="NAME",
                     help="a named defect of the model's catalog on top (python -m sim "
                          "--list-defects)")
    run.add_argument("--library-loop", action="store_true",
                     help="with --firmware seed: run the library's task loop (its reconnect "
                          "wait), for checking one defect against the traces")
    run.add_argument("--out", default=str(REPORTS), metavar="DIR")
    run.add_argument("--stem", default="replay", help="report file names (default replay)")
    rec = sub.add_parser("record", help="record a device through its AT port, in the traces' "
                                        "format, then compare it with both libraries")
    rec.add_argument("--at-port", required=True, metavar="URL",
                     help="the device's AT port (a board's UART1, rfc2217://..., a model's "
                          "socket://...)")
    rec.add_argument("--ws-host", default="127.0.0.1", metavar="ADDR",
                     help="the address the device reaches this host's server at, and binds to "
                          "(a board: this host's LAN address)")
    rec.add_argument("--out", default=str(REPORTS / "recording"), metavar="DIR")
    rec.add_argument("--only", nargs="+", default=[], metavar="SCENARIO")
    rec.add_argument("--tolerance-ms", type=float, default=TOLERANCE_MS)
    cmp_ = sub.add_parser("compare", help="compare a recording with both libraries' traces")
    cmp_.add_argument("folder", metavar="DIR")
    cmp_.add_argument("--tolerance-ms", type=float, default=TOLERANCE_MS)
    args = p.parse_args(argv)
    if args.command in ("record", "compare"):
        return _recording(args)
    if args.command == "check":
        from replay import check
        try:
            load_all(versions=LIBRARY_VERSIONS, only=args.only)
        except TraceError as exc:
            print(f"replay: {exc}", file=sys.stderr)
            return 2
        return check.main(Path(args.out), args.only, args.jobs)
    try:
        traces = load_all(args.traces, versions=(args.library,), only=args.only)
    except TraceError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    # The driver's reader and the script server share this process: keep each one's wait for
    # the interpreter short, so what they time is when it happened.
    sys.setswitchinterval(0.0005)
    options = ModelOptions(firmware=args.firmware, library=args.library,
                           defects=tuple(args.defect), library_loop=args.library_loop)
    print(f"replaying {len(traces)} traces of esp_websocket_client {args.library} on the model "
          f"({options.words()})", flush=True)
    records = replay_model(traces, options, _progress)
    write_reports(records, Path(args.out),
                  f"Replay of esp_websocket_client {args.library} traces on the model "
                  f"({options.words()})", args.stem)
    s = summary(records)
    print(f"{s['agree']} agree, {s['differ']} differ, {s['not_reachable']} not reachable; "
          f"{Path(args.out) / (args.stem + '.md')}")
    return 0 if s["differ"] == 0 else 1


def _recording(args: argparse.Namespace) -> int:
    from replay import record
    folder = Path(args.out if args.command == "record" else args.folder)
    try:
        if args.command == "record":
            print(f"recording the device at {args.at_port} into {folder}", flush=True)
            left_out = record.record(args.at_port, folder, args.ws_host, args.only,
                                     lambda scenario, what: print(f"  {scenario:36} {what}",
                                                                  flush=True))
        else:
            if not folder.is_dir():
                print(f"replay: {folder}: no such folder (python -m replay record writes one)",
                      file=sys.stderr)
                return 2
            left_path = folder / "left_out.json"
            left_out = json.loads(left_path.read_text()) if left_path.exists() else {}
        rows = record.compare_recording(folder, args.tolerance_ms)
    except (TraceError, OSError, ValueError, KeyError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    report = folder / "comparison.md"
    report.write_text(record.markdown(rows, folder, left_out, args.tolerance_ms))
    (folder / "comparison.json").write_text(json.dumps(rows, indent=1) + "\n")
    for version in LIBRARY_VERSIONS:
        alike = sum(r[version]["behaves_alike"] for r in rows)
        timed = sum(r[version]["timing_alike"] for r in rows)
        print(f"like esp_websocket_client {version}: {alike} of {len(rows)} scenarios in "
              f"behaviour, {timed} also in timing")
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
