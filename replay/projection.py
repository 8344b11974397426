"""What a trace says an ESP-AT device must show: the library's recorded behaviour seen through
ESP-AT's AT layer (BEHAVIOUR.md), and whether a trace can be driven through AT at all.

The AT layer prints one URC per library event: CONNECTED -> +WS_CONNECTED, DISCONNECTED ->
+WS_DISCONNECTED, a DATA event of a data frame (opcode 0, 1, 2) -> one +WS_DATA with its bytes, a
DATA event of a close frame -> +WS_CLOSED; pings, pongs, reserved opcodes, ERROR, CLOSED and the
task events print nothing. A failed AT+WSOPEN (the first DISCONNECTED before any CONNECTED) makes
the AT layer destroy the client: nothing of the library's later attempts happens on a device, so
the expectation ends where the next attempt would begin.

Each expected item keeps its trace key (`CONNECTED #1`, `conn0 PING fin=1 len=0 #2`): its time
window is the trace's spread over the recorded runs (`timing_spread_ms`).
"""
from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from replay.trace import Trace

LINK_ID = 0
DATA_OPCODES = (0, 1, 2)
OP_CLOSE = 8
# What ESP-AT's AT layer can reach of the library's API (BEHAVIOUR.md "Close", "Sending").
AT_SEND_APIS = ("send_text", "send_bin", "send_with_opcode")
FIN_SEND_APIS = ("send_text_partial", "send_bin_partial", "send_cont_msg", "send_fin")
URC_OF_EVENT = {"CONNECTED": "+WS_CONNECTED", "DISCONNECTED": "+WS_DISCONNECTED"}
EVENT_OF_URC = {"+WS_CONNECTED": "CONNECTED", "+WS_DISCONNECTED": "DISCONNECTED",
                "+WS_DATA": "DATA", "+WS_CLOSED": "DATA"}
# The lists compared, in the order a report names them.
LISTS = ("urcs", "results", "handshakes", "client_frames", "tcp")


@dataclass(frozen=True)
class Item:
    """One thing that happened: `label` is what must match exactly, `key` the trace's name for
    its timing, `detail` what a report shows of it (bytes as hex), `content` extra facts that
    must match too (a payload's hash, a frame's flags)."""

    label: str
    t: float
    key: str = ""
    content: Mapping[str, Any] = field(default_factory=dict)
    late_ms: float = 0.0       # may come this much after its window (a stop's latency)

    def words(self) -> str:
        return f"{self.label} at {self.t:.1f} ms"


def _counted(labels_times: Sequence[tuple[str, float, dict]]) -> list[tuple[str, float, dict, str]]:
    seen: dict[str, int] = {}
    out = []
    for label, t, content in labels_times:
        seen[label] = seen.get(label, 0) + 1
        out.append((label, t, content, f"{label} #{seen[label]}"))
    return out


# ---- reachability ---------------------------------------------------------------------------

def unreachable(trace: Trace, fin_send: bool) -> str | None:
    """Why the trace cannot be driven through ESP-AT's AT commands, or None when it can.
    fin_send: the device takes AT+WSSEND's <fin> and sends an empty final continuation (the
    development line's profile, without KD-12)."""
    config = trace.config
    if config.disable_pingpong_discon:
        return "disable_pingpong_discon has no AT form: ESP-AT always aborts on a pong timeout"
    if config.disable_auto_reconnect:
        return "disable_auto_reconnect has no AT form: ESP-AT always reconnects after errors"
    for action in trace.actions[1:]:
        if action.kind in ("close", "close_plain"):
            return (f"client_actions[{action.index}] {action.kind}: ESP-AT never calls "
                    f"esp_websocket_client_close*; AT+WSCLOSE destroys the client with no close "
                    f"frame, and AT+WSSEND opcode 8 is send_with_opcode (BEHAVIOUR.md Close)")
        if action.kind == "send" and action.api in FIN_SEND_APIS and not fin_send:
            return (f"client_actions[{action.index}] {action.api}: a send with FIN clear or an "
                    f"empty final continuation needs AT+WSSEND's <fin> (profile current), and "
                    f"on the shipping development line opcode 0 with fin 1 is refused (KD-12)")
        if action.trigger.event is not None and action.trigger.event not in EVENT_OF_URC.values():
            return (f"client_actions[{action.index}] waits for {action.trigger.event}, an event "
                    f"the AT layer prints nothing for")
    return None


def needs_fin(trace: Trace) -> bool:
    return any(a.kind == "send" and a.api in FIN_SEND_APIS for a in trace.actions)


# ---- the expectation, run by run ----------------------------------------------------------------

@dataclass(frozen=True)
class RunView:
    """One recorded run seen through AT: per list, the items in order."""

    run: int
    lists: Mapping[str, list[Item]]


def _cut(events: Sequence[tuple[float, str]]) -> float | None:
    """Where a failed open ends the AT view: the start of the attempt after the first
    DISCONNECTED that came before any CONNECTED (None: the open succeeded)."""
    failed_at = None
    for t, label in events:
        if label == "CONNECTED" and failed_at is None:
            return None
        if label == "DISCONNECTED" and failed_at is None:
            failed_at = t
        elif label == "BEFORE_CONNECT" and failed_at is not None:
            return t
    return float("inf") if failed_at is not None else None


def _event_labels(trace: Trace, run: int) -> list[tuple[float, str]]:
    if run == 1 or not trace.runs_detail:
        return [(e["t"], _event_label(e)) for e in trace.observed["events"]]
    return [(t, label) for t, label in trace.runs_detail[run - 1]["events"]]


def _event_label(e: Mapping[str, Any]) -> str:
    if e["event"] != "DATA":
        return e["event"]
    return (f"DATA op={e['op_code']} fin={e['fin']} off={e['payload_offset']} "
            f"len={e['data_len']}/{e['payload_len']}")


_DATA = re.compile(r"DATA op=(\d+) fin=(\d) off=(\d+) len=(\d+)/(\d+)")


def _urcs(trace: Trace, run: int, cut: float | None) -> list[Item]:
    """The URCs the AT layer prints for the run's events (content from run 1's data)."""
    labels = _event_labels(trace, run)
    contents = [_data_content(e) for e in trace.observed["events"]] if run == 1 else None
    out = []
    for index, (label, t, _, key) in enumerate(_counted([(l, t, {}) for t, l in labels])):
        if cut is not None and t >= cut:
            break
        content = contents[index] if contents is not None else {}
        match = _DATA.fullmatch(label)
        if label in URC_OF_EVENT:
            out.append(Item(f"{URC_OF_EVENT[label]}:{LINK_ID}", t, key))
        elif match and int(match.group(1)) in DATA_OPCODES:
            out.append(Item(f"+WS_DATA:{LINK_ID},{match.group(4)}", t, key, content))
        elif match and int(match.group(1)) == OP_CLOSE:
            out.append(Item(f"+WS_CLOSED:{LINK_ID}", t, key))
    return out


def _data_content(e: Mapping[str, Any]) -> dict:
    if e.get("event") != "DATA":
        return {}
    if "data_sha256" in e:
        return {"sha256": e["data_sha256"]}
    return {"data_hex": e.get("data_hex", "")}


def _listed(trace: Trace, run: int, name: str) -> list[tuple[float, str]]:
    if run == 1 or not trace.runs_detail:
        return [(x["t"], label) for x, label in zip(trace.observed[name],
                                                    _observed_labels(trace, name))]
    return [(t, label) for t, label in trace.runs_detail[run - 1][name]]


def _observed_labels(trace: Trace, name: str) -> list[str]:
    items = trace.observed[name]
    if name == "client_frames":
        return [frame_label(f) for f in items]
    if name == "tcp":
        return [f"conn{x['conn']} {x['what']}" for x in items]
    if name == "handshakes":
        return [f"conn{x['conn']} {x['request_line']}" for x in items]
    if name == "returns":
        return [f"{x['call']}={x['value']}" for x in items]
    raise KeyError(name)


_NAMES = {0: "CONT", 1: "TEXT", 2: "BIN", 8: "CLOSE", 9: "PING", 10: "PONG"}


def frame_label(f: Mapping[str, Any]) -> str:
    name = _NAMES.get(f["opcode"], f"OP{f['opcode']}")
    return f"conn{f['conn']} {name} fin={f['fin']} len={f['length']}"


def frame_content(f: Mapping[str, Any], buffer_size: int | None = None) -> dict:
    """What of a client frame must match besides its label. A pong longer than buffer_size
    carries bytes read past the receive buffer (KD-11): only its first buffer_size bytes are
    defined, so only they are compared."""
    content = {"rsv": f["rsv"], "masked": f["masked"], "len_encoding": f["len_encoding"],
               "rfc_issues": tuple(f.get("rfc_issues", ()))}
    if f["opcode"] == 10 and buffer_size is not None and f["length"] > buffer_size:
        content["defined_prefix_hex"] = f["payload_hex"][:2 * min(buffer_size, 64)]
    else:
        content["sha256"] = f["sha256"]
    return content


def handshake_content(h: Mapping[str, Any]) -> dict:
    """Header names in wire order, values with the port and the key abstracted."""
    headers = []
    for name, value in h["headers"]:
        if name.lower() == "host":
            value = re.sub(r":\d+$", ":{port}", value)
        elif name.lower() == "sec-websocket-key":
            value = "{fresh 16-byte key}" if _is_key(value) else value
        headers.append(f"{name}: {value}")
    return {"headers": tuple(headers)}


def _is_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 16
    except ValueError:
        return False


def _results(trace: Trace, run: int, cut: float | None) -> list[Item]:
    """The final result of each AT command the actions map to: AT+WSOPEN's OK (when CONNECTED
    came) or ERROR; SEND OK or ERROR per send; OK per AT+WSCLOSE."""
    events = _event_labels(trace, run)
    counted = _counted([(label, t, {}) for t, label in events])
    out = []
    connected = next(((t, key) for label, t, _, key in counted if label == "CONNECTED"
                      and (cut is None or t < cut)), None)
    if connected is not None:
        out.append(Item("AT+WSOPEN OK", connected[0], connected[1]))
    else:
        failed = next(((t, key) for label, t, _, key in counted if label == "DISCONNECTED"),
                      None)
        if failed is not None:
            out.append(Item("AT+WSOPEN ERROR", failed[0], failed[1],
                            late_ms=stop_latency_ms(trace)))
    returns = _counted([(label, t, {}) for t, label in _listed(trace, run, "returns")])
    for label, t, _, key in returns:
        call, _, value = label.partition("=")
        if call in AT_SEND_APIS + FIN_SEND_APIS:
            out.append(Item("AT+WSSEND " + ("SEND OK" if int(value) >= 0 else "ERROR"), t, key))
        elif call in ("destroy", "stop"):
            out.append(Item("AT+WSCLOSE OK", t, key))
    return out


def stop_latency_ms(trace: Trace) -> float:
    """How long the AT layer's destroy of a client that just failed may block: 1.2.3 sleeps
    half the reconnect wait per loop pass and sees the stop only after it (C123:1040); 1.8.0's
    wait wakes on the stop (C180: REQUESTED_STOP_BIT)."""
    return trace.config.reconnect_timeout_ms / 2 if trace.library == "1.2.3" else 0.0


def run_view(trace: Trace, run: int) -> RunView:
    cut = _cut(_event_labels(trace, run))
    buffer_size = trace.config.buffer_size
    lists: dict[str, list[Item]] = {"urcs": _urcs(trace, run, cut),
                                    "results": _results(trace, run, cut)}
    for name in ("handshakes", "client_frames", "tcp"):
        listed = _listed(trace, run, name)
        observed = trace.observed[name] if run == 1 else None
        items = []
        for index, (label, t, _, key) in enumerate(_counted([(l, t, {}) for t, l in listed])):
            if cut is not None and t >= cut:
                break
            content: dict = {}
            if observed is not None:
                if name == "client_frames":
                    content = frame_content(observed[index], buffer_size)
                elif name == "handshakes":
                    content = handshake_content(observed[index])
                elif name == "tcp" and observed[index].get("unparsed_bytes"):
                    content = {"unparsed_bytes": observed[index]["unparsed_bytes"]}
            items.append(Item(label, t, key, content))
        lists[name] = items
    return RunView(run, lists)


def run_views(trace: Trace) -> list[RunView]:
    runs = max(1, len(trace.runs_detail))
    return [run_view(trace, run) for run in range(1, runs + 1)]


def windows(trace: Trace) -> dict[str, dict[str, tuple[float, float]]]:
    """Per list, per key: (min, max) of its time over the runs that had it. URCs and results
    take their events' windows (and the returns' for sends and closes)."""
    spread = trace.spread
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for name in ("events", "client_frames", "tcp", "handshakes", "returns"):
        items = spread.get(name, {}).get("items", [])
        out[name] = {it["key"]: (it["min"], it["max"]) for it in items}
    out["urcs"] = out["events"]
    out["results"] = {**out["events"], **out["returns"]}
    return out
