"""The ESP-AT protocol engine, sans-IO: feed it the bytes the device sent, take events out.

It never reads, writes or sleeps, so it is tested to the byte and behaves the same whether bytes
arrive whole or one at a time. Three reader states, as in h11:
  line start  -> skips empty lines, recognises the '>' prompt and the +WS_DATA header;
  line        -> a CR-LF terminated line, classified as echo / final / URC / busy / plain line;
  payload     -> exactly <len> raw bytes after a +WS_DATA header, then the CR-LF that ends it.
"""
from __future__ import annotations

import re
from collections import deque

from .events import (FINAL_RESULTS, LINK_URCS, Busy, Echo, ErrCode, Event, Final, FramingError,
                     Line, Prompt, Ready, Urc, WsData)


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()

WS_DATA_PREFIX = b"+WS_DATA:"
MAX_LINE_BYTES = 16384      # ESP-AT's longest line is a few hundred bytes
# The default +WS_DATA form (all releases; AT+WSDATAFMT's default mask 48 gives the same).
_WS_DATA_HEADER = re.compile(rb"\+WS_DATA:(\d{1,2}),(\d{1,6}),")
# What a header can look like while its bytes are still arriving.
_WS_DATA_HEADER_SO_FAR = re.compile(rb"\+WS_DATA:(\d{0,2}|\d{1,2},\d{0,6})")
_LINK_URC = re.compile(rb"(\+WS_[A-Z]+):(\d+)")
_ERR_CODE = re.compile(rb"ERR CODE:0x([0-9a-fA-F]{1,8})")


class AtEngine:
    """Turns the device's byte stream into events.

    The engine is told what the host sent (`command`) so that it can tell the command's echo from
    an information line that happens to look the same later on, and so that a '>' at the start of
    a line is read as the data prompt only while a data-mode command is waiting for it.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._searched = 0          # bytes of the current line already searched for LF
        self._events: deque[Event] = deque()
        self._echo_expected: bytes | None = None
        self._awaiting_prompt = False
        self._payload: tuple[int, int, bytes] | None = None  # (link_id, length, header) of +WS_DATA
        self._payload_trailer = False                   # expecting the CR-LF after a payload

    # ---- what the host sends -------------------------------------------------------------

    def command(self, text: bytes | str, *, expects_prompt: bool = False) -> bytes:
        """Note a command the host is about to send; returns the bytes to write (with CR-LF)."""
        line = text.encode() if isinstance(text, str) else bytes(text)
        if b"\r" in line or b"\n" in line:
            raise ValueError(f"an AT command is one line; got {line!r}")
        self._echo_expected = line
        self._awaiting_prompt = expects_prompt
        return line + b"\r\n"

    # ---- what the device sends -----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        self._buffer += data
        while self._step():
            pass

    def next_event(self) -> Event | _NeedData:
        return self._events.popleft() if self._events else NEED_DATA

    def feed(self, data: bytes) -> list[Event]:
        """receive_data, then every event that is ready."""
        self.receive_data(data)
        events = list(self._events)
        self._events.clear()
        return events

    @property
    def buffered(self) -> bytes:
        """Bytes received that do not yet make an event (for failure messages)."""
        return bytes(self._buffer)

    @property
    def awaiting_prompt(self) -> bool:
        return self._awaiting_prompt

    @property
    def payload_missing(self) -> int:
        """Bytes a +WS_DATA header announced that have not come (0 when not inside one)."""
        if self._payload is None:
            return 0
        return max(0, self._payload[1] - len(self._buffer))

    # ---- readers: each returns True when it consumed something --------------------------

    def _step(self) -> bool:
        if self._payload_trailer:
            return self._read_payload_trailer()
        if self._payload is not None:
            return self._read_payload()
        if self._searched == 0:
            handled = self._read_line_start()
            if handled is not None:
                return handled
        return self._read_line()

    def _read_line_start(self) -> bool | None:
        """True/False when the start of the buffer was handled here; None to read a plain line."""
        buf = self._buffer
        if not buf:
            return False
        first = buf[0]
        if first == 0x0A:                       # an empty line, or the LF of one
            del buf[:1]
            return True
        if first == 0x0D:
            if len(buf) == 1:
                return False                     # CR alone: wait to see what follows
            del buf[:2 if buf[1] == 0x0A else 1]
            return True
        if first == ord(">") and self._awaiting_prompt:
            del buf[:1]
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
        match = _WS_DATA_HEADER.match(buf)
        if match:
            self._payload = (int(match.group(1)), int(match.group(2)), bytes(match.group(0)))
            del buf[:match.end()]              # after reading the groups: they view the buffer
            return True
        if _WS_DATA_HEADER_SO_FAR.fullmatch(buf):
            return False
        # Not a header we can frame: report the line and go on reading lines.
        end = buf.find(b"\n")
        if end < 0:
            return False
        raw = bytes(buf[:end + 1])
        del buf[:end + 1]
        self._events.append(FramingError("malformed +WS_DATA header", raw))
        return True

    def _read_payload(self) -> bool:
        link_id, length, header = self._payload
        if len(self._buffer) < length:
            return False
        data = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._payload = None
        self._payload_trailer = True
        self._events.append(WsData(link_id, data, header))
        return True

    def _read_payload_trailer(self) -> bool:
        buf = self._buffer
        if len(buf) < 2:
            if buf and buf[0] != 0x0D:
                return self._bad_trailer()
            return False
        if buf[:2] == b"\r\n":
            del buf[:2]
            self._payload_trailer = False
            return True
        return self._bad_trailer()

    def _bad_trailer(self) -> bool:
        self._payload_trailer = False
        # Only the first offending byte: what else is buffered depends on how bytes were chunked.
        self._events.append(FramingError("+WS_DATA payload not followed by CR-LF",
                                         bytes(self._buffer[:1])))
        return True                              # resynchronise: read on from here as lines

    def _read_line(self) -> bool:
        buf = self._buffer
        end = buf.find(b"\n", self._searched)
        if end < 0:
            if len(buf) > MAX_LINE_BYTES:        # garbage with no line end: do not hoard it
                raw = bytes(buf[:MAX_LINE_BYTES])
                del buf[:MAX_LINE_BYTES]
                self._searched = 0
                self._events.append(FramingError(f"more than {MAX_LINE_BYTES} bytes without a "
                                                 f"line end", raw))
                return True
            self._searched = max(len(buf), 1)
            return False
        raw = bytes(buf[:end + 1])
        del buf[:end + 1]
        self._searched = 0
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
            if line != b"OK":
                self._awaiting_prompt = False
            return Final(line, before_prompt)
        if line.startswith(b"busy "):
            return Busy(line)
        if line == b"ready":
            return Ready()
        match = _ERR_CODE.fullmatch(line)
        if match:
            return ErrCode(int(match.group(1), 16), line)
        match = _LINK_URC.fullmatch(line)
        if match and match.group(1) in LINK_URCS:
            return Urc(match.group(1), int(match.group(2)), line, raw)
        return Line(line, raw)
