"""Command lines of the WebSocket AT command set, built from typed values.

ESP-AT strings are double-quoted; a `"`, `,` or `\\` inside one is escaped with a backslash.
Optional parameters are simply left off the end of the line.
"""
from __future__ import annotations

import re

_WSOPEN_LISTING = re.compile(rb"\+WSOPEN:(\d+),(\d+),")


def wsopen_listing(line: bytes) -> tuple[int, int] | None:
    """(link_id, state) of a `+WSOPEN:<link_id>,<state>,"<uri>"` line of AT+WSOPEN?, else None."""
    match = _WSOPEN_LISTING.match(line)
    return (int(match.group(1)), int(match.group(2))) if match else None


def quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace(",", "\\,")
    return f'"{escaped}"'


def _line(command: str, *params: object) -> str:
    values = list(params)
    while values and values[-1] is None:
        values.pop()                             # trailing optional parameters left off
    return command + "=" + ",".join("" if v is None else str(v) for v in values)


def wscfg(link_id: object, ping_intv_sec: object, ping_timeout_sec: object,
          buffer_size: object = None) -> str:
    return _line("AT+WSCFG", link_id, ping_intv_sec, ping_timeout_sec, buffer_size)


def wsopen(link_id: object, uri: str, subprotocol: str | None = None,
           timeout_ms: object = None) -> str:
    # <link_id>,<"uri">[,<"subprotocol">][,<timeout_ms>]: a timeout without a subprotocol leaves
    # the subprotocol field empty.
    if subprotocol is None and timeout_ms is not None:
        return f"AT+WSOPEN={link_id},{quote(uri)},,{timeout_ms}"
    return _line("AT+WSOPEN", link_id, quote(uri),
                 None if subprotocol is None else quote(subprotocol), timeout_ms)


def wssend(link_id: object, length: object, opcode: object = None,
           timeout_ms: object = None) -> str:
    if opcode is None and timeout_ms is not None:
        return f"AT+WSSEND={link_id},{length},,{timeout_ms}"
    return _line("AT+WSSEND", link_id, length, opcode, timeout_ms)


def wsclose(link_id: object) -> str:
    return f"AT+WSCLOSE={link_id}"


WSOPEN_QUERY = "AT+WSOPEN?"


# The information lines each command prints before its final result (ESP-AT's command set); a
# command not listed prints none. None: free text (AT+GMR's version lines, AT+RST's boot output).
INFO_LINES: dict[bytes, tuple[bytes, ...] | None] = {
    b"AT+WSOPEN?": (b"+WSOPEN:",),
    b"AT+SYSRAM?": (b"+SYSRAM:",),
    b"AT+CMD?": (b"+CMD:",),
    b"AT+GMR": None,
    b"AT+RST": None,
    b"AT+CWMODE?": (b"+CWMODE:",),
    b"AT+CWJAP?": (b"+CWJAP:", b"No AP"),
    b"AT+CWJAP=": (b"+CWJAP:",),           # the failure code of a join
    b"AT+CIPSTA?": (b"+CIPSTA:",),
}


def documented_info_line(command: bytes, line: bytes) -> bool:
    """Whether `line` is one the command may print (its documented info line prefixes)."""
    for name, prefixes in INFO_LINES.items():
        if command == name or (name.endswith(b"=") and command.startswith(name)):
            return prefixes is None or line.startswith(prefixes)
    return False
