"""SLIP framing of the serial download protocol, without I/O (RFC 1055 as esptool and the ROM
use it: every frame starts and ends with 0xC0; 0xC0 and 0xDB inside are sent as 0xDB 0xDC and
0xDB 0xDD).

The decoder is lenient where the link is noisy and strict inside a frame: bytes between frames
(a boot log, line noise) are skipped, an empty frame (0xC0 0xC0) is just a delimiter, and a frame
with a bad escape or longer than `max_frame` is dropped whole, up to its closing 0xC0.
"""
from __future__ import annotations

import logging

log = logging.getLogger("sim.rom.slip")

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD
_END = bytes([END])
_ESC = bytes([ESC])

# The header's size field is 16 bits: no request can be longer than this.
MAX_FRAME = 8 + 0xFFFF


def slip_encode(payload: bytes) -> bytes:
    """One frame: 0xC0, the escaped payload, 0xC0."""
    return _END + payload.replace(_ESC, bytes([ESC, ESC_ESC])).replace(_END, bytes([ESC, ESC_END])) + _END


class SlipDecoder:
    """Feed it bytes as they arrive; `feed` returns the frames completed by them."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._in_frame = False
        self._dropping = False      # inside a broken frame: skip to its closing 0xC0
        self._escaping = False
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        pos, n = 0, len(data)
        while pos < n:
            end = data.find(_END, pos)
            stop = n if end < 0 else end
            if not self._in_frame:
                if stop > pos:
                    log.debug("skipped %d bytes outside a frame: %r", stop - pos, data[pos:stop][:32])
                if end >= 0:
                    self._start()
            else:
                if not self._dropping:
                    self._take(data[pos:stop])
                if end >= 0:
                    frame = self._close()
                    if frame:
                        frames.append(frame)
            if end < 0:
                break
            pos = end + 1
        return frames

    def _start(self) -> None:
        self._in_frame = True
        self._dropping = self._escaping = False
        self._buf.clear()

    def _close(self) -> bytes | None:
        if self._dropping:
            self._in_frame = False
            return None
        if self._escaping:
            self._drop("escape byte 0xDB right before the closing 0xC0")
            self._in_frame = False
            return None
        if not self._buf:
            return None             # 0xC0 0xC0: still waiting for the frame to start
        self._in_frame = False
        return bytes(self._buf)

    def _take(self, chunk: bytes) -> None:
        pos = 0
        if self._escaping and chunk:
            if not self._unescape(chunk[0]):
                return
            pos = 1
        while True:
            esc = chunk.find(_ESC, pos)
            if esc < 0:
                self._buf += chunk[pos:]
                break
            self._buf += chunk[pos:esc]
            if esc + 1 == len(chunk):
                self._escaping = True
                break
            if not self._unescape(chunk[esc + 1]):
                return
            pos = esc + 2
        if len(self._buf) > self.max_frame:
            self._drop(f"frame longer than {self.max_frame} bytes")

    def _unescape(self, byte: int) -> bool:
        self._escaping = False
        if byte == ESC_END:
            self._buf.append(END)
        elif byte == ESC_ESC:
            self._buf.append(ESC)
        else:
            self._drop(f"invalid escape 0xDB {byte:#04x}")
            return False
        return True

    def _drop(self, why: str) -> None:
        log.debug("dropped a frame: %s", why)
        self._dropping = True
        self._buf.clear()
