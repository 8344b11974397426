"""The board's SPI NOR flash: bytes that survive a reset, in memory or in a file.

Like NOR flash, a write only programs bits from 1 to 0 (the result is old AND new), so data
lands intact only on erased (0xFF) bytes: the ROM loader and the flasher stub erase before they
write, and a model that forgot to would show it. A file-backed flash is written through (each
write, erase and erase_all reaches the file before it returns), so another process opening the
same file sees the image, and a flashed model keeps it across runs.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

DEFAULT_SIZE = 4 << 20
SECTOR_SIZE = 4096
# JEDEC RDID: manufacturer XMC, memory type 0x40; the capacity byte is log2(size).
MANUFACTURER_ID = 0x20
MEMORY_TYPE = 0x40
_ERASED = 0xFF


class Flash:
    """`Flash()` in memory, `Flash(path)` backed by a file (created erased when missing)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, size: int = DEFAULT_SIZE) -> None:
        if size < SECTOR_SIZE or size & (size - 1):
            raise ValueError(f"flash size must be a power of two of at least {SECTOR_SIZE} bytes, "
                             f"not {size}")
        self._size = size
        self._file = None
        self._mem: bytearray | None = None
        if path is None:
            self._mem = bytearray(b"\xff" * size)
            return
        path = Path(path)
        if not path.exists():
            path.write_bytes(b"\xff" * size)
        actual = path.stat().st_size
        if actual != size:
            raise ValueError(f"flash image {str(path)!r} holds {actual} bytes, not the {size} of "
                             "this flash")
        self._file = open(path, "r+b", buffering=0)

    @property
    def size(self) -> int:
        return self._size

    @property
    def flash_id(self) -> int:
        """The JEDEC id (RDID, 0x9F) as its three bytes read: manufacturer, memory type,
        capacity; esptool prints manufacturer and device (type and capacity) from it."""
        return (MANUFACTURER_ID << 16) | (MEMORY_TYPE << 8) | (self._size.bit_length() - 1)

    def read(self, offset: int, n: int) -> bytes:
        self._check(offset, n, "read")
        if self._mem is not None:
            return bytes(self._mem[offset:offset + n])
        self._file.seek(offset)
        return self._file.read(n)

    def write(self, offset: int, data: bytes) -> None:
        """Program `data` at `offset`: each byte becomes old AND new (NOR flash)."""
        n = len(data)
        self._check(offset, n, "write")
        old = self.read(offset, n)
        programmed = (int.from_bytes(old, "little") & int.from_bytes(data, "little")).to_bytes(n, "little")
        self._put(offset, programmed)

    def erase(self, offset: int, n: int) -> None:
        """Set `n` bytes at `offset` to 0xFF (the loaders erase whole 4 KiB sectors)."""
        self._check(offset, n, "erase")
        self._put(offset, bytes([_ERASED]) * n)

    def erase_all(self) -> None:
        self._put(0, bytes([_ERASED]) * self._size)

    def md5(self, offset: int, n: int) -> bytes:
        return hashlib.md5(self.read(offset, n)).digest()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "Flash":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _put(self, offset: int, data: bytes) -> None:
        if self._mem is not None:
            self._mem[offset:offset + len(data)] = data
            return
        self._file.seek(offset)
        self._file.write(data)      # unbuffered: in the file (the OS page cache) on return

    def _check(self, offset: int, n: int, what: str) -> None:
        if offset < 0 or n < 0 or offset + n > self._size:
            raise ValueError(f"flash {what} of {n} bytes at {offset:#x} is outside the "
                             f"{self._size:#x}-byte flash")
