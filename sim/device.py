"""The simulated board: AT line discipline (echo, line assembly, busy, data mode, dispatch) and the
device state that outlives a serial connection (links, WSCFG, AT+WSHEAD headers, AT+WSDATAFMT
formats, echo, Wi-Fi)."""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spec
from sim.commands import BOOT_NOISE, COMMANDS, MODEL_VERSION, boot_sequence
from sim.defects import Defect, behaviour_for, check_profile, resolve
from sim.library import library
from sim.link import Link, LinkConfig
from sim.params import MAX_COMMAND_LINE_BYTES, ParamError
from sim.pki import Pki
from sim.profiles import Profile, get_profile
from sim.ws_data import DataFormat
from sim.replies import BUSY, ERROR, OK, DataRequest, Reply
from sim.timing import DEFAULT_TIMINGS, Timings

log = logging.getLogger("sim.device")

# Bytes kept of a line that never ends; beyond this the line is already too long to run.
LINE_BUFFER_LIMIT = 4096
# AT<name><rest>: the name is ATE0/ATE1, AT+<LETTERS>, or bare AT.
_COMMAND_RE = re.compile(rb"^(ATE[01]|AT\+[A-Z0-9_]+|AT)(.*)$", re.DOTALL)

# Fields whose value is a secret (VERSIONS.md auth): never logged, nor a line that holds them.
SECRET_FIELDS = ("auth",)

# A plausible ESP32-C2 heap with ESP-AT running (AT+SYSRAM?), and what a link costs.
BASE_FREE_HEAP = 128_000
HEAP_PER_LINK = 4_096            # client task stack and bookkeeping
HEAP_PER_TLS_LINK = 16_384       # mbedTLS with dynamic buffers
HEAP_BUFFERS_PER_LINK = 2        # receive and send buffers of buffer_size each


class Mode(enum.Enum):
    COMMAND = "command"      # assembling command lines
    DATA = "data"            # AT+WSSEND: taking raw bytes after '>'
    BUSY = "busy"            # a command is executing: new lines get `busy p...`
    REBOOTING = "rebooting"  # AT+RST: input is lost


class BareChip:
    """What the AT firmware sees of the chip it runs on when nothing models the board around it
    (sim.board.Board does): it always boots, prints nothing on UART0, and runs the model's own
    version."""

    app_version = f"v{MODEL_VERSION}"

    def software_reset(self, reason: str) -> bool:
        """The chip resets itself (AT+RST, a panic); True when the app boots again."""
        return True

    def panic(self, reason: str) -> None:
        """The firmware crashed: the panic printout on UART0."""


# AT+CWJAP's failure codes (ESP-AT: 1 timeout, 2 wrong password, 3 AP not found, 4 failed).
CWJAP_WRONG_PASSWORD = 2
CWJAP_NO_AP = 3


@dataclass
class WifiState:
    mode: int = 1            # station (ESP-AT's default)
    ssid: str | None = None  # joined AP, kept in flash across AT+RST
    # SSID -> SHA-256 of its password, both as the bytes on the air. Empty: every network
    # exists and takes any password. Digests only, and out of repr: the model never holds or
    # shows a password in the clear.
    access_points: dict[bytes, bytes] = field(default_factory=dict, repr=False)

    def add_access_point(self, ssid: bytes, password: bytes) -> None:
        self.access_points[ssid] = _digest(password)

    def join_failure(self, ssid: bytes, password: bytes) -> int | None:
        """The +CWJAP:<code> a join to `ssid` with `password` fails with; None: it succeeds."""
        if not self.access_points:
            return None
        expected = self.access_points.get(ssid)
        if expected is None:
            return CWJAP_NO_AP
        if not hmac.compare_digest(expected, _digest(password)):
            return CWJAP_WRONG_PASSWORD
        return None


def _digest(password: bytes) -> bytes:
    return hashlib.sha256(password).digest()


class Heap:
    """Free heap and its low-water mark: falls while links are open, comes back when closed,
    unless a defect leaks some of it."""

    def __init__(self, links: dict[int, Link]) -> None:
        self._links = links
        self.min_free = BASE_FREE_HEAP
        self.leaked = 0

    def free(self) -> int:
        used = sum(HEAP_PER_LINK + HEAP_BUFFERS_PER_LINK * link.config.buffer_size
                   + (HEAP_PER_TLS_LINK if link.ws_uri.secure else 0)
                   for link in self._links.values())
        return BASE_FREE_HEAP - used - self.leaked

    def leak(self, size: int) -> None:
        self.leaked += size

    def sample(self) -> None:
        self.min_free = min(self.min_free, self.free())

    def report(self) -> tuple[int, int]:
        self.sample()
        return self.free(), self.min_free


@dataclass
class _DataInput:
    request: DataRequest
    collected: bytearray
    idle_timer: asyncio.TimerHandle | None = None


class Device:
    """One simulated ESP32-C2 with ESP-AT. Feed it AT-port bytes with `feed`; it writes to the
    sink given to `attach`. Must be fed from the event loop that runs its links."""

    def __init__(self, profile: str | Profile | spec.Profile = "seed", defects: Iterable[str] = (),
                 *, timings: Timings = DEFAULT_TIMINGS, boot_noise: bool = False,
                 chip: BareChip | None = None, pki: str | Path | Pki | None = None,
                 library_version: str | None = None,
                 knobs: Mapping[str, Any] | None = None) -> None:
        self.chip = chip or BareChip()
        self.profile = get_profile(profile)
        self.defects: tuple[Defect, ...] = resolve(defects)
        check_profile(self.defects, self.profile.name)   # a later profile's defect: refused
        self.fw = behaviour_for(self.defects)       # every knob a defect may turn
        # The library's own task loop (sim/library.py); None: the conforming model's.
        self.library_version = library_version
        if library_version is not None:
            self.fw = dataclasses.replace(self.fw, **library(library_version).loop)
        if knobs:          # what a replay sets of the host a trace was recorded on
            self.fw = dataclasses.replace(self.fw, **knobs)
        self.timings = dataclasses.replace(timings, **dict(self.fw.timing))
        self.boot_noise = boot_noise
        self.echo = True
        self.links: dict[int, Link] = {}
        self.link_configs: dict[int, LinkConfig] = {}
        self.pki = pki if isinstance(pki, Pki) else Pki(pki)
        # AT+WSHEAD (wshead): global, in the order set, (key, value) as typed; lost on AT+RST.
        self.ws_headers: list[tuple[str, str]] = []
        # AT+WSDATAFMT (current): per link id, whether a link is open or not; AT+RST resets them.
        self.data_formats: dict[int, DataFormat] = {}
        self.wifi = WifiState()
        self.heap = Heap(self.links)
        self._sink: Callable[[bytes], None] | None = None
        self._mode = Mode.COMMAND
        self._line = bytearray()
        self._line_overflow = False
        self._busy_input = bytearray()
        self._data: _DataInput | None = None
        self._command_task: asyncio.Task[bytes] | None = None
        self._after_busy = bytearray()   # (defect) input kept to run once the command ends
        self._busy_ids: dict[int, float] = {}
        self.abandoned: list[Link] = []  # (defect) links forgotten with their TCP still open
        self.orphans: list[Link] = []    # (defect) links out of the table whose client lives on

    # ---- wiring ---------------------------------------------------------------------------

    def attach(self, sink: Callable[[bytes], None]) -> None:
        """A host opened the port. A half-typed line from the previous host is dropped."""
        self._sink = sink
        self._line.clear()
        self._line_overflow = False

    def detach(self, sink: Callable[[bytes], None]) -> None:
        if self._sink is sink:
            self._sink = None

    def emit(self, data: bytes) -> None:
        """Write to the AT port; with no host attached the bytes are lost, like a UART's."""
        if self._sink is not None and data:
            self._sink(data)

    def shutdown(self) -> None:
        self._drop_links()
        if self._command_task is not None:
            self._command_task.cancel()

    # ---- link table (used by websocket_commands and Link) ------------------------------------

    @property
    def defect_names(self) -> list[str]:
        return [d.name for d in self.defects]

    def bounds(self, command: str, name: str) -> tuple[int, int]:
        """The range this firmware checks: the spec's under the profile, as a defect skews it."""
        lo, hi = spec.load().param(command, name).bounds(self.profile.spec)
        if (command, name) == ("AT+WSCFG", "buffer_size") and self.fw.buffer_size_cap is not None:
            hi = min(hi, self.fw.buffer_size_cap)
        for skew_command, skew_name, add_lo, add_hi in self.fw.range_skew:
            if (skew_command, skew_name) == (command, name):
                lo, hi = lo + add_lo, hi + add_hi
        return lo, hi

    def default(self, command: str, name: str) -> int:
        for over_command, over_name, value in self.fw.default_overrides:
            if (over_command, over_name) == (command, name):
                return value
        return spec.load().default(command, name)

    def default_link_config(self) -> LinkConfig:
        return LinkConfig(ping_intv_sec=self.default("AT+WSCFG", "ping_intv_sec"),
                          ping_timeout_sec=self.default("AT+WSCFG", "ping_timeout_sec"),
                          buffer_size=self.default("AT+WSCFG", "buffer_size"),
                          auth_mode=self.default("AT+WSCFG", "auth_mode"))

    def data_format(self, link_id: int) -> DataFormat:
        """The +WS_DATA format of a link id: as AT+WSDATAFMT set it, else the defaults (the
        released form; always, on a profile without AT+WSDATAFMT)."""
        found = self.data_formats.get(link_id)
        if found is not None:
            return found
        return DataFormat(level=self.default("AT+WSDATAFMT", "meta_data_level"),
                          mask=self.default("AT+WSDATAFMT", "meta_data_mask"))

    def add_link(self, link: Link) -> None:
        self.links[link.link_id] = link
        self.heap.sample()

    def remove_link(self, link: Link) -> None:
        link.finished = True
        if self.links.get(link.link_id) is link:
            del self.links[link.link_id]
            if link.was_connected:
                self.heap.leak(self.fw.heap_leak_per_close)

    def mark_id_busy(self, link_id: int, seconds: float) -> None:
        if seconds:
            self._busy_ids[link_id] = asyncio.get_running_loop().time() + seconds

    def id_busy(self, link_id: int) -> bool:
        return asyncio.get_running_loop().time() < self._busy_ids.get(link_id, 0.0)

    def link_finished(self, link: Link) -> None:
        """A link ended on its own (server close): it leaves the table, once."""
        if not link.finished:
            self.remove_link(link)

    def release_config(self, link: Link) -> None:
        """A server close frees the link's WSCFG settings (field-defects F8)."""
        if self.links.get(link.link_id) is link or link.finished:
            self.link_configs.pop(link.link_id, None)

    def crash(self, reason: str) -> None:
        """(defects) The firmware crashes: the panic on UART0, the chip resets, what a reboot
        forgets is gone, boot banner and `ready` once it is up again."""
        log.warning("the modelled firmware crashes: %s", reason)
        self.chip.panic(reason)
        self._power_on()
        if not self.chip.software_reset("RTC_SW_CPU_RST"):
            self.power_off()
            return
        self.emit(BOOT_NOISE)
        self._mode = Mode.REBOOTING
        self._start(boot_sequence(self))      # replaces the command that crashed: no answer

    @property
    def starting(self) -> bool:
        """Between a reset and `ready`."""
        return self._mode is Mode.REBOOTING or (self._mode is Mode.BUSY and self._data is None
                                                 and self._command_task is not None)

    def power_off(self) -> None:
        """The chip is held in reset or stopped: links die without close frames, a running
        command never ends, input is lost until the next boot."""
        self._drop_links()
        if self._command_task is not None:
            self._command_task.cancel()
            self._command_task = None
        if self._data is not None and self._data.idle_timer is not None:
            self._data.idle_timer.cancel()
        self._data = None
        self._mode = Mode.REBOOTING

    def cold_boot(self) -> None:
        """Out of reset into the AT firmware: a fresh state, then `ready` (sim.board.Board)."""
        self.power_off()
        self._power_on()
        self._line.clear()
        self._busy_input.clear()
        self._start(boot_sequence(self))

    def _drop_links(self) -> None:
        for link in list(self.links.values()):
            self.remove_link(link)
            link.destroy()  # dropped without close frames
        for link in self.abandoned + self.orphans:
            link.destroy()
        self.orphans.clear()

    def _power_on(self) -> None:
        """What every boot starts from: no links, no WSCFG, no AT+WSHEAD headers, every
        AT+WSDATAFMT at its defaults, echo on (Wi-Fi and the PKI partitions are kept in flash)."""
        self._drop_links()
        self.link_configs.clear()
        self.ws_headers.clear()
        if not self.fw.wsdatafmt_kept_on_reset:
            self.data_formats.clear()
        self.echo = True

    # ---- AT+RST ---------------------------------------------------------------------------

    def reboot(self) -> Reply:
        """AT+RST: OK, then a software reset of the chip; `ready` once the app is up again (never,
        when the chip cannot boot what its flash now holds)."""
        self.emit(OK)
        self._mode = Mode.REBOOTING
        self._power_on()
        self._line.clear()
        self._busy_input.clear()
        if not self.chip.software_reset("RTC_SW_CPU_RST"):
            return self._never()
        return boot_sequence(self)

    async def _never(self) -> bytes:
        await asyncio.Event().wait()
        return b""

    def finish_reboot(self) -> None:
        self._mode = Mode.BUSY  # until the reboot "command" prints ready and ends

    # ---- input ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the host on the AT port."""
        buf = bytes(data)
        while buf:
            if self._mode is Mode.REBOOTING:
                return
            if self._mode is Mode.DATA:
                buf = self._feed_data(buf)
            elif self._mode is Mode.BUSY:
                self._feed_busy(buf)
                return
            else:
                buf = self._feed_command(buf)

    def _feed_command(self, buf: bytes) -> bytes:
        """Assemble lines; returns the bytes left over when a line switched the mode."""
        self._line += buf
        while True:
            end = self._line.find(b"\r\n")
            if end < 0:
                if len(self._line) > LINE_BUFFER_LIMIT:
                    del self._line[:-1]  # keep a trailing CR that may pair with the next LF
                    self._line_overflow = True
                return b""
            line = bytes(self._line[:end])
            rest = bytes(self._line[end + 2:])
            self._line.clear()
            overflow, self._line_overflow = self._line_overflow, False
            if overflow and self.fw.long_line_truncated:
                overflow = False                 # (defect) what was kept runs as the command
            if self.echo:
                self.emit(line + b"\r\n")  # echoed as received, data-mode bytes never are
            self._run_line(line, overflow)
            if self._mode is not Mode.COMMAND:
                return rest
            self._line += rest

    def _feed_busy(self, buf: bytes) -> None:
        """Input while a command runs is lost; each complete line is answered `busy p...`."""
        self._busy_input += buf
        while (end := self._busy_input.find(b"\r\n")) >= 0:
            del self._busy_input[:end + 2]
            self.emit(BUSY)
        if len(self._busy_input) > LINE_BUFFER_LIMIT:
            del self._busy_input[:-1]

    def _feed_data(self, buf: bytes) -> bytes:
        data = self._data
        assert data is not None
        take = data.request.length - len(data.collected)
        data.collected += buf[:take]
        if len(data.collected) < data.request.length:
            self._arm_data_timer()
            return b""
        if data.idle_timer is not None:
            data.idle_timer.cancel()
        self._data = None
        self._start(data.request.on_data(bytes(data.collected)))
        if self.fw.overrun_executed:
            self._after_busy += buf[take:]       # (defect) run as commands once the send ends
            return b""
        return buf[take:]

    def _arm_data_timer(self) -> None:
        data = self._data
        if data is None:
            return
        if data.idle_timer is not None:
            data.idle_timer.cancel()
        data.idle_timer = asyncio.get_running_loop().call_later(
            self.timings.data_input_idle_timeout_s, self._data_timed_out, data)

    def _data_timed_out(self, data: _DataInput) -> None:
        if self._data is data and self._mode is Mode.DATA:
            log.info("data mode abandoned after %d of %d bytes", len(data.collected),
                     data.request.length)
            self._data = None
            self._mode = Mode.COMMAND
            self.emit(ERROR)

    # ---- dispatch -------------------------------------------------------------------------

    def _run_line(self, line: bytes, overflow: bool) -> None:
        if not line and not overflow:
            return  # a bare CR-LF is ignored
        limit = self.fw.command_line_max or MAX_COMMAND_LINE_BYTES
        if len(line) > limit and self.fw.long_line_truncated:
            line = line[:limit]
        if overflow or len(line) > limit:
            self.emit(ERROR)
            return
        try:
            reply = self._dispatch(line)
        except ParamError as exc:
            log.debug("%s", self._refusal_text(line, exc))
            reply = ERROR
        self._deliver(reply)

    def _refusal_text(self, line: bytes, exc: ParamError) -> str:
        """What the parse-error log says: the line and why, unless the command's form has a
        secret field (AT+WSOPEN's <auth>): then its name alone, since the line or the reason
        may quote the secret."""
        match = _COMMAND_RE.match(line)
        name = match.group(1).decode() if match else ""
        if name in self.profile.commands and name.startswith("AT+WS"):
            try:
                secret = any(f in SECRET_FIELDS for f in self.profile.field_names(name))
            except KeyError:                     # a command with no set form
                secret = False
            if secret:
                return f"{name}: refused (the line is not shown: it may hold {SECRET_FIELDS[0]})"
        return f"{line!r}: {exc}"

    def _dispatch(self, line: bytes) -> Reply:
        match = _COMMAND_RE.match(line)
        if match is None:
            return ERROR
        name = match.group(1).decode()
        rest = match.group(2).decode("latin-1")
        command = COMMANDS.get(name)
        if command is None or name not in self.profile.commands:
            return ERROR
        if rest == "":
            handler, args = command.execute, ""
        elif rest == "?":
            handler, args = command.query, ""
        elif rest == "=?":
            handler, args = command.test, ""
        elif rest.startswith("="):
            handler, args = command.set, rest[1:]
        else:
            return ERROR
        if handler is None:
            return ERROR
        return handler(self, args)

    def _deliver(self, reply: Reply) -> None:
        if isinstance(reply, bytes):
            self.emit(reply)
        elif isinstance(reply, DataRequest):
            self._mode = Mode.DATA
            self._data = _DataInput(reply, bytearray())
            self.emit(reply.prompt)
            self._arm_data_timer()
        else:
            self._start(reply)

    def _start(self, coro) -> None:
        """Run a command that takes time; the port is busy until its final result."""
        if self._mode is not Mode.REBOOTING:
            self._mode = Mode.BUSY
        task = asyncio.get_running_loop().create_task(coro)
        self._command_task = task
        task.add_done_callback(self._command_done)

    def _command_done(self, task: asyncio.Task[bytes]) -> None:
        if self._command_task is not task or task.cancelled():
            return
        self._command_task = None
        exc = task.exception()
        if exc is not None:
            log.error("command failed in the model", exc_info=exc)
            result = ERROR
        else:
            result = task.result()
        self._mode = Mode.COMMAND
        self._busy_input.clear()  # a partial line typed while busy is lost
        self.emit(result)
        if self._after_busy:
            kept, self._after_busy = bytes(self._after_busy), bytearray()
            self.feed(kept)
