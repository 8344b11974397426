"""Secret values the client must never record (AT+WSOPEN's <auth>): each is replaced by
`<secret>` in what the client keeps — transcript, command lines, failure texts.

Received bytes come in reads of any size, and the device echoes the command line that holds the
secret (ATE1), so a secret can be split over several reads: `held_tail` tells how much of a
chunk's end could still become one, so that the recorder waits for the rest before it records.
"""
from __future__ import annotations

SHOWN = b"<secret>"


class Redactions:
    def __init__(self) -> None:
        self._values: list[bytes] = []           # longest first: a value inside another goes last

    def add(self, value: bytes) -> None:
        if value and value not in self._values:
            self._values.append(value)
            self._values.sort(key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._values)

    def apply(self, data: bytes) -> bytes:
        for value in self._values:
            data = data.replace(value, SHOWN)
        return data

    def apply_text(self, text: str) -> str:
        """`text` (a transcript, a server's record, a failure message) with every value hidden."""
        shown = SHOWN.decode()
        for value in self._values:
            for form in _written_forms(value):
                text = text.replace(form, shown)
        return text

    def held_tail(self, data: bytes) -> int:
        """The length of the longest end of `data` that is the start of a value (0: none)."""
        longest = 0
        for value in self._values:
            for size in range(min(len(value) - 1, len(data)), longest, -1):
                if data.endswith(value[:size]):
                    longest = size
                    break
        return longest


def _written_forms(value: bytes) -> list[str]:
    """How a text may spell `value`: as it is, and inside a bytes or str repr (a `\\` or a
    control character is escaped there), the longer first."""
    plain = value.decode("latin-1")
    forms = {plain, repr(value)[2:-1], repr(plain)[1:-1]}
    return sorted(forms, key=len, reverse=True)
