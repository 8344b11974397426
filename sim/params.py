"""ESP-AT parameter syntax: split a set command's argument text into typed fields.

ESP-AT splits on every comma that is not escaped, inside quotes or not (field-defects H2: a bare
comma inside "..." breaks the string), so a quoted string that contains a comma must write it `\\,`.
A backslash takes the next character literally (`\\"`, `\\\\`, `\\,`). Integers are decimal digits
only: no sign other than `-`, no `0x`, no spaces (field-defects H1). See spec/AMBIGUITIES.md P-1..P-4.
"""
from __future__ import annotations

from dataclasses import dataclass

import spec
from sim.behaviour import CONFORMING, Behaviour

# ESP-AT refuses a command line longer than this, CR-LF excluded (BEHAVIOUR.md "Opening").
MAX_COMMAND_LINE_BYTES = spec.load().at.command_line_max_bytes


class ParamError(ValueError):
    """A malformed or out-of-range parameter: the command answers ERROR."""


@dataclass(frozen=True)
class Field:
    """One comma-separated field as written: `quoted` tells a string from a bare token."""

    text: str
    quoted: bool

    @property
    def empty(self) -> bool:
        return not self.quoted and self.text == ""


def split_fields(args: str, fw: Behaviour = CONFORMING) -> list[Field]:
    """Split the text after `=` into fields; raises ParamError on broken quoting."""
    raw_fields: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(args):
        ch = args[i]
        if ch == "\\" and i + 1 < len(args):
            current.append(args[i:i + 2])  # keep the escape; it is resolved per field below
            i += 2
            continue
        if ch == ",":
            raw_fields.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    raw_fields.append("".join(current))
    return [_field(raw, fw) for raw in raw_fields]


def _field(raw: str, fw: Behaviour) -> Field:
    if not raw.startswith('"'):
        if '"' in raw or "\\" in raw:
            raise ParamError(f"stray quote or escape in bare field {raw!r}")
        return Field(raw, quoted=False)
    body = raw[1:]
    out: list[str] = []
    i = 0
    closed = False
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body):
                raise ParamError(f"dangling escape in {raw!r}")
            out.append(body[i:i + 2] if fw.escapes_kept else body[i + 1])
            i += 2
            continue
        if ch == '"':
            if i != len(body) - 1:
                raise ParamError(f"unescaped quote inside {raw!r}")
            closed = True
            i += 1
            continue
        out.append(ch)
        i += 1
    if not closed:
        raise ParamError(f"unterminated string {raw!r}")
    return Field("".join(out), quoted=True)


class Params:
    """Typed, positional access to the fields of one set command."""

    def __init__(self, args: str, *, min_count: int, max_count: int,
                 fw: Behaviour = CONFORMING) -> None:
        self.fw = fw
        self.fields = split_fields(args, fw)
        if fw.extra_fields_ignored:
            del self.fields[max_count:]
        if not min_count <= len(self.fields) <= max_count:
            raise ParamError(f"expected {min_count}..{max_count} fields, got {len(self.fields)}")

    def _get(self, index: int) -> Field | None:
        """The field, or None when it is omitted or written empty (`,,`)."""
        if index >= len(self.fields) or self.fields[index].empty:
            return None
        return self.fields[index]

    def int(self, index: int, lo: int, hi: int, default: int | None = None) -> int:
        """A decimal integer in [lo, hi]; `default` for an omitted/empty optional field."""
        field = self._get(index)
        if field is None:
            if self.fw.empty_optional_is_zero and index < len(self.fields):
                field = Field("0", quoted=False)       # written empty: read as 0
            elif default is None:
                raise ParamError(f"field {index} is required")
            else:
                return default
        if field.quoted:
            raise ParamError(f"field {index} must be a number, got a string")
        value = parse_number(field.text, self.fw)
        if not lo <= value <= hi:
            raise ParamError(f"field {index} = {value} outside [{lo},{hi}]")
        return value

    def is_present(self, index: int) -> bool:
        return self._get(index) is not None

    def str(self, index: int, default: str | None = None) -> str:
        """A double-quoted string, unescaped; `default` for an omitted/empty optional field."""
        field = self._get(index)
        if field is None:
            if default is None:
                raise ParamError(f"field {index} is required")
            return default
        if not field.quoted and not self.fw.unquoted_strings:
            raise ParamError(f"field {index} must be a quoted string")
        return field.text


def parse_number(text: str, fw: Behaviour = CONFORMING) -> int:
    """A number as this firmware reads it: decimal (parse_decimal), and what a defect adds."""
    if fw.hex_numbers and text.lower().startswith("0x"):
        try:
            return int(text[2:], 16)
        except ValueError:
            raise ParamError(f"not a hex integer: {text!r}") from None
    value = parse_decimal(text)
    if fw.numbers_wrap_32bit:
        value = value % (1 << 32)
    return value


def parse_decimal(text: str) -> int:
    """Decimal digits with an optional leading '-' (so -1 reaches the range check)."""
    digits = text[1:] if text.startswith("-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ParamError(f"not a decimal integer: {text!r}")
    return int(text)
