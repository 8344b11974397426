"""The golden-trace replay: reading traces (and refusing bad ones in one line), the server that
plays their scripts, the AT view of a trace, the comparison, and a few short replays end to end
against the model."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replay import projection
from replay.compare import Difference, compare, compare_list
from replay.projection import Item, RunView
from replay.run import ModelOptions, model_device, replay_one
from replay.trace import TRACES_DIR, TraceError, load, load_all
from servers.script import ScriptServer
from wire.frames import OP_PING, FrameParser, encode_frame
from wire.handshake import accept_for, new_key

ROOT = Path(__file__).resolve().parents[2]
GOOD = TRACES_DIR / "1.2.3" / "open_echo.json"


def trace_file(tmp_path: Path, change) -> Path:
    data = json.loads(GOOD.read_text())
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


# ---- reading traces --------------------------------------------------------------------------------

def test_every_trace_of_both_libraries_loads():
    traces = load_all()
    assert len(traces) == 108
    assert {t.library for t in traces} == {"1.2.3", "1.8.0"}


@pytest.mark.parametrize("change,words", [
    (lambda d: d["server_script"].append({"step": "dance"}), "server_script[2]: unknown step 'dance'"),
    (lambda d: d["client_actions"].append({"action": "reboot", "t": 5}),
     "client_actions[3]: unknown action 'reboot'"),
    (lambda d: d["server_script"][0].update(colour="red"),
     "server_script[0]: unknown parameter(s) colour"),
    (lambda d: d.pop("observed"), "missing observed"),
    (lambda d: d["server_script"].append({"step": "send_frame", "opcode": 16}),
     "server_script[2]: opcode must be 0..15"),
    (lambda d: d["server_script"].append({"step": "drop_tcp", "how": "gently"}),
     "server_script[2]: drop_tcp how must be one of"),
    (lambda d: d["client_actions"][1].update(api="send_louder"),
     "client_actions[1]: unknown send api 'send_louder'"),
], ids=["step", "action", "parameter", "missing", "opcode", "drop", "api"])
def test_a_bad_trace_is_refused_in_one_line_naming_file_and_place(tmp_path, change, words):
    path = trace_file(tmp_path, change)
    with pytest.raises(TraceError) as caught:
        load(path)
    text = str(caught.value)
    assert str(path) in text and words in text and "\n" not in text, text


def test_a_file_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"scenario": ')
    with pytest.raises(TraceError, match=r"broken\.json: not JSON \(line 1"):
        load(path)


def test_the_cli_stops_on_a_bad_trace_with_one_line(tmp_path):
    folder = tmp_path / "1.2.3"
    folder.mkdir()
    (folder / "open_echo.json").write_text(
        json.dumps({**json.loads(GOOD.read_text()),
                    "server_script": [{"step": "handshake"}, {"step": "teleport"}]}))
    done = subprocess.run([sys.executable, "-m", "replay", "run", "--traces", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "server_script[1]: unknown step 'teleport'" in lines[0], lines


def test_frame_specs_encode_to_the_bytes_the_recorder_sent():
    """Every send_frame of every trace, as the trace's own server recorded writing it."""
    checked = 0
    for trace in load_all():
        sent = [s for s in trace.observed["server_sent"]
                if s["kind"] == "frame" and s["conn"] == 0 and s["desc"] not in ("PONG fin=1",
                                                                                 "CLOSE fin=1")]
        steps = [s for s in trace.script if s.kind == "send_frame" and s.runs_on(0)]
        for step, recorded in zip(steps, sent):
            data = step.frames[0].encode()
            assert (data[:64].hex(), len(data), step.frames[0].describe()) == (
                recorded["hex"], recorded["length"], recorded["desc"]), trace.name
            checked += 1
    assert checked == 80


# ---- the AT view of a trace ---------------------------------------------------------------------

def test_a_failed_open_ends_the_at_view_before_the_library_tries_again():
    trace = load(TRACES_DIR / "1.2.3" / "connect_refused.json")
    view = projection.run_view(trace, 1)
    assert [i.label for i in view.lists["urcs"]] == ["+WS_DISCONNECTED:0"]
    (result,) = view.lists["results"]
    assert result.label == "AT+WSOPEN ERROR"
    assert result.late_ms == trace.config.reconnect_timeout_ms / 2   # 1.2.3's half-wait
    assert projection.stop_latency_ms(load(TRACES_DIR / "1.8.0" / "connect_refused.json")) == 0


def test_urcs_are_the_at_layers_for_the_library_events():
    """Data frames print +WS_DATA, a close frame +WS_CLOSED; pings and reserved opcodes nothing."""
    echo = projection.run_view(load(GOOD), 1).lists["urcs"]
    assert [i.label for i in echo] == ["+WS_CONNECTED:0", "+WS_DATA:0,5", "+WS_DATA:0,7"]
    assert echo[1].content == {"data_hex": b"hello".hex()}
    op3 = projection.run_view(load(TRACES_DIR / "1.2.3" / "server_opcode_3.json"), 1)
    assert [i.label for i in op3.lists["urcs"]] == ["+WS_CONNECTED:0", "+WS_DATA:0,5"]
    closed = projection.run_view(load(TRACES_DIR / "1.2.3" / "server_close_tcp_held.json"), 1)
    assert [i.label for i in closed.lists["urcs"]] == ["+WS_CONNECTED:0", "+WS_CLOSED:0"]


def test_what_at_cannot_reach_is_named():
    reason = projection.unreachable(load(TRACES_DIR / "1.2.3" / "client_close_with_code.json"),
                                    fin_send=True)
    assert "esp_websocket_client_close" in reason
    partial = load(TRACES_DIR / "1.2.3" / "client_send_partial.json")
    assert projection.unreachable(partial, fin_send=True) is None
    assert "KD-12" in projection.unreachable(partial, fin_send=False)


# ---- the comparison ------------------------------------------------------------------------------

def _view(run: int, *items: tuple[str, float]) -> RunView:
    counted: dict[str, int] = {}
    out = []
    for label, t in items:
        counted[label] = counted.get(label, 0) + 1
        out.append(Item(label, t, f"{label} #{counted[label]}"))
    return RunView(run, {"client_frames": out})


WINDOWS = {"PING #1": (1000.0, 1002.0), "PING #2": (2000.0, 3004.0)}


def test_times_inside_the_window_and_tolerance_agree():
    views = [_view(1, ("PING", 1001), ("PING", 2002))]
    got = [Item("PING", 1010.0), Item("PING", 2010.0)]
    difference, run, worst = compare_list("client_frames", views, WINDOWS, got, tolerance_ms=10)
    assert difference is None and run == 1 and worst == 8.0


def test_a_time_outside_the_window_is_the_difference():
    views = [_view(1, ("PING", 1001), ("PING", 2002))]
    got = [Item("PING", 1030.0), Item("PING", 2010.0)]
    difference, _, _ = compare_list("client_frames", views, WINDOWS, got, tolerance_ms=10)
    assert isinstance(difference, Difference) and difference.index == 0
    assert "outside the trace's window 1000.0..1002.0" in difference.words()


def test_the_shape_of_any_recorded_run_is_accepted():
    """The library's 1 s loop makes runs differ (a ping one pass later): the device's shape may be
    any run's, its times inside each key's window over the runs."""
    views = [_view(1, ("PING", 1001)), _view(2, ("PING", 1001), ("PING", 3003))]
    difference, run, _ = compare_list("client_frames", views, WINDOWS,
                                      [Item("PING", 1001.0), Item("PING", 3000.0)], 10)
    assert difference is None and run == 2


def test_a_missing_item_and_different_content_are_differences():
    views = [RunView(1, {"client_frames": [Item("PING", 1001, "PING #1", {"masked": 1})],
                         "urcs": [], "results": [], "handshakes": [], "tcp": []})]
    verdict = compare(views, {"client_frames": WINDOWS},
                      {"client_frames": [Item("PING", 1001.0, content={"masked": 0})]})
    assert not verdict.agree and "masked differs" in verdict.first.words()
    verdict = compare(views, {"client_frames": WINDOWS}, {"client_frames": []})
    assert "missing" in verdict.first.words()


# ---- the server that plays a script -----------------------------------------------------------------

def _client(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
    key = new_key()
    sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nSec-WebSocket-Key: {key}\r\n\r\n"
                 .encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert accept_for(key).encode() in head, head
    return sock, head


def test_the_script_server_records_a_frame_split_in_two_writes():
    trace = load(GOOD)
    with ScriptServer(trace.script) as server:
        server.origin = time.monotonic()
        sock, _ = _client(server.port)
        frame = encode_frame(0x1, b"hello", mask=True, mask_key=b"abcd")
        sock.sendall(frame[:6])                  # the header and key, as transport_ws writes
        time.sleep(0.05)
        sock.sendall(frame[6:])                  # then the payload
        echoed = FrameParser().feed(sock.recv(4096))
        sock.close()
        time.sleep(0.1)
    (recorded,) = server.record.client_frames
    assert recorded["payload_hex"] == b"hello".hex() and recorded["masked"] == 1
    assert recorded["t"] - recorded["t_first_byte"] >= 40, recorded
    assert echoed[0].payload == b"hello"         # the echo_data policy
    assert [x["what"] for x in server.record.tcp][:3] == ["accept", "client_fin", "server_close"]


def test_the_script_server_answers_pings_and_notes_a_frame_cut_by_the_close():
    trace = load(TRACES_DIR / "1.2.3" / "ping_interval_1s.json")
    with ScriptServer(trace.script) as server:
        sock, _ = _client(server.port)
        sock.sendall(encode_frame(OP_PING, b"p", mask=True))
        pong = FrameParser().feed(sock.recv(4096))
        sock.sendall(encode_frame(0x2, b"x" * 50, mask=True)[:20])
        sock.close()
        time.sleep(0.1)
    assert pong[0].opcode == 0xA and pong[0].payload == b"p"
    assert server.record.client_frames[0]["rfc_issues"] == []
    fin = next(x for x in server.record.tcp if x["what"] == "client_fin")
    assert fin["unparsed_bytes"] == 20


def test_a_refused_port_refuses():
    trace = load(TRACES_DIR / "1.2.3" / "connect_refused.json")
    with ScriptServer(trace.script, listen=trace.listen) as server:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1.0)


# ---- end to end on the model ----------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_shipping_model_agrees_with_the_library_where_the_conforming_one_does_not():
    rsv = load(TRACES_DIR / "1.2.3" / "server_rsv1.json")
    shipping = replay_one(rsv, lambda t: model_device(t, ModelOptions("shipping", "1.2.3")),
                          "shipping", fin_send=False)
    assert shipping.agree, shipping.differences
    clean = replay_one(rsv, lambda t: model_device(t, ModelOptions("seed", "1.2.3")), "seed",
                       fin_send=True)
    assert [n for n in clean.notes if "first run" in n] == []    # no rerun: it is no timing
    assert clean.agree is False and "+WS_DISCONNECTED" in clean.first_difference


@pytest.mark.timeout(60)
def test_a_recording_of_the_model_compares_with_both_libraries(tmp_path):
    from fixtures.model_process import ModelProcess
    from replay import record
    model = ModelProcess(extra=("--firmware", "shipping"))
    url = model.start()
    try:
        left_out = record.record(url, tmp_path, only=["open_echo", "connect_refused"])
    finally:
        model.stop()
    assert "reconnect_timeout_ms 2000" in left_out["connect_refused"]
    recorded = json.loads((tmp_path / "open_echo.json").read_text())
    assert recorded["format"] == record.RECORDING_FORMAT
    assert [e["event"] for e in recorded["observed"]["events"]] == ["CONNECTED", "DATA", "DATA"]
    (row,) = record.compare_recording(tmp_path)
    assert row["1.2.3"]["behaves_alike"] and row["1.8.0"]["behaves_alike"], row
