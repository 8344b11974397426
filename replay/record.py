"""Record any device (a board, a model) through its AT port in the traces' format, and compare a
recording with both libraries' traces: which library does this firmware behave like, and where
does it differ from each.

A recording runs the same scenarios as the golden traces (their server scripts and client
actions, driven through AT as a replay is) against the device given by --at-port. What a device
shows through AT is less than the library's own events: the recording's `events` are read back
from the URCs (+WS_CONNECTED -> CONNECTED, +WS_DISCONNECTED -> DISCONNECTED, +WS_DATA -> a DATA
of a data frame, +WS_CLOSED -> the DATA of a close frame); the wire side (frames, TCP, handshakes)
is complete. Scenarios that set what no AT command can (a reconnect or network timeout, a
close() call) are left out, each with its reason.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from esp_at.client import AtClient
from replay import projection
from replay.compare import TOLERANCE_MS, compare
from replay.driver import Driven, drive, server_lists
from replay.projection import Item
from replay.trace import LIBRARY_DEFAULTS, LIBRARY_VERSIONS, TRACES_DIR, Trace, load, load_all
from servers.script import ScriptServer, ServerRecord

RECORDING_FORMAT = "esp-at-ws-conformance recording 1"


def unrecordable(trace: Trace) -> str | None:
    """Why a scenario cannot be recorded on a device through AT alone, or None."""
    reason = projection.unreachable(trace, fin_send=False)
    if reason is not None:
        return reason
    c, default = trace.config, LIBRARY_DEFAULTS
    if c.network_timeout_ms != default.network_timeout_ms:
        return (f"network_timeout_ms {c.network_timeout_ms} has no AT command (a device keeps "
                f"its library's {default.network_timeout_ms})")
    if c.reconnect_timeout_ms != default.reconnect_timeout_ms:
        return (f"reconnect_timeout_ms {c.reconnect_timeout_ms} has no AT command (a device keeps "
                f"its library's {default.reconnect_timeout_ms})")
    return None


def _event_of(item: Item) -> dict[str, Any]:
    """A URC read back as the library event it stands for (as far as AT shows it)."""
    name = item.label.split(":", 1)[0]
    if name == "+WS_CONNECTED":
        return {"t": item.t, "event": "CONNECTED"}
    if name == "+WS_DISCONNECTED":
        return {"t": item.t, "event": "DISCONNECTED"}
    if name == "+WS_CLOSED":
        return {"t": item.t, "event": "DATA", "op_code": 8, "from_urc": "+WS_CLOSED"}
    length = int(item.label.rsplit(",", 1)[1])
    return {"t": item.t, "event": "DATA", "data_len": length, **dict(item.content),
            "from_urc": "+WS_DATA"}


def recording(trace: Trace, driven: Driven, device: str, firmware: list[str]) -> dict[str, Any]:
    """One scenario as the traces' format holds it, from a run through AT."""
    record = driven.record
    return {
        "format": RECORDING_FORMAT,
        "scenario": trace.scenario,
        "description": trace.description,
        "library": f"device at {device}",
        "firmware": firmware,
        "client_config": dataclasses.asdict(trace.config),
        "client_config_explicit": dict(trace.explicit),
        "server": {"listen": trace.listen},
        "server_script": [dict(step.params) for step in trace.script],
        "client_actions": [dict(action.params) for action in trace.actions],
        "duration_ms": trace.duration_ms,
        "time_origin": "t=0 is the moment AT+WSOPEN was written to the AT port",
        "observed": {
            "events": [_event_of(i) for i in driven.lists["urcs"]],
            "urcs": [{"t": i.t, "urc": i.label, **dict(i.content)} for i in driven.lists["urcs"]],
            "results": [{"t": i.t, "result": i.label} for i in driven.lists["results"]],
            "client_frames": record.client_frames, "tcp": record.tcp,
            "handshakes": record.handshakes, "server_sent": record.server_sent,
            "returns": []},
        "runs": 1,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def record(at_url: str, out: Path, host: str = "127.0.0.1", only: Iterable[str] = (),
           progress: Callable[[str, str], None] = lambda scenario, what: None) -> dict[str, str]:
    """Record every recordable scenario on the device at `at_url` into `out`; returns, per
    scenario left out, why."""
    out.mkdir(parents=True, exist_ok=True)
    traces = load_all(TRACES_DIR, versions=(LIBRARY_VERSIONS[0],), only=only)
    left_out = {}
    at = AtClient.open(at_url)
    try:
        firmware = [line.decode(errors="replace") for line in at.cmd("AT+GMR").lines]
        for trace in traces:
            reason = unrecordable(trace)
            if reason is not None:
                left_out[trace.scenario] = reason
                progress(trace.scenario, f"left out: {reason}")
                continue
            with ScriptServer(trace.script, listen=trace.listen, host=host) as server:
                try:
                    driven = drive(trace, at, server)
                finally:
                    at.cmd("AT+WSCLOSE=0", timeout=20.0)
            data = recording(trace, driven, at_url, firmware)
            (out / f"{trace.scenario}.json").write_text(json.dumps(data, indent=1) + "\n")
            progress(trace.scenario, "recorded")
    finally:
        at.close()
    (out / "left_out.json").write_text(json.dumps(left_out, indent=1) + "\n")
    return left_out


# ---- comparing a recording with both libraries ------------------------------------------------

def lists_of(recorded: dict[str, Any]) -> dict[str, list[Item]]:
    """A recording's observation as the comparison's lists."""
    observed = recorded["observed"]
    server = ServerRecord(client_frames=observed["client_frames"], tcp=observed["tcp"],
                          handshakes=observed["handshakes"], server_sent=observed["server_sent"])
    urcs = [Item(u["urc"], u["t"], content={k: v for k, v in u.items()
                                             if k in ("data_hex", "sha256")})
            for u in observed["urcs"]]
    results = [Item(r["result"], r["t"]) for r in observed["results"]]
    buffer_size = recorded["client_config"]["buffer_size"]
    return {"urcs": urcs, "results": results, **server_lists(server, buffer_size)}


def compare_recording(folder: Path, tolerance_ms: float = TOLERANCE_MS) -> list[dict[str, Any]]:
    """Per recorded scenario and library version: the same behaviour (labels and contents), and
    the same timing within the trace's windows +-tolerance_ms."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        recorded = json.loads(path.read_text())
        if not isinstance(recorded, dict) or recorded.get("format") != RECORDING_FORMAT:
            continue                             # left_out.json, comparison.json
        got = lists_of(recorded)
        row: dict[str, Any] = {"scenario": recorded["scenario"]}
        for version in LIBRARY_VERSIONS:
            trace = load(TRACES_DIR / version / f"{recorded['scenario']}.json")
            views, windows = projection.run_views(trace), projection.windows(trace)
            shape = compare(views, windows, got, tolerance_ms=float("inf"))
            timed = compare(views, windows, got, tolerance_ms=tolerance_ms)
            row[version] = {"behaves_alike": shape.agree,
                            "timing_alike": timed.agree,
                            "first_difference": (shape.first or timed.first).words()
                            if not timed.agree else None}
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], folder: Path, left_out: dict[str, str],
             tolerance_ms: float) -> str:
    counts = {v: (sum(r[v]["behaves_alike"] for r in rows), sum(r[v]["timing_alike"] for r in rows))
              for v in LIBRARY_VERSIONS}
    lines = [f"# {folder}: which esp_websocket_client does this device behave like", "",
             f"{len(rows)} scenarios recorded, {len(left_out)} left out (they set what no AT "
             f"command can). Timing within the trace's window +-{tolerance_ms:g} ms.", ""]
    for version, (alike, timed) in counts.items():
        lines.append(f"- like {version}: {alike} of {len(rows)} in behaviour, {timed} also in "
                     f"timing")
    lines += ["", "| scenario | " + " | ".join(LIBRARY_VERSIONS) + " |",
              "|---|" + "---|" * len(LIBRARY_VERSIONS)]
    for row in rows:
        cells = []
        for version in LIBRARY_VERSIONS:
            v = row[version]
            cells.append("same" if v["timing_alike"] else
                         f"same behaviour, timing: {v['first_difference']}" if v["behaves_alike"]
                         else f"DIFFERS: {v['first_difference']}")
        lines.append(f"| {row['scenario']} | " + " | ".join(c.replace("|", "\\|") for c in cells)
                     + " |")
    if left_out:
        lines += ["", "Left out:", ""] + [f"- {s}: {why}" for s, why in sorted(left_out.items())]
    return "\n".join(lines) + "\n"
