"""Command lines of the WebSocket AT command set, built from typed values.

ESP-AT strings are double-quoted; a `"`, `,` or `\\` inside one is escaped with a backslash.
Optional parameters are simply left off the end of the line.
"""
from __future__ import annotations

import re

_WSOPEN_LISTING = re.compile(rb"\+WSOPEN:(\d+),(\d+),")
_WSDATAFMT_SET = re.compile(rb"AT\+WSDATAFMT=(\d{1,3}),(\d{1,3}),(\d{1,3})")


def wsopen_listing(line: bytes) -> tuple[int, int] | None:
    """(link_id, state) of a `+WSOPEN:<link_id>,<state>,"<uri>"` line of AT+WSOPEN?, else None."""
    match = _WSOPEN_LISTING.match(line)
    return (int(match.group(1)), int(match.group(2))) if match else None


def wsdatafmt_of(command: bytes) -> tuple[int, int, int] | None:
    """(link_id, level, mask) of an `AT+WSDATAFMT=<link_id>,<level>,<mask>` line, else None."""
    match = _WSDATAFMT_SET.fullmatch(command.strip())
    return tuple(int(g) for g in match.groups()) if match else None


def quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace(",", "\\,")
    return f'"{escaped}"'


def _line(command: str, *params: object) -> str:
    """`command=` and the fields: trailing optional ones (None) left off, inner ones left empty."""
    values = list(params)
    while values and values[-1] is None:
        values.pop()
    return command + "=" + ",".join("" if v is None else str(v) for v in values)


def _quoted(text: str | None) -> str | None:
    return None if text is None else quote(text)


def wscfg(link_id: object, ping_intv_sec: object, ping_timeout_sec: object,
          buffer_size: object = None, auth_mode: object = None, pki_number: object = None,
          ca_number: object = None) -> str:
    # The TLS fields (profile tls) follow buffer_size; giving one leaves buffer_size empty.
    return _line("AT+WSCFG", link_id, ping_intv_sec, ping_timeout_sec, buffer_size, auth_mode,
                 pki_number, ca_number)


def wsopen(link_id: object, uri: str, subprotocol: str | None = None,
           timeout_ms: object = None, auth: str | None = None) -> str:
    # <link_id>,<"uri">[,<"subprotocol">][,<timeout_ms>][,<"auth">] (auth: profile auth): a later
    # field without the earlier ones leaves them empty. `auth` is a secret: register it with
    # AtClient.redact before the line is sent.
    return _line("AT+WSOPEN", link_id, quote(uri), _quoted(subprotocol), timeout_ms,
                 _quoted(auth))


def wssend(link_id: object, length: object, opcode: object = None,
           timeout_ms: object = None, fin: object = None) -> str:
    # fin (profile current) is the last field.
    return _line("AT+WSSEND", link_id, length, opcode, timeout_ms, fin)


def wsclose(link_id: object) -> str:
    return f"AT+WSCLOSE={link_id}"


def wshead(length: object) -> str:
    """AT+WSHEAD=<req_header_len> (profile wshead): a prompt and that many bytes; 0 clears."""
    return f"AT+WSHEAD={length}"


def wsdatafmt(link_id: object, level: object, mask: object) -> str:
    """AT+WSDATAFMT=<link_id>,<meta_data_level>,<meta_data_mask> (profile current)."""
    return _line("AT+WSDATAFMT", link_id, level, mask)


WSOPEN_QUERY = "AT+WSOPEN?"
WSHEAD_QUERY = "AT+WSHEAD?"


# The information lines each command prints before its final result (ESP-AT's command set); a
# command not listed prints none. None: free text (AT+GMR's version lines, AT+RST's boot output).
INFO_LINES: dict[bytes, tuple[bytes, ...] | None] = {
    b"AT+WSOPEN?": (b"+WSOPEN:",),
    b"AT+WSHEAD?": (b"+WSHEAD:",),
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
