"""`make replay`: the model against every golden trace, four ways, judged.

- shipping firmware with library 1.2.3 (what ESP-AT ships) against the 1.2.3 traces, and with
  library 1.8.0 against the 1.8.0 traces: every trace that AT can reach must agree;
- the conforming model against both: it must differ on exactly the traces replay/expected.toml
  lists (each with the known deviation that makes the difference) and agree on all others;
- each of those known deviations' defect (sim/defects.py), alone on the conforming model with the
  library's task loop, against the traces expected.toml lists for it: every one must agree, so the
  catalog's library defects are what the real library does, not our reading of it.

Each run is its own `python -m replay run` process (two at a time: the machine's two cores), so
one run's timing never waits on another's. Writes reports/replay.md and reports/replay.json.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import spec
from replay.compare import TOLERANCE_MS
from replay.run import ModelOptions, _cell
from replay.trace import LIBRARY_VERSIONS

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = Path(__file__).resolve().parent / "expected.toml"
RUN_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Run:
    firmware: str
    library: str
    defect: str | None = None          # a KD: its defect (and the `also` ones), on its traces

    @property
    def defects(self) -> tuple[str, ...]:
        """The KD's defect, and those the KD's traces also show (expected.toml `also`)."""
        if self.defect is None:
            return ()
        also = {kd for s, e in expected_differences(self.library).items()
                if e["kd"] == self.defect for kd in e.get("also", [])}
        return (self.defect, *sorted(also - {self.defect}))

    @property
    def options(self) -> ModelOptions:
        return ModelOptions(firmware=self.firmware, library=self.library, defects=self.defects,
                            library_loop=self.defect is not None)

    @property
    def stem(self) -> str:
        return f"replay-{self.firmware}-{self.library}" + (f"-{self.defect}" if self.defect
                                                         else "")

    @property
    def only(self) -> list[str]:
        if self.defect is None:
            return []
        return sorted(s for s, e in expected_differences(self.library).items()
                      if e["kd"] == self.defect)

    def title(self) -> str:
        if self.defect is not None:
            return (f"the conforming model with {' + '.join(self.defects)} and library "
                    f"{self.library}'s loop against {self.defect}'s {self.library} traces")
        what = ("shipping firmware, library " + self.library if self.firmware == "shipping"
                else "the conforming model")
        return f"{what} against the {self.library} traces"


def runs() -> tuple[Run, ...]:
    whole = [Run(firmware, version) for firmware in ("shipping", "seed")
             for version in LIBRARY_VERSIONS]
    defects = [Run("seed", version, kd) for version in LIBRARY_VERSIONS
               for kd in sorted({e["kd"] for e in expected_differences(version).values()},
                                key=lambda kd: int(kd.split("-")[1]))]
    return tuple(whole + defects)


def expected_differences(version: str) -> dict[str, dict]:
    """The traces of `version` where the conforming model and the library part (expected.toml),
    each checked to name a known deviation of the spec data."""
    table = tomllib.loads(EXPECTED.read_text())["differs"]
    known = set(spec.load().known_deviations)
    out = {}
    for scenario, entry in table.items():
        for kd in [entry["kd"], *entry.get("also", [])]:
            if kd not in known:
                raise ValueError(f"{EXPECTED}: {scenario} names {kd}, which "
                                 f"spec/websocket_at.toml does not list")
        if version in entry.get("libraries", LIBRARY_VERSIONS):
            out[scenario] = entry
    return out


def run_one(run: Run, folder: Path, only: list[str]) -> dict:
    argv = [sys.executable, "-m", "replay", "run", "--firmware", run.firmware, "--library",
            run.library, "--out", str(folder), "--stem", run.stem]
    if run.defect is not None:
        argv += [arg for kd in run.defects for arg in ("--defect", kd)] + ["--library-loop"]
    scenarios = [s for s in run.only if not only or s in only] if run.defect else only
    if scenarios:
        argv += ["--only", *scenarios]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    path = folder / f"{run.stem}.json"
    if not path.exists():
        raise RuntimeError(f"{' '.join(argv[1:])} wrote no report (exit {done.returncode}): "
                           f"{done.stderr.strip()[-500:]}")
    report = json.loads(path.read_text())
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def judge(run: Run, report: dict) -> tuple[bool, list[str]]:
    """(the run is as it must be, what is wrong)."""
    records = report["records"]
    problems = []
    if run.firmware == "shipping" or run.defect is not None:
        for r in records:
            if r["agree"] is False:
                problems.append(f"{r['scenario']}: {r['first_difference']}")
        return not problems, problems
    expected = expected_differences(run.library)
    for r in records:
        listed = r["scenario"] in expected
        if r["agree"] is False and not listed:
            problems.append(f"{r['scenario']} differs, and expected.toml does not list it: "
                            f"{r['first_difference']}")
        elif r["agree"] is True and listed:
            problems.append(f"{r['scenario']} agrees, yet expected.toml lists it "
                            f"({expected[r['scenario']]['kd']})")
        elif r["agree"] is None and listed:
            problems.append(f"{r['scenario']} is not reachable through AT, yet expected.toml "
                            f"lists it")
    return not problems, problems


def main(out: Path, only: list[str], jobs: int = 2) -> int:
    chosen = [run for run in runs() if not only or run.defect is None
              or set(run.only) & set(only)]
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {run: pool.submit(run_one, run, Path(tmp), only) for run in chosen}
            reports = {run: future.result() for run, future in futures.items()}
    verdicts = {run: judge(run, reports[run]) for run in chosen}
    write(out, reports, verdicts)
    for run in chosen:
        ok, problems = verdicts[run]
        s = reports[run]["summary"]
        print(f"{'ok  ' if ok else 'FAIL'} {run.title()}: {s['agree']} agree, {s['differ']} "
              f"differ, {s['not_reachable']} not reachable ({reports[run]['seconds']:g} s)")
        for problem in problems:
            print(f"       {problem}")
    print(f"reports: {out / 'replay.md'}, {out / 'replay.json'}")
    return 0 if all(ok for ok, _ in verdicts.values()) else 1


def write(out: Path, reports: dict, verdicts: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for run in reports:
        for r in reports[run]["records"]:
            expected = expected_differences(run.library).get(r["scenario"]) \
                if run.firmware == "seed" and run.defect is None else None
            records.append({**r, "run": run.title(), "firmware": run.firmware,
                            "model_library": run.options.model_library, "defect": run.defect,
                            "expected_difference": expected})
    (out / "replay.json").write_text(json.dumps({
        "tolerance_ms": TOLERANCE_MS,
        "runs": [{"title": run.title(), "options": run.options.words(), "ok": verdicts[run][0],
                  "problems": verdicts[run][1], "summary": reports[run]["summary"],
                  "seconds": reports[run]["seconds"]} for run in reports],
        "records": records}, indent=1) + "\n")
    (out / "replay.md").write_text(markdown(reports, verdicts))


def markdown(reports: dict, verdicts: dict) -> str:
    lines = ["# The model against Espressif's esp_websocket_client, trace by trace", "",
             "Each trace of `traces/` replayed through the model's AT port against the project's "
             "server playing the trace's script; compared with what the real library did: the "
             "frames, TCP, the handshakes, and the URCs and results ESP-AT's AT layer shows for its "
             f"events, each time inside the trace's window +-{TOLERANCE_MS:g} ms.", "",
             "| run | model options | verdict | agree | differ | not reachable | seconds |",
             "|---|---|---|---|---|---|---|"]
    for run in reports:
        s = reports[run]["summary"]
        ok = "as it must be" if verdicts[run][0] else "WRONG: " + "; ".join(verdicts[run][1])
        lines.append(f"| {run.title()} | `{run.options.words()}` | {_cell(ok)} | {s['agree']} | "
                     f"{s['differ']} | {s['not_reachable']} | {reports[run]['seconds']:g} |")
    for run in reports:
        expected = expected_differences(run.library) \
            if run.firmware == "seed" and run.defect is None else {}
        lines += ["", f"## {run.title()}", "",
                  "| scenario | agree | first difference (or why not reachable), and the known "
                  "deviation behind it |", "|---|---|---|"]
        for r in reports[run]["records"]:
            if r["agree"] is None:
                verdict, why = "not reachable", r["reason"]
            elif r["agree"]:
                verdict, why = "agree", f"worst time {r['worst_ms']} ms outside the window"
            else:
                verdict, why = "differ", r["first_difference"]
                entry = expected.get(r["scenario"])
                if entry:
                    why = f"{entry['kd']}: {entry['why']}. First difference: {why}"
            lines.append(f"| {r['scenario']} | {verdict} | {_cell(why)} |")
    return "\n".join(lines) + "\n"
