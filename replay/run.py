"""Replay traces against a device: the model (started per trace with the options the trace's
configuration needs) or any device on an AT port; compare; write reports/replay.{md,json}.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from esp_at.client import AtClient
from replay import projection
from replay.compare import TOLERANCE_MS, Verdict, compare
from replay.driver import drive
from replay.model import fin_send_for, start_model
from replay.trace import LIBRARY_DEFAULTS, Trace
from servers.script import ScriptServer


@dataclass(frozen=True)
class ModelOptions:
    """The model a trace runs on: its firmware preset, library, profile and defects."""

    firmware: str = "seed"             # seed (conforming) or shipping
    library: str = "1.2.3"             # the traces' version, and shipping firmware's library
    defects: tuple[str, ...] = ()
    library_loop: bool = False         # the conforming model with that library's task loop

    @property
    def model_library(self) -> str | None:
        """The library whose loop the model runs (None: the conforming model's own)."""
        return self.library if self.firmware == "shipping" or self.library_loop else None

    def words(self) -> str:
        extra = "".join(f" --defect {d}" for d in self.defects)
        loop = " --library-loop" if self.library_loop else ""
        return f"--firmware {self.firmware} --library {self.library}{loop}{extra}"


@dataclass
class Record:
    """One trace's replay, as the report lists it."""

    scenario: str
    library: str                       # the trace's library version
    model: str                         # the model's options, or the device replayed
    reachable: bool
    agree: bool | None                 # None: not reachable through AT
    first_difference: str | None
    reason: str | None                 # why not reachable
    settings: list[str]                # what was set outside AT (model options) for this trace
    runs_matched: dict[str, int | None]
    worst_ms: float
    seconds: float
    differences: list[str]
    notes: list[str]

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def replay_one(trace: Trace, device: Callable[[Trace], Any], model: str, fin_send: bool,
               settings: Sequence[str] = ()) -> Record:
    """Replay one trace on the device `device(trace)` opens (a context manager giving its AT
    port URL), or record why it cannot be. A replay that differs only in timing is run once
    more (this host may have stalled a few ms); the record says so, and keeps the first
    difference."""
    reason = projection.unreachable(trace, fin_send)
    if reason is not None:
        return Record(trace.scenario, trace.library, model, False, None, None, reason, [], {},
                      0.0, 0.0, [], [])
    record, verdict = _replay(trace, device, model, settings)
    if verdict.agree or not all(d.timing_only for d in verdict.differences):
        return record
    again, _ = _replay(trace, device, model, settings)
    again.notes.insert(0, f"the first run differed only in timing ({record.first_difference}); "
                          f"run again: {'agreed' if again.agree else 'differed again'}")
    again.seconds = round(again.seconds + record.seconds, 1)
    return again


def _replay(trace: Trace, device: Callable[[Trace], Any], model: str,
            settings: Sequence[str]) -> tuple[Record, Verdict]:
    started = time.monotonic()
    with ScriptServer(trace.script, listen=trace.listen) as server, device(trace) as url:
        at = AtClient.open(url)
        try:
            driven = drive(trace, at, server)
        finally:
            _leave_clean(at)
            at.close()
    verdict: Verdict = compare(projection.run_views(trace), projection.windows(trace),
                               driven.lists)
    return Record(trace.scenario, trace.library, model, True, verdict.agree,
                  verdict.first.words() if verdict.first else None, None, list(settings),
                  dict(verdict.runs_matched), round(verdict.worst_ms, 1),
                  round(time.monotonic() - started, 1),
                  [d.words() for d in verdict.differences], driven.notes), verdict


def _leave_clean(at: AtClient) -> None:
    try:
        at.cmd("AT+WSCLOSE=0", timeout=20.0)
    except Exception:            # the device is the run's subject; a dead one is in the record
        pass


def model_settings(trace: Trace) -> list[str]:
    """What a trace sets that has no AT command, set through the model's own options."""
    c = trace.config
    out = []
    if c.network_timeout_ms != LIBRARY_DEFAULTS.network_timeout_ms:
        out.append(f"network timeout {c.network_timeout_ms} ms (model option)")
    if c.reconnect_timeout_ms != LIBRARY_DEFAULTS.reconnect_timeout_ms:
        out.append(f"reconnect timeout {c.reconnect_timeout_ms} ms (model option)")
    if projection.needs_fin(trace):
        out.append("profile current (AT+WSSEND <fin>)")
    return out


@contextmanager
def model_device(trace: Trace, options: ModelOptions) -> Iterator[str]:
    with start_model(trace, options) as url:
        yield url


def replay_model(traces: Iterable[Trace], options: ModelOptions,
                 progress: Callable[[Record], None] = lambda r: None) -> list[Record]:
    records = []
    for trace in traces:
        record = replay_one(trace, lambda t: model_device(t, options), options.words(),
                            fin_send_for(options), model_settings(trace))
        progress(record)
        records.append(record)
    return records


# ---- reports ---------------------------------------------------------------------------------------

def summary(records: Sequence[Record]) -> dict[str, int]:
    return {"traces": len(records),
            "agree": sum(r.agree is True for r in records),
            "differ": sum(r.agree is False for r in records),
            "not_reachable": sum(not r.reachable for r in records)}


def write_reports(records: Sequence[Record], out: Path, title: str, stem: str = "replay") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(
        {"title": title, "tolerance_ms": TOLERANCE_MS, "summary": summary(records),
         "records": [r.as_json() for r in records]}, indent=1) + "\n")
    (out / f"{stem}.md").write_text(markdown(records, title))


def markdown(records: Sequence[Record], title: str) -> str:
    s = summary(records)
    lines = [f"# {title}", "",
             f"{s['traces']} traces: {s['agree']} agree, {s['differ']} differ, "
             f"{s['not_reachable']} not reachable through AT. Times must lie in the trace's "
             f"window (its runs' min..max) +-{TOLERANCE_MS:g} ms.", "",
             "| library | scenario | model | agree | first difference, or why not reachable |",
             "|---|---|---|---|---|"]
    for r in records:
        verdict = "not reachable" if not r.reachable else "agree" if r.agree else "DIFFER"
        why = r.reason if not r.reachable else (r.first_difference or
                                                f"worst time error {r.worst_ms} ms")
        settings = f" ({'; '.join(r.settings)})" if r.settings else ""
        lines.append(f"| {r.library} | {r.scenario} | {r.model}{settings} | {verdict} | "
                     f"{_cell(why)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
