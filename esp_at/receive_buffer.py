"""The bytes the device sent that no event has taken yet (h11's ReceiveBuffer, for AT output).

Readers peek at the front and take what they consumed. The search for a line end remembers how
far it got, so a line fed one byte at a time is searched once, not once per byte; taking bytes
starts the next search at the front again (every reader takes from a line's start)."""
from __future__ import annotations


class ReceiveBuffer:
    def __init__(self) -> None:
        self._data = bytearray()
        self._searched = 0          # bytes at the front already searched for a line end

    def feed(self, data: bytes) -> None:
        self._data += data

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def __bytes__(self) -> bytes:
        return bytes(self._data)

    def __getitem__(self, index):
        """A peek: one byte (an int) or a slice (a bytearray); nothing is taken."""
        return self._data[index]

    def take(self, count: int) -> bytes:
        """The first `count` bytes, removed."""
        taken = bytes(self._data[:count])
        del self._data[:count]
        self._searched = 0
        return taken

    def drop(self, count: int) -> None:
        del self._data[:count]
        self._searched = 0

    def line_end(self) -> int:
        """Where the first LF is, or -1; the bytes searched are not searched again."""
        end = self._data.find(b"\n", self._searched)
        self._searched = max(len(self._data), 1) if end < 0 else end
        return end

    @property
    def in_line(self) -> bool:
        """A line was begun: its first bytes were searched and held no line end."""
        return self._searched > 0
