"""What a command handler hands back to the line discipline, and the exact result bytes
(BEHAVIOUR.md "Exact bytes on the AT port")."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Union

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
SEND_OK = b"\r\nSEND OK\r\n"
DATA_PROMPT = b"\r\nOK\r\n\r\n>"  # no trailing space
BUSY = b"\r\nbusy p...\r\n"
READY = b"\r\nready\r\n"


@dataclass
class DataRequest:
    """Enter data mode: show `prompt`, take exactly `length` raw bytes, then run `on_data` (the
    port is busy meanwhile) and print what it returns."""

    length: int
    on_data: Callable[[bytes], Awaitable[bytes]]
    prompt: bytes = DATA_PROMPT


# bytes: print and done. Coroutine: the port is busy until it returns the bytes to print.
Reply = Union[bytes, Coroutine[Any, Any, bytes], DataRequest]


def info(*lines: str | bytes) -> bytes:
    """Info lines followed by OK."""
    out = b"".join((line.encode() if isinstance(line, str) else line) + b"\r\n" for line in lines)
    return out + OK
