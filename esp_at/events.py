"""What the AT engine reports. Small immutable records, one per thing the device said."""
from __future__ import annotations

from dataclasses import dataclass, field


class Event:
    """Base of every engine event."""


@dataclass(frozen=True)
class Echo(Event):
    """The device repeating the command line it received (ATE1, the firmware default)."""
    line: bytes


@dataclass(frozen=True)
class Line(Event):
    """An information line: part of a command's response, or unsolicited text such as boot noise."""
    line: bytes
    raw: bytes = field(default=b"", compare=False)   # exactly as received, line end included


@dataclass(frozen=True)
class Final(Event):
    """A final result code: b'OK', b'ERROR', b'SEND OK' or b'SEND FAIL'."""
    result: bytes
    # An OK that came while a data-mode command awaited its '>' prompt: it does not end the command.
    before_prompt: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class Prompt(Event):
    """The data-mode prompt '>' (it has no line end)."""


@dataclass(frozen=True)
class Busy(Event):
    """'busy p...': the device was still executing the previous command and dropped this one."""
    line: bytes


@dataclass(frozen=True)
class ErrCode(Event):
    """'ERR CODE:0x........', which error-reporting firmware prints before ERROR."""
    code: int
    line: bytes


@dataclass(frozen=True)
class Ready(Event):
    """'ready': the device finished booting."""


@dataclass(frozen=True)
class Urc(Event):
    """A one-line WebSocket URC such as +WS_CONNECTED:<link_id>; `name` is b'+WS_CONNECTED'."""
    name: bytes
    link_id: int
    line: bytes
    raw: bytes = field(default=b"", compare=False)   # exactly as received, line end included


@dataclass(frozen=True)
class WsData(Event):
    """+WS_DATA:<link_id>[,<opcode>][,<fin>][,<payload_len>][,<payload_offset>][,<data_len>],<data>:
    `data` is exactly the raw data bytes. The fields are those the link's AT+WSDATAFMT mask
    prints, None where it prints none (the default form, `+WS_DATA:<link_id>,<data_len>,<data>`,
    has data_len alone). Only link_id and data take part in ==."""
    link_id: int
    data: bytes
    header: bytes = field(default=b"", compare=False)  # "+WS_DATA:<link_id>,...," as received
    opcode: int | None = field(default=None, compare=False)
    fin: int | None = field(default=None, compare=False)          # 0 or 1
    payload_len: int | None = field(default=None, compare=False)
    payload_offset: int | None = field(default=None, compare=False)
    data_len: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class FramingError(Event):
    """Bytes that break the framing the engine knows (for example +WS_DATA not followed by CR-LF).
    The engine reports them and resynchronises at the next line."""
    detail: str
    raw: bytes


# A +WS_DATA whose payload is not followed by CR-LF: a URC the device printed in the wrong form
# (a length or a field too many), not noise on the line.
BAD_WS_DATA_TRAILER = "+WS_DATA payload not followed by CR-LF"

FINAL_RESULTS = (b"OK", b"ERROR", b"SEND OK", b"SEND FAIL")
LINK_URCS = (b"+WS_CONNECTED", b"+WS_DISCONNECTED", b"+WS_CLOSED")
# Lines ESP-AT prints on its own that are not WebSocket URCs (its Wi-Fi status messages).
SYSTEM_MESSAGES = (b"WIFI CONNECTED", b"WIFI GOT IP", b"WIFI DISCONNECT")
