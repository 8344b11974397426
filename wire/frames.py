"""WebSocket frames: encode one, and parse a byte stream into frames incrementally (sans-IO)."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
DATA_OPCODES = (OP_CONTINUATION, OP_TEXT, OP_BINARY)
CONTROL_OPCODES = tuple(range(0x8, 0x10))
RESERVED_OPCODES = tuple(range(0x3, 0x8)) + tuple(range(0xB, 0x10))   # RFC 6455 5.2


@dataclass(frozen=True)
class Frame:
    """One frame as it was on the wire; `payload` is already unmasked."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0  # the three RSV bits as a number 0..7 (RSV1 is 4)
    masked: bool = False
    mask_key: bytes | None = None
    length_bits: int = 7  # how the length was written: 7, 16 or 64 bits (RFC 6455 5.2)

    @property
    def minimal_length(self) -> bool:
        """The payload length is written in the shortest form RFC 6455 5.2 allows."""
        return self.length_bits == minimal_length_bits(len(self.payload))

    @property
    def is_control(self) -> bool:
        return self.opcode >= 0x8

    def close_code(self) -> int | None:
        """The status code of a close frame, or None when it carries none."""
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    def close_reason(self) -> bytes:
        return self.payload[2:] if self.opcode == OP_CLOSE else b""


def apply_mask(data: bytes, key: bytes) -> bytes:
    """XOR data with the 4-byte key (masking and unmasking are the same operation)."""
    if not data:
        return b""
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(data), "big")


def minimal_length_bits(length: int) -> int:
    return 7 if length < 126 else 16 if length < 1 << 16 else 64


def encode_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
                 mask: bool = False, mask_key: bytes | None = None,
                 length_bits: int | None = None) -> bytes:
    """The bytes of one frame. Nothing is checked: callers may build frames RFC 6455 forbids,
    a longer length form than needed (`length_bits` 16 or 64) among them."""
    first = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    bits = length_bits or minimal_length_bits(length)
    if bits == 7:
        header = struct.pack("!BB", first, mask_bit | length)
    elif bits == 16:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return header + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return header + key + apply_mask(payload, key)


def close_payload(code: int | None = None, reason: bytes | str = b"") -> bytes:
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


@dataclass(frozen=True)
class PartialFrame:
    """The frame a stream ended inside: its header as far as it arrived, and the payload bytes
    that came (unmasked). `length` is the declared length, None when the header itself is cut."""

    opcode: int
    fin: bool
    rsv: int
    masked: bool
    length: int | None
    payload: bytes
    received: int                 # bytes of the frame that arrived, header included
    mask_key: bytes | None = None


class FrameParser:
    """Feed bytes, take complete frames. Keeps partial frames across calls; never raises on odd
    frames (reserved opcodes, RSV bits, oversized control frames): it reports what it saw.
    `feed_timed` also tells when each frame's first byte arrived (a frame's header and payload
    may come in separate segments), and `partial()` what is known of a frame cut short."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._started: float | None = None   # when the first byte of the frame at the head came

    def feed(self, data: bytes) -> list[Frame]:
        return [frame for frame, _ in self.feed_timed(data, 0.0)]

    def feed_timed(self, data: bytes, time: float) -> list[tuple[Frame, float]]:
        """Complete frames, each with the time its first byte arrived (`time` is this chunk's)."""
        if not self._buffer and data:
            self._started = time
        self._buffer += data
        frames = []
        while True:
            frame = self._next_frame()
            if frame is None:
                return frames
            frames.append((frame, self._started if self._started is not None else time))
            # Frames complete on the feed that brings their last byte, so what is left began in
            # this chunk.
            self._started = time if self._buffer else None

    @property
    def pending(self) -> int:
        """Bytes held that do not yet make a whole frame."""
        return len(self._buffer)

    def partial(self) -> PartialFrame | None:
        """The incomplete frame held, as far as its bytes go; None when nothing is held."""
        buf = bytes(self._buffer)
        if not buf:
            return None
        first = buf[0]
        opcode, fin, rsv = first & 0x0F, bool(first & 0x80), (first >> 4) & 0x7
        if len(buf) < 2:
            return PartialFrame(opcode, fin, rsv, False, None, b"", len(buf))
        masked = bool(buf[1] & 0x80)
        length: int | None = buf[1] & 0x7F
        offset = 2
        if length == 126:
            length = struct.unpack_from("!H", buf, 2)[0] if len(buf) >= 4 else None
            offset = 4
        elif length == 127:
            length = struct.unpack_from("!Q", buf, 2)[0] if len(buf) >= 10 else None
            offset = 10
        if length is None:
            return PartialFrame(opcode, fin, rsv, masked, None, b"", len(buf))
        key = buf[offset:offset + 4] if masked else b""
        if masked:
            offset += 4
            if len(key) < 4:
                return PartialFrame(opcode, fin, rsv, masked, length, b"", len(buf))
        payload = buf[offset:]
        return PartialFrame(opcode, fin, rsv, masked, length,
                            apply_mask(payload, key) if masked else payload, len(buf),
                            key if masked else None)

    def _next_frame(self) -> Frame | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        length = second & 0x7F
        offset = 2
        bits = 7
        if length == 126:
            if len(buf) < 4:
                return None
            length = struct.unpack_from("!H", buf, 2)[0]
            offset, bits = 4, 16
        elif length == 127:
            if len(buf) < 10:
                return None
            length = struct.unpack_from("!Q", buf, 2)[0]
            offset, bits = 10, 64
        masked = bool(second & 0x80)
        key = None
        if masked:
            if len(buf) < offset + 4:
                return None
            key = bytes(buf[offset:offset + 4])
            offset += 4
        if len(buf) < offset + length:
            return None
        payload = bytes(buf[offset:offset + length])
        del buf[:offset + length]
        if masked:
            payload = apply_mask(payload, key)
        return Frame(opcode=first & 0x0F, payload=payload, fin=bool(first & 0x80),
                     rsv=(first >> 4) & 0x7, masked=masked, mask_key=key, length_bits=bits)
