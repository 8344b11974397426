"""The ESP-AT protocol engine, sans-IO: feed it the bytes the device sent, take events out.

It never reads, writes or sleeps, so it is tested to the byte and behaves the same whether bytes
arrive whole or one at a time. Four reader states, as in h11:
  line start  -> skips empty lines, recognises the '>' prompt and the +WS_DATA header;
  line        -> a CR-LF terminated line, classified as echo / final / URC / busy / plain line
                 (or, after a +WS_DATA header that cannot be framed, reported whole as a
                 FramingError: the engine resynchronises at the next line);
  payload     -> exactly the data bytes a +WS_DATA header announced;
  trailer     -> the CR-LF after them, when the link's format has one.

+WS_DATA's form is per link id (AT+WSDATAFMT, profile current):
  `+WS_DATA:<link_id>[,<opcode>][,<fin>][,<payload_len>][,<payload_offset>][,<data_len>],<data>`
  `[\\r\\n]`,
the fields and the trailing CR-LF chosen by the mask's bits (spec data: `wsdatafmt_fields`,
`wsdatafmt_crlf_bit`); the data is delimited by data_len, else by payload_len (minus
payload_offset at level 0); a format with neither cannot be delimited. The engine learns a link's
format from `set_data_format` (the client calls it once AT+WSDATAFMT answered OK; the engine also
takes it at that OK itself, so that data printed right after the OK is read in the new form);
`ready` (a boot) puts every link back to the default, which prints the released form
`+WS_DATA:<link_id>,<data_len>,<data>\\r\\n`.
"""
from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import spec

from .commands import wsdatafmt_of
from .events import (BAD_WS_DATA_TRAILER, FINAL_RESULTS, LINK_URCS, Busy, Echo, ErrCode, Event,
                     Final, FramingError, Line, Prompt, Ready, Urc, WsData)
from .receive_buffer import ReceiveBuffer


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()

WS_DATA_PREFIX = b"+WS_DATA:"
MAX_LINE_BYTES = 16384      # ESP-AT's longest line is a few hundred bytes
_LINK_URC = re.compile(rb"(\+WS_[A-Z]+):(\d+)")
_ERR_CODE = re.compile(rb"ERR CODE:0x([0-9a-fA-F]{1,8})")

_SPEC = spec.load()
FIELDS = _SPEC.wsdatafmt_fields            # +WS_DATA's optional fields, mask bit 0 first
CRLF_BIT = _SPEC.wsdatafmt_crlf_bit
CHUNK, FRAME, MESSAGE = (_SPEC.wsdatafmt_levels.index(name)
                         for name in ("chunk", "frame", "message"))
DEFAULT_FORMAT = (_SPEC.default("AT+WSDATAFMT", "meta_data_level"),
                  _SPEC.default("AT+WSDATAFMT", "meta_data_mask"))

# The most data bytes one +WS_DATA may announce: the released form's 6 length digits. A header
# that announces more (a level 1 or 2 payload_len, say) is a framing error, not a reason to
# buffer without limit.
MAX_DATA_BYTES = 999_999
# How many digits each number of the header may have, and the largest value it may take. Every
# bound is finite, so a header is at most a few dozen bytes: garbage cannot make the engine
# buffer a header without limit. opcode and fin are the frame's 4-bit opcode and FIN bit
# (RFC 6455 5.2); payload_len and payload_offset count within a frame or message (an int on the
# device: 10 digits), the data length is bounded by MAX_DATA_BYTES.
_NUMBERS = {"link_id": (2, 99), "opcode": (2, 15), "fin": (1, 1), "payload_len": (10, 2**32 - 1),
            "payload_offset": (10, 2**32 - 1), "data_len": (len(str(MAX_DATA_BYTES)),
                                                            MAX_DATA_BYTES)}
if set(FIELDS) - set(_NUMBERS):
    raise ValueError(f"the spec's +WS_DATA fields {FIELDS} name one this engine cannot read")

MALFORMED = "malformed +WS_DATA header"


@dataclass(frozen=True)
class _Payload:
    """A +WS_DATA header read; its data not yet."""
    link_id: int
    length: int
    header: bytes
    values: dict            # field name -> value, the fields the link's mask has
    crlf: bool              # the data is followed by CR-LF


class AtEngine:
    """Turns the device's byte stream into events.

    The engine is told what the host sent (`command`) so that it can tell the command's echo from
    an information line that happens to look the same later on, and so that a '>' at the start of
    a line is read as the data prompt only while a data-mode command is waiting for it.

    `formats` carries the +WS_DATA formats (`data_formats` of the engine this one replaces) into
    a fresh engine: a new engine does not mean the device forgot them.
    """

    def __init__(self, *, formats: Mapping[int, tuple[int, int]] | None = None) -> None:
        self._buffer = ReceiveBuffer()
        self._events: deque[Event] = deque()
        self._echo_expected: bytes | None = None
        self._awaiting_prompt = False
        self._payload: _Payload | None = None  # the +WS_DATA header whose data is being read
        self._payload_trailer = False          # expecting the CR-LF after a payload
        self._bad_line: str | None = None      # why the line being read is a framing error
        self._formats: dict[int, tuple[int, int]] = {}   # link_id -> (level, mask), non-default
        self._format_asked: tuple[int, int, int] | None = None  # AT+WSDATAFMT awaiting its OK
        for link_id, (level, mask) in (formats or {}).items():
            self.set_data_format(link_id, level, mask)

    # ---- what the host sends -------------------------------------------------------------

    def command(self, text: bytes | str, *, expects_prompt: bool = False) -> bytes:
        """Note a command the host is about to send; returns the bytes to write (with CR-LF)."""
        line = text.encode() if isinstance(text, str) else bytes(text)
        if b"\r" in line or b"\n" in line:
            raise ValueError(f"an AT command is one line; got {line!r}")
        self._echo_expected = line
        self._awaiting_prompt = expects_prompt
        self._format_asked = wsdatafmt_of(line)
        return line + b"\r\n"

    # ---- +WS_DATA formats ----------------------------------------------------------------

    def set_data_format(self, link_id: int, level: int, mask: int) -> None:
        """The device took `AT+WSDATAFMT=<link_id>,<level>,<mask>`: read that link's +WS_DATA in
        this form from now on. Values are taken as given, in range or not (a device that said OK
        is the authority on what it prints). A mask with neither data_len nor payload_len is
        accepted too, but no +WS_DATA can be delimited under it: each is reported as a
        FramingError."""
        for name, value in (("link_id", link_id), ("level", level), ("mask", mask)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"set_data_format: {name} must be an int >= 0, got {value!r}")
        if (level, mask) == DEFAULT_FORMAT:
            self._formats.pop(link_id, None)
        else:
            self._formats[link_id] = (level, mask)

    @property
    def data_formats(self) -> Mapping[int, tuple[int, int]]:
        """link_id -> (level, mask) of every link whose format is not the default (read-only)."""
        return MappingProxyType(dict(self._formats))

    def data_format(self, link_id: int) -> tuple[int, int]:
        """(level, mask) in force for `link_id`."""
        return self._formats.get(link_id, DEFAULT_FORMAT)

    # ---- what the device sends -----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        self._buffer.feed(data)

    def next_event(self) -> Event | _NeedData:
        """The next event the bytes received make, read only now (as h11 does): whoever owns
        the command cycle may change `awaiting_prompt` between two events."""
        while not self._events and self._step():
            pass
        return self._events.popleft() if self._events else NEED_DATA

    def feed(self, data: bytes) -> list[Event]:
        """receive_data, then every event that is ready."""
        self.receive_data(data)
        events = []
        while (event := self.next_event()) is not NEED_DATA:
            events.append(event)
        return events

    @property
    def buffered(self) -> bytes:
        """Bytes received that do not yet make an event (for failure messages)."""
        return bytes(self._buffer)

    @property
    def awaiting_prompt(self) -> bool:
        """A '>' at a line's start is the data prompt (else it starts a line). `command` sets
        it; the command cycle's owner (esp_at/exchange.py) sets it from its phase."""
        return self._awaiting_prompt

    @awaiting_prompt.setter
    def awaiting_prompt(self, value: bool) -> None:
        self._awaiting_prompt = value

    @property
    def payload_missing(self) -> int:
        """Bytes a +WS_DATA header announced that have not come (0 when not inside one)."""
        if self._payload is None:
            return 0
        return max(0, self._payload.length - len(self._buffer))

    # ---- readers: each returns True when it consumed something --------------------------

    @property
    def reader(self) -> str:
        """The reader state: what the next bytes are (module docstring)."""
        if self._payload_trailer:
            return TRAILER
        if self._payload is not None:
            return PAYLOAD
        if self._buffer.in_line or self._bad_line is not None:
            return LINE
        return LINE_START

    def _step(self) -> bool:
        return _READERS[self.reader](self)

    def _read_line_start(self) -> bool:
        handled = self._line_start()
        return self._read_line() if handled is None else handled

    def _line_start(self) -> bool | None:
        """True/False when the start of the buffer was handled here; None to read a plain line."""
        buf = self._buffer
        if not buf:
            return False
        first = buf[0]
        if first == 0x0A:                       # an empty line, or the LF of one
            buf.drop(1)
            return True
        if first == 0x0D:
            if len(buf) == 1:
                return False                     # CR alone: wait to see what follows
            buf.drop(2 if buf[1] == 0x0A else 1)
            return True
        if first == ord(">") and self._awaiting_prompt:
            buf.drop(1)
            self._awaiting_prompt = False
            self._events.append(Prompt())
            return True
        if first == ord("+"):
            return self._read_ws_data_header()
        return None

    def _read_ws_data_header(self) -> bool | None:
        buf = self._buffer
        head = bytes(buf[:len(WS_DATA_PREFIX)])
        if not WS_DATA_PREFIX.startswith(head):
            return None                          # some other line starting with '+'
        if len(head) < len(WS_DATA_PREFIX):
            return False                         # could still become +WS_DATA:
        parsed = self._parse_header()
        if parsed is None:
            return False                         # a header so far: wait for the rest
        if isinstance(parsed, str):
            # Not a header we can frame: report the line and go on reading lines.
            self._bad_line = parsed
            return True
        self._payload = parsed
        buf.drop(len(parsed.header))
        return True

    def _parse_header(self) -> _Payload | str | None:
        """The +WS_DATA header at the start of the buffer: a _Payload when it is complete, None
        while it may still become one, else why it cannot be framed."""
        buf = self._buffer
        number = self._number(buf, len(WS_DATA_PREFIX), "link_id")
        if not isinstance(number, tuple):
            return number
        link_id, pos = number
        level, mask = self.data_format(link_id)
        values = {}
        for bit, name in enumerate(FIELDS):
            if mask >> bit & 1:
                number = self._number(buf, pos, name)
                if not isinstance(number, tuple):
                    return number
                values[name], pos = number
        header = bytes(buf[:pos])
        if "data_len" in values:
            length = values["data_len"]
        elif "payload_len" in values:
            # Levels 1 and 2 print the whole frame or message (offset 0); at level 0 (and at a
            # level the spec does not name) the data is the rest of the frame from the offset.
            offset = 0 if level in (FRAME, MESSAGE) else values.get("payload_offset", 0)
            length = values["payload_len"] - offset
            if length < 0:
                return (f"+WS_DATA header {header!r}: payload_offset {offset} is past "
                        f"payload_len {values['payload_len']}")
            if length > MAX_DATA_BYTES:
                return (f"+WS_DATA header {header!r} announces {length} data bytes, more than "
                        f"the {MAX_DATA_BYTES} the engine takes")
        else:
            return (f"+WS_DATA on link {link_id}: the format set for that link (level {level}, "
                    f"mask {mask}) has neither data_len nor payload_len, so its data cannot be "
                    f"delimited")
        return _Payload(link_id, length, header, values, bool(mask >> CRLF_BIT & 1))

    @staticmethod
    def _number(buf: ReceiveBuffer, pos: int, name: str) -> tuple[int, int] | str | None:
        """The decimal field `name` at `pos`, ended by a comma: (value, position after the comma),
        None when the bytes so far may still become one, MALFORMED when they cannot."""
        max_digits, max_value = _NUMBERS[name]
        end = pos
        limit = min(len(buf), pos + max_digits + 1)
        while end < limit and 0x30 <= buf[end] <= 0x39:
            end += 1
        if end - pos > max_digits:
            return MALFORMED
        if end == len(buf):
            return None
        if end == pos or buf[end] != ord(","):
            return MALFORMED
        value = int(buf[pos:end])
        return MALFORMED if value > max_value else (value, end + 1)

    def _read_payload(self) -> bool:
        payload = self._payload
        if len(self._buffer) < payload.length:
            return False
        data = self._buffer.take(payload.length)
        self._payload = None
        self._payload_trailer = payload.crlf
        values = payload.values
        self._events.append(WsData(payload.link_id, data, payload.header,
                                   opcode=values.get("opcode"), fin=values.get("fin"),
                                   payload_len=values.get("payload_len"),
                                   payload_offset=values.get("payload_offset"),
                                   data_len=values.get("data_len")))
        return True

    def _read_payload_trailer(self) -> bool:
        buf = self._buffer
        if len(buf) < 2:
            if buf and buf[0] != 0x0D:
                return self._bad_trailer()
            return False
        if buf[:2] == b"\r\n":
            buf.drop(2)
            self._payload_trailer = False
            return True
        return self._bad_trailer()

    def _bad_trailer(self) -> bool:
        self._payload_trailer = False
        # Only the first offending byte: what else is buffered depends on how bytes were chunked.
        self._events.append(FramingError(BAD_WS_DATA_TRAILER,
                                         bytes(self._buffer[:1])))
        return True                              # resynchronise: read on from here as lines

    def _read_line(self) -> bool:
        buf = self._buffer
        end = buf.line_end()
        if end < 0:
            if len(buf) > MAX_LINE_BYTES:        # garbage with no line end: do not hoard it
                raw = buf.take(MAX_LINE_BYTES)
                detail = f"more than {MAX_LINE_BYTES} bytes without a line end"
                if self._bad_line is not None:
                    detail, self._bad_line = f"{self._bad_line}; {detail}", None
                self._events.append(FramingError(detail, raw))
                return True
            return False
        raw = buf.take(end + 1)
        if self._bad_line is not None:
            self._events.append(FramingError(self._bad_line, raw))
            self._bad_line = None
            return True
        # Trailing CRs carry nothing; an echo of "AT\r\n" may come back as "AT\r\r\n".
        self._events.append(self._classify(raw[:-1].rstrip(b"\r"), raw))
        return True

    def _classify(self, line: bytes, raw: bytes) -> Event:
        if self._echo_expected is not None and line == self._echo_expected:
            self._echo_expected = None
            return Echo(line)
        if line in FINAL_RESULTS:
            self._echo_expected = None
            before_prompt = self._awaiting_prompt and line == b"OK"
            if self._format_asked is not None and not before_prompt:
                if line == b"OK":                # the device prints the new form from here on
                    self.set_data_format(*self._format_asked)
                self._format_asked = None
            return Final(line, before_prompt)
        if line.startswith(b"busy "):
            self._format_asked = None            # the command was dropped: nothing changed
            return Busy(line)
        if line == b"ready":
            self._formats.clear()                # a boot: every link back to the default form
            self._format_asked = None
            return Ready()
        match = _ERR_CODE.fullmatch(line)
        if match:
            return ErrCode(int(match.group(1), 16), line)
        match = _LINK_URC.fullmatch(line)
        if match and match.group(1) in LINK_URCS:
            return Urc(match.group(1), int(match.group(2)), line, raw)
        return Line(line, raw)


LINE_START, LINE, PAYLOAD, TRAILER = "line start", "line", "payload", "trailer"
# The reader per state; each returns True when it consumed something.
_READERS = {LINE_START: AtEngine._read_line_start, LINE: AtEngine._read_line,
            PAYLOAD: AtEngine._read_payload, TRAILER: AtEngine._read_payload_trailer}
