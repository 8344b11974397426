"""What a device sent on one TCP connection, as it was on the wire: the request head, then frames.

The recorder is fed the connection's raw bytes before aiohttp sees them, so nothing aiohttp
joins (fragments), hides (mask, RSV bits) or stops delivering (frames after a close) is lost.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wire.frames import Frame, FrameParser

HEAD_END = b"\r\n\r\n"
OPCODE_NAMES = {0x0: "CONT", 0x1: "TEXT", 0x2: "BINARY", 0x8: "CLOSE", 0x9: "PING", 0xA: "PONG"}
_REPR_PAYLOAD = 80  # bytes of payload shown in failure messages; longer payloads are cut


@dataclass(frozen=True)
class Handshake:
    """The opening request exactly as received; `headers` keep wire order and spelling."""

    time: float
    method: str
    path: str
    query: str  # the raw text after '?', '' when there is none
    headers: list[tuple[str, str]]
    raw: bytes  # the whole request head, final CRLFCRLF included

    def header(self, name: str) -> str | None:
        """The first header of that name (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def __repr__(self) -> str:
        return f"Handshake(t={self.time:.3f}, {self.raw!r})"

    def words(self) -> str:
        """For a report: the request head, exactly."""
        return f"handshake: {self.raw!r}"


@dataclass(frozen=True)
class RecordedFrame:
    """One frame the device sent, with the time its last byte arrived (time.monotonic()). A frame
    the connection ended inside is recorded as far as it arrived: `declared_length` is then the
    length its header gave (None when even the length was cut), `cut` says why it ended."""

    time: float
    frame: Frame
    cut: str = ""                        # "" for a whole frame
    declared_length: int | None = None

    @property
    def complete(self) -> bool:
        return not self.cut

    def __repr__(self) -> str:
        f = self.frame
        name = OPCODE_NAMES.get(f.opcode, "RESERVED")
        payload = f.payload[:_REPR_PAYLOAD]
        more = f"...(+{len(f.payload) - _REPR_PAYLOAD} bytes)" if len(f.payload) > _REPR_PAYLOAD else ""
        cut = f", CUT after {len(f.payload)} of {self.declared_length} payload bytes: " \
              f"{self.cut}" if self.cut else ""
        return (f"RecordedFrame(t={self.time:.3f}, opcode=0x{f.opcode:X} {name}, fin={f.fin}, "
                f"rsv={f.rsv}, masked={f.masked}, mask_key={f.mask_key!r}, "
                f"payload={payload!r}{more}{cut})")

    def words(self) -> str:
        """For a report: `PING fin=1 masked (key 84c4ca28), 0 bytes: b''`."""
        f = self.frame
        name = OPCODE_NAMES.get(f.opcode, f"RESERVED 0x{f.opcode:X}")
        mask = ("NOT masked" if not f.masked else "masked (key not arrived)"
                if f.mask_key is None else f"masked (key {f.mask_key.hex()})")
        rsv = f" rsv={f.rsv}" if f.rsv else ""
        more = f"...(+{len(f.payload) - _REPR_PAYLOAD} bytes)" if len(f.payload) > _REPR_PAYLOAD else ""
        if self.cut:
            declared = "?" if self.declared_length is None else self.declared_length
            return (f"{name} fin={int(f.fin)}{rsv} {mask}, CUT: {len(f.payload)} of {declared} "
                    f"bytes arrived ({self.cut}): {f.payload[:_REPR_PAYLOAD]!r}{more}")
        return (f"{name} fin={int(f.fin)}{rsv} {mask}, {len(f.payload)} bytes: "
                f"{f.payload[:_REPR_PAYLOAD]!r}{more}")


@dataclass(frozen=True)
class TlsHandshake:
    """One TLS handshake a wss:// server ran, from the TCP accept to its end. A failed one never
    reaches HTTP, so no request names a path and no endpoint records it: the server keeps it."""

    started: float  # the TCP accept (time.monotonic())
    ended: float
    peer: str  # host:port the connection came from
    completed: bool
    client_cert_cn: str | None = None  # completed: the CN of the certificate the client presented
    # failed: OpenSSL's reason code (PEER_DID_NOT_RETURN_A_CERTIFICATE, TLSV1_ALERT_UNKNOWN_CA,
    # ...) or, with no TLS error, the exception's name (ConnectionResetError: the client closed
    # the connection during the handshake, as a client that drops it without an alert does)
    reason: str | None = None
    error: str | None = None  # failed: the whole error text

    @property
    def failed(self) -> bool:
        return not self.completed

    def words(self) -> str:
        """For a report: `TLS handshake from 127.0.0.1:5 failed (0.004 s): PEER_DID_...: ...`."""
        took = f"{self.ended - self.started:.3f} s"
        if self.completed:
            cert = (f"client certificate CN {self.client_cert_cn!r}" if self.client_cert_cn
                    else "no client certificate")
            return f"TLS handshake from {self.peer} completed ({took}), {cert}"
        detail = f": {self.error}" if self.error else ""
        return f"TLS handshake from {self.peer} failed ({took}): {self.reason}{detail}"


def parse_request_head(raw: bytes, time: float) -> Handshake:
    """Split a request head into its parts without normalising anything."""
    lines = raw[: -len(HEAD_END)].decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    target = rest.rpartition(" ")[0] if " " in rest else rest
    path, _, query = target.partition("?")
    headers = []
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers.append((key.strip(), value.strip()))
    return Handshake(time=time, method=method, path=path, query=query, headers=headers, raw=raw)


class WireTap:
    """Collects one connection's received bytes; hands out the request head once aiohttp has
    parsed it, and from then on turns every further byte into frames."""

    def __init__(self) -> None:
        self._held: list[tuple[float, bytes]] = []  # chunks not yet assigned to head or frames
        self._parser: FrameParser | None = None
        self._on_frame: Callable[[RecordedFrame], None] | None = None
        self.received = 0  # total bytes seen, for diagnostics

    def feed(self, data: bytes, time: float) -> None:
        self.received += len(data)
        if self._parser is None:
            self._held.append((time, data))
            return
        self._parse(data, time)

    def take_head(self) -> tuple[bytes, float] | None:
        """The request head at the front of the held bytes and the time its end arrived; the
        rest stays held. aiohttp dispatches a request only once its head is complete, so by the
        time a handler asks, the whole head is here."""
        joined = b"".join(chunk for _, chunk in self._held)
        end = joined.find(HEAD_END)
        if end < 0:
            return None
        end += len(HEAD_END)
        consumed = 0
        for index, (time, chunk) in enumerate(self._held):
            if consumed + len(chunk) >= end:
                rest = chunk[end - consumed:]
                self._held = ([(time, rest)] if rest else []) + self._held[index + 1:]
                return joined[:end], time
            consumed += len(chunk)
        raise AssertionError("unreachable: head end lies inside the held chunks")

    def start_frames(self, on_frame: Callable[[RecordedFrame], None]) -> None:
        """Parse everything after the head as frames, the held bytes first."""
        self._parser = FrameParser()
        self._on_frame = on_frame
        held, self._held = self._held, []
        for time, chunk in held:
            self._parse(chunk, time)

    def cut(self, time: float, why: str) -> RecordedFrame | None:
        """The frame the connection ended inside, as far as it arrived (None: none pending)."""
        if self._parser is None:
            return None
        partial = self._parser.partial()
        if partial is None:
            return None
        frame = Frame(opcode=partial.opcode, payload=partial.payload, fin=partial.fin,
                      rsv=partial.rsv, masked=partial.masked, mask_key=partial.mask_key)
        return RecordedFrame(time=time, frame=frame, cut=why, declared_length=partial.length)

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame (or unclaimed bytes before frames started)."""
        if self._parser is None:
            return sum(len(chunk) for _, chunk in self._held)
        return self._parser.pending

    def _parse(self, data: bytes, time: float) -> None:
        assert self._parser is not None and self._on_frame is not None
        for frame in self._parser.feed(data):
            self._on_frame(RecordedFrame(time=time, frame=frame))


def peer_address(peername: object) -> str:
    """`host:port` (`[host]:port` for IPv6) of a transport's peername, `?` when there is none."""
    if not isinstance(peername, tuple) or len(peername) < 2:
        return "?"
    host, port = peername[0], peername[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def common_name(peercert: dict | None) -> str | None:
    """The subject CN of ssl's `getpeercert()` dict (None: no certificate, or not TLS)."""
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None
