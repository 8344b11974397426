"""One AT command's cycle, sans-IO, as h11's Connection owns a request and its response.

The engine turns bytes into events; the exchange decides, from the phase of the command in
flight, what each event is: part of the command's answer (and whether it ends it), a URC for the
tests' waits, output nobody asked for, or garbage. The phases and what each event does in each
are one table, `ROUTES`; the client only writes, waits and keeps what the exchange decided.

  IDLE       no command in flight;
  ANSWERING  a command line written: its echo, information lines, then its final result;
  PROMPTING  a data-mode command: OK, then '>' (or a final result that refuses it);
  SENDING    after '>': the payload, then SEND OK, SEND FAIL or ERROR (`busy p...` now answers
             input past <length>, it does not end the command).

One rule per kind of output, wherever it comes: a documented URC printed in a broken form
(+WS_DATA whose header or trailer breaks its format) is output nobody asked for, which fails the
test's clause, in every phase; bytes that are no AT framing at all are garbage (a device fault),
and end the command in flight.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .commands import documented_info_line, wsopen_listing
from .engine import MALFORMED, NEED_DATA, AtEngine
from .errors import DeviceBusy, DeviceViolation
from .events import (BAD_WS_DATA_TRAILER, SYSTEM_MESSAGES, Busy, Echo, ErrCode, Event, Final,
                     FramingError, Line, Prompt, Ready, Urc, WsData)

RESPONSE_LINES_KEPT = 1000     # information lines kept per command; the rest are counted
BUSY_PAUSE_S = 0.2             # ESP-AT drops a command it answers `busy p...`: sending it again
#                                is safe, after the device had time to finish what it was doing
OPENS_LINK, ENDS_LINK = b"+WS_CONNECTED", (b"+WS_DISCONNECTED", b"+WS_CLOSED")
LINK_OPEN_STATE = 2            # AT+WSOPEN? lists a link the device holds open with state 2


class Phase(enum.Enum):
    IDLE = "idle"
    ANSWERING = "answering"
    PROMPTING = "prompting"
    SENDING = "sending"


@dataclass
class Response:
    """What the device answered to one command."""
    command: bytes
    lines: list[bytes] = field(default_factory=list)
    final: bytes | None = None          # None when the device said busy
    echoed: bool = False
    busy: bool = False
    err_code: int | None = None
    prompt: bool = False                # data-mode commands: the '>' prompt came
    accepted: bool = False              # data-mode commands: OK came before the prompt
    received: bytes = b""               # every byte that arrived while the command ran
    data_sent_at: float | None = None   # data-mode commands: when the payload was written
    final_at: float | None = None       # when the final result code arrived
    busy_after_data: int = 0            # data-mode commands: busy p... for bytes past <length>
    busy_retries: int = 0               # times it was sent again after `busy p...`
    lines_dropped: int = 0              # information lines past RESPONSE_LINES_KEPT
    clauses: tuple[str, ...] = ()
    ended_by: Event | None = None       # a reboot or garbage that cut the command short

    @property
    def ok(self) -> bool:
        return self.final == b"OK"

    @property
    def over(self) -> bool:
        """Nothing more of this command will come: a final result, busy, or cut short."""
        return self.final is not None or self.busy or self.ended_by is not None

    def expect(self, final: bytes = b"OK", lines: list[bytes] | None = None) -> "Response":
        """Fail with a transcript unless the final result (and, if given, the lines) match."""
        if self.busy:
            raise self.busy_fault(expected=f"final {final!r}")
        if self.final != final or (lines is not None and self.lines != lines):
            wanted = f"final {final!r}" + (f" after lines {lines!r}" if lines is not None else "")
            got = f"final {self.final!r}, lines {self.lines!r}"
            raise DeviceViolation(what=f"wrong response to {self.command!r} ({got})",
                                  sent=self.command + b"\r\n", expected=wanted,
                                  received=self.received, clauses=self.clauses)
        return self

    def busy_fault(self, expected: str = "an answer") -> DeviceBusy:
        """`busy p...` to every try: the device stayed busy with something the test never
        asked for."""
        return DeviceBusy(what=f"the device answered {self.command!r} with `busy p...` "
                               f"{self.busy_retries + 1} time(s), {BUSY_PAUSE_S:g} s apart: it "
                               f"stayed busy with something no command of the test asked for",
                          sent=self.command + b"\r\n", expected=expected,
                          received=self.received, clauses=self.clauses)


# ---- what an event is, in a phase -------------------------------------------------------------

class Kind(enum.Enum):
    ECHO = "echo"
    OK_BEFORE_PROMPT = "OK before the prompt"
    FINAL = "final result"
    BUSY = "busy"
    PROMPT = "prompt"
    ERR_CODE = "ERR CODE"
    INFO = "information line"
    SYSTEM = "Wi-Fi message"
    BOOT = "boot output"            # lines while a reset asked for is under way
    URC = "URC"
    READY = "ready, asked for"
    REBOOT = "ready, nobody asked"
    BROKEN_URC = "a URC in a broken form"
    BROKEN_URC_REST = "lines after a broken URC"   # its data, which can no longer be delimited
    GARBAGE = "garbage"


@dataclass(frozen=True)
class Route:
    """What an event of a kind does in a phase."""
    answer: bool = False            # part of the command's answer
    ends: bool = False              # ... and the last of it
    urc: bool = False               # queued for the tests' waits
    unexpected: str = ""            # output nobody asked for: where it came
    garbage: bool = False           # no AT output at all: the test's verdict is moot
    reboot: bool = False            # the device rebooted on its own
    then: Phase | None = None       # the phase after it; None: as it was


_QUEUED = Route(urc=True)
_IGNORED = Route()
_UNASKED_READY = Route(urc=True, reboot=True,
                       unexpected="nobody asked for a reset: the device rebooted")
_BROKEN_URC = Route(unexpected="broken framing")
_BROKEN_URC_REST = Route(unexpected="after a +WS_DATA in a broken form (its data, read as lines)")
_PART = Route(answer=True)
_LAST = Route(answer=True, ends=True, then=Phase.IDLE)

# In a command, in every phase alike.
_IN_COMMAND = {
    Kind.ECHO: _PART, Kind.ERR_CODE: _PART, Kind.INFO: _PART, Kind.SYSTEM: _PART,
    Kind.BOOT: _PART, Kind.URC: _QUEUED, Kind.READY: _QUEUED, Kind.BROKEN_URC: _BROKEN_URC,
    Kind.BROKEN_URC_REST: _BROKEN_URC_REST,
    Kind.FINAL: _LAST, Kind.OK_BEFORE_PROMPT: _LAST, Kind.BUSY: _LAST, Kind.PROMPT: _PART,
    Kind.REBOOT: Route(answer=True, ends=True, urc=True, reboot=True, then=Phase.IDLE,
                       unexpected="nobody asked for a reset: the device rebooted"),
    Kind.GARBAGE: Route(answer=True, ends=True, garbage=True, then=Phase.IDLE),
}

ROUTES: dict[Phase, dict[Kind, Route]] = {
    Phase.IDLE: {
        # Echo, busy, a late prompt or ERR CODE of a command given up on: nobody's, harmless.
        Kind.ECHO: _IGNORED, Kind.BUSY: _IGNORED, Kind.PROMPT: _IGNORED, Kind.ERR_CODE: _IGNORED,
        Kind.SYSTEM: _IGNORED, Kind.BOOT: _IGNORED,
        Kind.FINAL: Route(unexpected="a final result outside any command"),
        Kind.OK_BEFORE_PROMPT: Route(unexpected="a final result outside any command"),
        Kind.INFO: Route(unexpected="outside any command"),
        Kind.URC: _QUEUED, Kind.READY: _QUEUED, Kind.REBOOT: _UNASKED_READY,
        Kind.BROKEN_URC: _BROKEN_URC, Kind.BROKEN_URC_REST: _BROKEN_URC_REST,
        Kind.GARBAGE: Route(unexpected="broken framing", garbage=True),
    },
    Phase.ANSWERING: _IN_COMMAND,
    Phase.PROMPTING: {**_IN_COMMAND,
                      Kind.OK_BEFORE_PROMPT: _PART,
                      Kind.PROMPT: Route(answer=True, then=Phase.SENDING)},
    Phase.SENDING: {**_IN_COMMAND,
                    Kind.BUSY: _PART},          # the answer to input past <length>
}


@dataclass(frozen=True)
class Note:
    """Output nobody asked for, as the client keeps it."""
    raw: bytes
    where: str
    text: bool = True               # it should be text: bytes that are not make it garbage


@dataclass(frozen=True)
class Routed:
    """One event, and what the exchange decided about it."""
    event: Event
    route: Route
    notes: tuple[Note, ...] = ()


class Exchange:
    """The engine plus the command in flight and the links the device reported open."""

    def __init__(self, engine: AtEngine | None = None) -> None:
        self.engine = engine or AtEngine()
        self.phase = Phase.IDLE
        self.response: Response | None = None   # the command in flight, or the last one
        self.rebooting = False                  # a reset was asked for, its `ready` not seen
        self.open_links: set[int] = set()       # +WS_CONNECTED seen, no end of link since
        self._after_broken_urc = False          # lines now may be a broken URC's data

    # ---- what the host sends ----------------------------------------------------------------

    def start(self, command: str | bytes, *, expects_prompt: bool = False,
              clauses: tuple[str, ...] = ()) -> tuple[bytes, Response]:
        """A command is about to be written: the bytes to write, and its answer to fill."""
        data = self.engine.command(command, expects_prompt=expects_prompt)
        self.response = Response(command=data[:-2], clauses=clauses)
        self.phase = Phase.PROMPTING if expects_prompt else Phase.ANSWERING
        if self.response.command.upper().startswith(b"AT+RST"):
            self.rebooting = True               # boot output until `ready` is expected
        return data, self.response

    def give_up(self) -> None:
        """The host stopped waiting for the command in flight: what comes now is nobody's."""
        self.phase = Phase.IDLE
        self.engine.awaiting_prompt = False

    def expect_reboot(self) -> None:
        """A reset comes from outside the AT port (the reset line): its `ready` is asked for."""
        self.rebooting = True

    # ---- what the device sends --------------------------------------------------------------

    def receive(self, data: bytes, now: float | None = None) -> list[Routed]:
        """Feed the device's bytes; every event they completed, routed. The command's answer is
        filled as its events come (`now` stamps its final result)."""
        routed = []
        self.engine.receive_data(data)
        while True:
            # The engine reads '>' as the prompt only while this exchange waits for it.
            self.engine.awaiting_prompt = self.phase is Phase.PROMPTING
            event = self.engine.next_event()
            if event is NEED_DATA:
                break
            kind = self.kind_of(event)
            self._after_broken_urc = kind in (Kind.BROKEN_URC, Kind.BROKEN_URC_REST)
            route = ROUTES[self.phase][kind]
            notes = list(self._notes(event, kind, route))
            if route.answer and self.response is not None:
                notes += self._answer(event, kind, now)
            if isinstance(event, Ready):
                self.open_links.clear()         # a boot closes every link
                self.rebooting = False
            elif route.urc:
                notes += self._track_link(event)
            if route.then is not None:
                self.phase = route.then
            routed.append(Routed(event, route, tuple(notes)))
        return routed

    def kind_of(self, event: Event) -> Kind:
        if isinstance(event, Echo):
            return Kind.ECHO
        if isinstance(event, Final):
            return Kind.OK_BEFORE_PROMPT if event.before_prompt else Kind.FINAL
        if isinstance(event, Busy):
            return Kind.BUSY
        if isinstance(event, Prompt):
            return Kind.PROMPT
        if isinstance(event, ErrCode):
            return Kind.ERR_CODE
        if isinstance(event, Line):
            if event.line in SYSTEM_MESSAGES:
                return Kind.SYSTEM
            if self._after_broken_urc:
                return Kind.BROKEN_URC_REST
            return Kind.BOOT if self.rebooting else Kind.INFO
        if isinstance(event, (Urc, WsData)):
            return Kind.URC
        if isinstance(event, Ready):
            return Kind.READY if self.rebooting else Kind.REBOOT
        if isinstance(event, FramingError):
            return Kind.BROKEN_URC if is_broken_urc(event) else Kind.GARBAGE
        raise TypeError(f"the engine reported {event!r}, which the exchange does not route")

    @property
    def payload_missing(self) -> int:
        return self.engine.payload_missing

    # ---- the rules of each route ------------------------------------------------------------

    @staticmethod
    def _notes(event: Event, kind: Kind, route: Route) -> list[Note]:
        if not route.unexpected:
            return []
        if isinstance(event, Ready):
            return [Note(b"ready\r\n", route.unexpected)]
        if isinstance(event, FramingError):
            return [Note(event.raw, f"{route.unexpected} ({event.detail})",
                         text=kind is not Kind.BROKEN_URC)]
        if kind is Kind.BROKEN_URC_REST:        # binary data is no garbage here
            return [Note(event.raw, route.unexpected, text=False)]
        if isinstance(event, Final):
            return [Note(event.result + b"\r\n", route.unexpected)]
        return [Note(getattr(event, "raw", b"") or getattr(event, "line", b""), route.unexpected)]

    def _answer(self, event: Event, kind: Kind, now: float | None) -> list[Note]:
        response = self.response
        if isinstance(event, Echo):
            response.echoed = True
        elif isinstance(event, Line):
            if len(response.lines) >= RESPONSE_LINES_KEPT:
                response.lines_dropped += 1
                return []
            response.lines.append(event.line)
            listed = wsopen_listing(event.line)
            if listed and listed[1] == LINK_OPEN_STATE:
                self.open_links.add(listed[0])
            if kind is Kind.INFO and not documented_info_line(response.command, event.line):
                return [Note(event.raw, f"in the answer to {response.command!r}")]
        elif isinstance(event, ErrCode):
            response.err_code = event.code
        elif isinstance(event, Busy):
            if response.prompt:
                response.busy_after_data += 1
            else:
                response.busy = True
        elif isinstance(event, Prompt):
            response.prompt = True
        elif isinstance(event, Final):
            if kind is Kind.OK_BEFORE_PROMPT and self.phase is Phase.PROMPTING:
                response.accepted = True
            else:
                response.final = event.result
                response.final_at = now
        elif isinstance(event, (Ready, FramingError)):
            response.ended_by = event
        return []

    def _track_link(self, event: Event) -> list[Note]:
        if isinstance(event, Urc):
            if event.name == OPENS_LINK:
                self.open_links.add(event.link_id)
            elif event.name in ENDS_LINK:
                self.open_links.discard(event.link_id)
        elif isinstance(event, WsData) and event.link_id not in self.open_links:
            return [Note(event.header + event.data[:64] + b"...",
                         f"+WS_DATA for link {event.link_id}, which is not open", text=False)]
        return []


def is_broken_urc(event: FramingError) -> bool:
    """A +WS_DATA the device printed in a form its format does not allow (a header that cannot
    be read or framed, data not followed by its CR-LF): a URC's clause broken, not noise."""
    return event.detail == BAD_WS_DATA_TRAILER or event.detail == MALFORMED or \
        event.detail.startswith("+WS_DATA")
