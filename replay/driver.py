"""Drive a device through its AT port as a trace's client actions say, against the trace's
scripted server, and collect what it did in the lists the comparison reads.

The library calls map to AT commands (BEHAVIOUR.md): the configuration to AT+WSCFG and AT+WSOPEN,
`open` to AT+WSOPEN, `send` to AT+WSSEND (its data written at the moment the trace's call was
made, the command and prompt ahead of it), `destroy` and `stop` to AT+WSCLOSE (which destroys
the client, stopping it first). Time 0 is the moment AT+WSOPEN is written.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from esp_at.client import AtClient, Response
from esp_at.commands import quote
from esp_at.events import Urc, WsData
from replay.projection import (EVENT_OF_URC, FIN_SEND_APIS, LINK_ID, Item, frame_content,
                               frame_label, handshake_content)
from replay.trace import Action, Trace
from servers.script import ScriptServer, ServerRecord

HEX_SHOWN = 64
# AT+WSOPEN answers once the library connected or gave up (its 10 s attempt, a reconnect wait
# behind it: KD-2); this only bounds a device that never answers.
OPEN_ANSWER_S = 40.0
# A send's command and prompt go this long before the moment its data is due.
SEND_LEAD_S = 0.15
DATA_ANSWER_S = 15.0
CLOSE_ANSWER_S = 20.0
EVENT_WAIT_SLACK_S = 5.0     # past the trace's window, how long to wait for a triggering URC


@dataclass
class Driven:
    """What the device did, per list, and the AT exchange for the report."""

    lists: dict[str, list[Item]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    transcript: str = ""
    record: ServerRecord = field(default_factory=ServerRecord)  # the server's, at the end


def _ms(t: float, origin: float) -> float:
    return round((t - origin) * 1000, 1)


def wscfg(trace: Trace) -> str:
    c = trace.config
    return f"AT+WSCFG={LINK_ID},{c.ping_interval_sec},{c.pingpong_timeout_sec},{c.buffer_size}"


def wsopen(trace: Trace, port: int) -> str:
    c = trace.config
    fields = [str(LINK_ID), quote(f"ws://127.0.0.1:{port}{c.uri_path}")]
    if c.subprotocol:
        fields.append(quote(c.subprotocol))
    return "AT+WSOPEN=" + ",".join(fields)


def wssend(action: Action, fin_field: bool) -> str:
    command = f"AT+WSSEND={LINK_ID},{len(action.data)},{action.opcode}"
    if fin_field:
        command += f",,{int(action.fin)}"
    return command


def drive(trace: Trace, at: AtClient, server: ScriptServer) -> Driven:
    driven = Driven()
    response = at.cmd(wscfg(trace))
    if response.final != b"OK":
        driven.notes.append(f"{wscfg(trace)} answered {response.final!r}")
    at.begin_test()
    origin = time.monotonic()
    server.origin = origin
    results: list[Item] = []
    opened = at.cmd(wsopen(trace, server.port), timeout=OPEN_ANSWER_S)
    results.append(_result("AT+WSOPEN", opened, origin))
    for action in trace.actions[1:]:
        due = _due(trace, action, at, origin)
        if due is None:
            driven.notes.append(f"client_actions[{action.index}]: {action.trigger.words()} never "
                                f"came; the action was not run")
            break
        if action.kind == "send":
            results.append(_result("AT+WSSEND", _send(at, action, due), origin))
        elif action.kind in ("destroy", "stop"):
            time.sleep(max(0.0, due - time.monotonic()))
            results.append(_result("AT+WSCLOSE", at.cmd(f"AT+WSCLOSE={LINK_ID}",
                                                         timeout=CLOSE_ANSWER_S), origin))
        elif action.kind == "is_connected":
            time.sleep(max(0.0, due - time.monotonic()))
            at.cmd("AT+WSOPEN?")
    time.sleep(max(0.0, origin + trace.duration_ms / 1000 - time.monotonic()))
    record = server.record                       # what happened inside the trace's duration
    driven.record = ServerRecord(list(record.client_frames), list(record.tcp),
                                 list(record.handshakes), list(record.server_sent),
                                 list(record.payloads))
    driven.lists = {"urcs": _urcs(at, origin), "results": [r for r in results if r is not None],
                    **server_lists(driven.record, trace.config.buffer_size)}
    driven.transcript = at.transcript()
    return driven


def _send(at: AtClient, action: Action, due: float) -> Response:
    fin_field = action.api in FIN_SEND_APIS
    command = wssend(action, fin_field)
    if not action.data:                          # length 0 (profile current): no prompt
        time.sleep(max(0.0, due - time.monotonic()))
        return at.cmd(command, timeout=DATA_ANSWER_S)
    time.sleep(max(0.0, due - SEND_LEAD_S - time.monotonic()))
    return at.send_data(command, action.data, send_timeout=DATA_ANSWER_S, write_at=due)


def _result(command: str, response: Response, origin: float) -> Item | None:
    if response.final is None:
        return None
    at = response.final_at if response.final_at is not None else time.monotonic()
    return Item(f"{command} {response.final.decode('latin-1')}", _ms(at, origin))


def _due(trace: Trace, action: Action, at: AtClient, origin: float) -> float | None:
    """When the action is due (a time.monotonic()), waiting for its triggering URC if it has
    one; None when the URC does not come within the trace's duration."""
    trigger = action.trigger
    if trigger.event is None:
        return origin + (trigger.t or 0.0) / 1000
    deadline = origin + trace.duration_ms / 1000 + EVENT_WAIT_SLACK_S
    while time.monotonic() < deadline:
        seen = [t for event, t in zip(list(at.urc_history), list(at.urc_times))
                if _event_name(event) == trigger.event]
        if len(seen) >= trigger.nth:
            return seen[trigger.nth - 1] + trigger.delay_ms / 1000
        time.sleep(0.005)
    return None


def _event_name(event: object) -> str | None:
    if isinstance(event, Urc):
        return EVENT_OF_URC.get(event.name.decode("latin-1"))
    if isinstance(event, WsData):
        return "DATA"
    return None


def urc_item(event: object, t: float) -> Item | None:
    if isinstance(event, Urc):
        return Item(f"{event.name.decode('latin-1')}:{event.link_id}", t)
    if isinstance(event, WsData):
        data = event.data
        content = ({"data_hex": data.hex()} if len(data) <= HEX_SHOWN
                   else {"sha256": hashlib.sha256(data).hexdigest()})
        return Item(f"+WS_DATA:{event.link_id},{len(data)}", t, content=content)
    return None


def _urcs(at: AtClient, origin: float) -> list[Item]:
    items = [urc_item(event, _ms(t, origin))
             for event, t in zip(list(at.urc_history), list(at.urc_times))]
    return [i for i in items if i is not None]


def server_lists(record: ServerRecord, buffer_size: int) -> dict[str, list[Item]]:
    """The server's recording as the comparison's lists."""
    return {
        "handshakes": [Item(f"conn{h['conn']} {h['request_line']}", h["t"],
                            content=handshake_content(h)) for h in record.handshakes],
        "client_frames": [Item(frame_label(f), f["t"], content=frame_content(f, buffer_size))
                          for f in record.client_frames],
        "tcp": [Item(f"conn{x['conn']} {x['what']}", x["t"],
                     content=_tcp_content(x)) for x in record.tcp],
    }


def _tcp_content(x: Mapping) -> dict:
    return {"unparsed_bytes": x["unparsed_bytes"]} if x.get("unparsed_bytes") else {}
