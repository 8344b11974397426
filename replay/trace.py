"""A golden trace (traces/FORMAT.md) read into typed records, checked as it is read.

A trace file that is not JSON, lacks a key, or names a step, action or parameter the format does
not have raises TraceError with one line naming the file and the place (`server_script[2]`,
`client_actions[1]`), never a KeyError deep inside a replay. Frame specs are built into bytes
here, so the server that plays a script and the checks that read one agree on every byte.
"""
from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wire.frames import apply_mask

TRACES_DIR = Path(__file__).resolve().parent.parent / "traces" / "esp_websocket_client"
LIBRARY_VERSIONS = ("1.2.3", "1.8.0")
DEFAULT_MASK_KEY = bytes.fromhex("37fa213d")


class TraceError(ValueError):
    """A trace file that cannot be replayed; str() is one line naming the file and the place."""


# ---- frames -------------------------------------------------------------------------------------

FRAME_KEYS = {"opcode", "fin", "rsv", "masked", "mask_key_hex", "payload_hex", "payload_text",
              "length", "fill", "len_encoding", "declared_length", "truncate_to"}
_LEN_FORMS = {"min": None, "7": 7, "16": 16, "64": 64}


@dataclass(frozen=True)
class FrameSpec:
    """One frame a script sends, with every liberty the format allows (reserved opcodes, RSV
    bits, a mask, a long length form, a lying length field, a cut)."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    masked: bool = False
    mask_key: bytes = DEFAULT_MASK_KEY
    len_form: int | None = None          # None: the minimal form
    declared_length: int | None = None   # None: the real length
    truncate_to: int | None = None
    payload_template: str | None = None  # payload_text with `{i}` (periodic frames)

    def with_index(self, i: int) -> "FrameSpec":
        if self.payload_template is None:
            return self
        text = self.payload_template.replace("{i}", str(i))
        return FrameSpec(self.opcode, text.encode(), self.fin, self.rsv, self.masked,
                         self.mask_key, self.len_form, self.declared_length, self.truncate_to)

    def encode(self) -> bytes:
        length = len(self.payload) if self.declared_length is None else self.declared_length
        form = self.len_form or (7 if length < 126 else 16 if length < 1 << 16 else 64)
        first = (0x80 if self.fin else 0) | ((self.rsv & 7) << 4) | (self.opcode & 0xF)
        mask_bit = 0x80 if self.masked else 0
        if form == 7:
            head = struct.pack("!BB", first, mask_bit | (length & 0x7F))
        elif form == 16:
            head = struct.pack("!BBH", first, mask_bit | 126, length & 0xFFFF)
        else:
            head = struct.pack("!BBQ", first, mask_bit | 127, length)
        body = self.payload
        if self.masked:
            head += self.mask_key
            body = apply_mask(body, self.mask_key)
        data = head + body
        return data if self.truncate_to is None else data[:self.truncate_to]

    def describe(self) -> str:
        """As the trace recorder names a frame it sent: `TEXT fin=1 len16`, `OP3 fin=1`."""
        names = {0: "CONT", 1: "TEXT", 2: "BIN", 8: "CLOSE", 9: "PING", 10: "PONG"}
        words = [names.get(self.opcode, f"OP{self.opcode}"), f"fin={int(self.fin)}"]
        if self.rsv:
            words.append(f"rsv={self.rsv}")
        if self.masked:
            words.append("masked")
        if self.len_form in (16, 64):
            words.append(f"len{self.len_form}")
        return " ".join(words)


def _payload(where: str, spec: Mapping[str, Any], prefix: str = "payload") -> bytes | None:
    """payload_hex / payload_text / length+fill (and data_* for client actions)."""
    hex_key, text_key = f"{prefix}_hex", f"{prefix}_text"
    if hex_key in spec:
        try:
            return bytes.fromhex(spec[hex_key])
        except (TypeError, ValueError):
            raise TraceError(f"{where}: {hex_key} is not hex: {spec[hex_key]!r}") from None
    if text_key in spec:
        return str(spec[text_key]).encode()
    if "length" in spec:
        return _filled(where, spec["length"], spec.get("fill", "00"))
    return None


def _filled(where: str, length: Any, fill: Any) -> bytes:
    if not isinstance(length, int) or length < 0:
        raise TraceError(f"{where}: length must be a whole number, not {length!r}")
    if fill == "seq":
        return bytes(k & 0xFF for k in range(length))
    if isinstance(fill, str) and re.fullmatch(r"[0-9a-fA-F]{2}", fill):
        return bytes.fromhex(fill) * length
    raise TraceError(f"{where}: fill must be one hex byte or \"seq\", not {fill!r}")


def frame_spec(where: str, spec: Any) -> FrameSpec:
    if not isinstance(spec, Mapping):
        raise TraceError(f"{where}: a frame spec must be an object, not {spec!r}")
    _known(where, spec, FRAME_KEYS | {"step", "conn", "at_ms", "after_ms"})
    opcode = spec.get("opcode")
    if not isinstance(opcode, int) or not 0 <= opcode <= 15:
        raise TraceError(f"{where}: opcode must be 0..15, not {opcode!r}")
    form = spec.get("len_encoding", "min")
    if form not in _LEN_FORMS:
        raise TraceError(f"{where}: len_encoding must be one of {sorted(_LEN_FORMS)}, not {form!r}")
    rsv = spec.get("rsv", 0)
    if not isinstance(rsv, int) or not 0 <= rsv <= 7:
        raise TraceError(f"{where}: rsv must be 0..7, not {rsv!r}")
    try:
        key = bytes.fromhex(spec.get("mask_key_hex", DEFAULT_MASK_KEY.hex()))
    except ValueError:
        key = b""
    if len(key) != 4:
        raise TraceError(f"{where}: mask_key_hex must be 4 bytes of hex")
    template = spec.get("payload_text") if "{i}" in str(spec.get("payload_text", "")) else None
    return FrameSpec(opcode=opcode, payload=_payload(where, spec) or b"",
                     fin=bool(spec.get("fin", True)), rsv=rsv, masked=bool(spec.get("masked")),
                     mask_key=key, len_form=_LEN_FORMS[form],
                     declared_length=spec.get("declared_length"),
                     truncate_to=spec.get("truncate_to"), payload_template=template)


# ---- the server script ---------------------------------------------------------------------------

COMMON_STEP_KEYS = {"step", "conn", "at_ms", "after_ms"}
STEP_KEYS: dict[str, set[str]] = {
    "read_request": set(),
    "handshake": {"status", "reason", "accept", "headers", "extra_headers", "extra_bytes_hex",
                  "extra_frames", "delay_ms"},
    "send_frame": FRAME_KEYS,
    "send_frames": {"frames"},
    "send_raw": {"hex", "desc"},
    "close": {"code", "reason", "reason_hex", "payload_hex"},
    "answer_pings": {"delay_ms", "never"},
    "echo_data": {"enabled"},
    "on_client_close": {"reply", "then", "delay_ms", "reply_when_server_closed"},
    "periodic": {"every_ms", "for_ms", "count", "frame"},
    "wait": {"ms"},
    "wait_for": {"what", "opcode", "nth", "event", "timeout_ms", "delay_ms"},
    "hold": {"ms"},
    "drop_tcp": {"how"},
}
DROP_HOWS = ("close", "fin", "rst")
CLOSE_THENS = ("close_tcp", "fin", "rst", "hold")
WAIT_FOR_WHATS = ("client_frame", "client_eof", "event")


@dataclass(frozen=True)
class Step:
    """One server step: its kind, which connections run it, when, and its parameters (checked)."""

    kind: str
    params: Mapping[str, Any]
    index: int
    conn: Any = "*"
    at_ms: float | None = None
    after_ms: float | None = None
    frames: tuple[FrameSpec, ...] = ()   # send_frame, send_frames, periodic, extra_frames

    def runs_on(self, conn: int) -> bool:
        """The `conn` filter: "*", an index, a list of indexes, or ">=N"."""
        want = self.conn
        if want == "*":
            return True
        if isinstance(want, int):
            return conn == want
        if isinstance(want, list):
            return conn in want
        return conn >= int(want[2:])


def _step(where: str, raw: Any, index: int) -> Step:
    if not isinstance(raw, Mapping) or "step" not in raw:
        raise TraceError(f"{where}: a step must be an object with a \"step\" key, not {raw!r}")
    kind = raw["step"]
    if kind not in STEP_KEYS:
        raise TraceError(f"{where}: unknown step {kind!r} (known: {', '.join(sorted(STEP_KEYS))})")
    _known(where, raw, STEP_KEYS[kind] | COMMON_STEP_KEYS)
    conn = raw.get("conn", "*")
    if not (conn == "*" or isinstance(conn, int)
            or (isinstance(conn, list) and all(isinstance(c, int) for c in conn))
            or (isinstance(conn, str) and re.fullmatch(r">=\d+", conn))):
        raise TraceError(f"{where}: conn must be \"*\", an index, a list or \">=N\", not {conn!r}")
    frames: tuple[FrameSpec, ...] = ()
    if kind == "send_frame":
        frames = (frame_spec(where, raw),)
    elif kind == "send_frames":
        frames = tuple(frame_spec(f"{where}.frames[{i}]", f) for i, f in
                       enumerate(_list(where, raw.get("frames"), "frames")))
    elif kind == "periodic":
        frames = (frame_spec(f"{where}.frame", raw.get("frame")),)
        if "every_ms" not in raw or ("for_ms" not in raw and "count" not in raw):
            raise TraceError(f"{where}: periodic needs every_ms and for_ms or count")
    elif kind == "handshake":
        frames = tuple(frame_spec(f"{where}.extra_frames[{i}]", f) for i, f in
                       enumerate(raw.get("extra_frames", [])))
    elif kind == "drop_tcp" and raw.get("how", "close") not in DROP_HOWS:
        raise TraceError(f"{where}: drop_tcp how must be one of {DROP_HOWS}, not {raw['how']!r}")
    elif kind == "on_client_close" and raw.get("then", "close_tcp") not in CLOSE_THENS:
        raise TraceError(f"{where}: on_client_close then must be one of {CLOSE_THENS}")
    elif kind == "wait_for" and raw.get("what") not in WAIT_FOR_WHATS:
        raise TraceError(f"{where}: wait_for what must be one of {WAIT_FOR_WHATS}, "
                         f"not {raw.get('what')!r}")
    elif kind == "send_raw":
        try:
            bytes.fromhex(raw.get("hex", ""))
        except ValueError:
            raise TraceError(f"{where}: send_raw hex is not hex") from None
    return Step(kind=kind, params=dict(raw), index=index, conn=conn, at_ms=raw.get("at_ms"),
                after_ms=raw.get("after_ms"), frames=frames)


# ---- client configuration and actions ----------------------------------------------------------

CONFIG_KEYS = {"uri_path", "subprotocol", "ping_interval_sec", "pingpong_timeout_sec",
               "disable_pingpong_discon", "buffer_size", "network_timeout_ms",
               "reconnect_timeout_ms", "disable_auto_reconnect"}
ACTION_KEYS: dict[str, set[str]] = {
    "open": set(),
    "send": {"api", "opcode", "fin", "data_text", "data_hex", "length", "fill", "timeout_ms"},
    "close": {"code", "reason", "reason_hex", "timeout_ms"},
    "close_plain": {"timeout_ms"},
    "stop": set(),
    "destroy": set(),
    "is_connected": set(),
}
SEND_APIS = ("send_text", "send_bin", "send_with_opcode", "send_text_partial", "send_bin_partial",
             "send_cont_msg", "send_fin")
EVENTS = ("ERROR", "CONNECTED", "DISCONNECTED", "DATA", "CLOSED", "BEFORE_CONNECT", "BEGIN",
          "FINISH")


@dataclass(frozen=True)
class ClientConfig:
    uri_path: str = "/"
    subprotocol: str | None = None
    ping_interval_sec: int = 10
    pingpong_timeout_sec: int = 120
    disable_pingpong_discon: bool = False
    buffer_size: int = 1024
    network_timeout_ms: int = 10000
    reconnect_timeout_ms: int = 10000
    disable_auto_reconnect: bool = False


LIBRARY_DEFAULTS = ClientConfig()    # esp_websocket_client's own (FORMAT.md client_config)


@dataclass(frozen=True)
class Trigger:
    """When an action happens: at t ms, or delay_ms after the nth event of a name."""

    t: float | None = None
    event: str | None = None
    nth: int = 1
    delay_ms: float = 0.0

    def words(self) -> str:
        if self.event is None:
            return f"at {self.t:g} ms"
        return f"{self.delay_ms:g} ms after {self.event} #{self.nth}"


@dataclass(frozen=True)
class Action:
    kind: str
    trigger: Trigger
    index: int
    api: str | None = None
    opcode: int | None = None
    fin: bool = True
    data: bytes = b""
    params: Mapping[str, Any] = field(default_factory=dict)

    def words(self) -> str:
        what = self.kind if self.api is None else f"{self.api}(opcode {self.opcode}, " \
                                                  f"fin {int(self.fin)}, {len(self.data)} bytes)"
        return f"{what} {self.trigger.words()}"


# (opcode, fin) -> the API the driver would call when the action names none (FORMAT.md).
def _derived_api(opcode: int, fin: bool) -> str:
    if opcode == 1:
        return "send_text" if fin else "send_text_partial"
    if opcode == 2:
        return "send_bin" if fin else "send_bin_partial"
    if opcode == 0:
        return "send_fin" if fin else "send_cont_msg"
    return "send_with_opcode"


def _action(where: str, raw: Any, index: int) -> Action:
    if not isinstance(raw, Mapping) or "action" not in raw:
        raise TraceError(f"{where}: an action must be an object with an \"action\" key")
    kind = raw["action"]
    if kind not in ACTION_KEYS:
        raise TraceError(f"{where}: unknown action {kind!r} "
                         f"(known: {', '.join(sorted(ACTION_KEYS))})")
    _known(where, raw, ACTION_KEYS[kind] | {"action", "t", "after_event"})
    if ("t" in raw) == ("after_event" in raw):
        raise TraceError(f"{where}: an action needs exactly one of t and after_event")
    if "t" in raw:
        trigger = Trigger(t=float(raw["t"]))
    else:
        after = raw["after_event"]
        if not isinstance(after, Mapping) or after.get("event") not in EVENTS:
            raise TraceError(f"{where}: after_event needs an event of {EVENTS}, not {after!r}")
        _known(f"{where}.after_event", after, {"event", "nth", "delay_ms"})
        trigger = Trigger(event=after["event"], nth=int(after.get("nth", 1)),
                          delay_ms=float(after.get("delay_ms", 0)))
    if kind != "send":
        return Action(kind=kind, trigger=trigger, index=index, params=dict(raw))
    opcode = raw.get("opcode")
    if not isinstance(opcode, int) or not 0 <= opcode <= 15:
        raise TraceError(f"{where}: send needs an opcode 0..15, not {opcode!r}")
    fin = bool(raw.get("fin", True))
    api = raw.get("api") or _derived_api(opcode, fin)
    if api not in SEND_APIS:
        raise TraceError(f"{where}: unknown send api {api!r} (known: {', '.join(SEND_APIS)})")
    data = _payload(where, raw, prefix="data") or b""
    return Action(kind=kind, trigger=trigger, index=index, api=api, opcode=opcode, fin=fin,
                  data=data, params=dict(raw))


# ---- the whole trace -------------------------------------------------------------------------------

REQUIRED_KEYS = ("scenario", "library", "client_config", "server", "server_script",
                 "client_actions", "duration_ms", "observed", "timing_spread_ms")


@dataclass(frozen=True)
class Trace:
    path: Path
    scenario: str
    description: str
    library: str                        # "1.2.3" or "1.8.0"
    config: ClientConfig
    explicit: Mapping[str, Any]         # what the scenario set (client_config_explicit)
    listen: bool
    script: tuple[Step, ...]
    actions: tuple[Action, ...]
    duration_ms: float
    observed: Mapping[str, Any]
    spread: Mapping[str, Any]
    runs_detail: tuple[Mapping[str, Any], ...]

    @property
    def name(self) -> str:
        return f"{self.library}/{self.scenario}"


def load(path: str | Path) -> Trace:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise TraceError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    where = str(path)
    if not isinstance(raw, Mapping):
        raise TraceError(f"{where}: the top level must be an object")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise TraceError(f"{where}: missing {', '.join(missing)}")
    library = str(raw["library"]).rpartition(" ")[2]
    config_raw = raw["client_config"]
    if not isinstance(config_raw, Mapping):
        raise TraceError(f"{where}: client_config must be an object")
    _known(f"{where}: client_config", config_raw, CONFIG_KEYS)
    config = ClientConfig(**{k: v for k, v in config_raw.items()})
    script = tuple(_step(f"{where}: server_script[{i}]", s, i)
                   for i, s in enumerate(_list(where, raw["server_script"], "server_script")))
    actions = tuple(_action(f"{where}: client_actions[{i}]", a, i)
                    for i, a in enumerate(_list(where, raw["client_actions"], "client_actions")))
    if not actions or actions[0].kind != "open":
        raise TraceError(f"{where}: client_actions[0] must be the open action")
    observed = raw["observed"]
    for key in ("events", "client_frames", "tcp", "returns", "handshakes", "server_sent"):
        if not isinstance(observed.get(key), list):
            raise TraceError(f"{where}: observed.{key} must be a list")
    return Trace(path=path, scenario=str(raw["scenario"]),
                 description=str(raw.get("description", "")), library=library, config=config,
                 explicit=dict(raw.get("client_config_explicit", {})),
                 listen=bool(raw["server"].get("listen", True)), script=script, actions=actions,
                 duration_ms=float(raw["duration_ms"]), observed=observed,
                 spread=raw["timing_spread_ms"], runs_detail=tuple(raw.get("runs_detail", ())))


def load_all(directory: str | Path = TRACES_DIR, versions: Iterable[str] = LIBRARY_VERSIONS,
             only: Iterable[str] = ()) -> list[Trace]:
    """Every trace of the versions asked for, by scenario name; `only` keeps those scenarios."""
    wanted = set(only)
    traces = []
    for version in versions:
        folder = Path(directory) / version
        if not folder.is_dir():
            raise TraceError(f"{folder}: no traces of library {version} there")
        for path in sorted(folder.glob("*.json")):
            if wanted and path.stem not in wanted:
                continue
            traces.append(load(path))
    if wanted:
        found = {t.scenario for t in traces}
        unknown = sorted(wanted - found)
        if unknown:
            raise TraceError(f"{directory}: no trace named {', '.join(unknown)}")
    return traces


def _list(where: str, value: Any, name: str) -> list:
    if not isinstance(value, list):
        raise TraceError(f"{where}: {name} must be a list")
    return value


def _known(where: str, raw: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise TraceError(f"{where}: unknown parameter(s) {', '.join(unknown)}")
