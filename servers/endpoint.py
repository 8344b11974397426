"""An endpoint: one path on the server with its scripted behaviour, the connections the device
made to it, and synchronous waits over what they recorded.

Behaviour is read by the event loop when it needs it (at the handshake, per message, per ping),
so changing it between or during connections takes effect from the next such moment.
"""
from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from wire.frames import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, close_payload, encode_frame

from .connection import Connection
from .recorder import RecordedFrame, TlsHandshake

if TYPE_CHECKING:
    from .server import WsTestServer

T = TypeVar("T")
_SHOWN_FRAMES = 30  # frames listed in a timeout message, the latest ones
_SHOWN_REQUEST_LINE = 200  # bytes of a refused request line kept in an anomaly
CLOSE_REPLY_WAIT_S = 2.0  # close(drop_tcp=True): how long to wait for the device's close frame


class ServerWaitTimeout(AssertionError):
    """The device did not do what a test waited for: a product failure, not a harness fault."""


class NoLiveConnection(AssertionError):
    """A test asked the server to act on a link the device does not (or no longer) hold open."""


@dataclass
class Behaviour:
    handshake: str = "accept"  # "accept" | "refuse" | "stall"
    handshake_delay_s: float = 0.0  # accept: answer the upgrade this long after it came
    refuse_status: int = 403
    refuse_body: bytes = b""
    subprotocol: str | None = None
    pong_delay_s: float | None = 0.0  # None: never answer pings
    greeting: list[bytes] = field(default_factory=list)  # frames written with the 101
    reply_to_device_close: bool = True
    drop_after_device_close_s: float | None = None  # None: keep TCP until the device drops it
    interpret: bool = True  # False: after the 101 only record (no echo, no pong, no refusal)


class Endpoint:
    """exclusive: one device connection at a time. While it is open another connection to the
    path is refused (409) and listed in anomalies(), never in `connections`: a stranger who
    learnt the path cannot put frames into what the device is judged by."""

    def __init__(self, server: WsTestServer, path: str, name: str, exclusive: bool = True) -> None:
        self.name = name
        self.path = path
        self.exclusive = exclusive
        self.echo = True  # echo text/binary messages with the same type and bytes
        self.behaviour = Behaviour()
        self.connections: list[Connection] = []
        self.forgotten = False
        self.created_at = time.monotonic()
        self._server = server
        self._cond = threading.Condition()
        self._changes = 0  # bumped by every recorded event; waits re-check when it moves
        self._anomalies: list[str] = []

    def __repr__(self) -> str:
        return f"<Endpoint {self.path} connections={len(self.connections)}>"

    @property
    def host(self) -> str:
        return self._server.advertised_host

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"{self._server.scheme}://{self.host}:{self.port}{self.path}"

    # -- behaviour --

    def accept_handshake(self, after_s: float = 0.0) -> None:
        """Answer upgrades normally again (the default), `after_s` after the request came."""
        self.behaviour.handshake = "accept"
        self.behaviour.handshake_delay_s = after_s

    def refuse_handshake(self, status: int = 403, body: bytes = b"") -> None:
        self.behaviour.handshake = "refuse"
        self.behaviour.refuse_status = status
        self.behaviour.refuse_body = body

    def stall_handshake(self) -> None:
        """Read the request and never answer. `send_raw` can still write a hand-made response."""
        self.behaviour.handshake = "stall"

    def require_subprotocol(self, name: str | None) -> None:
        """Refuse (400) an upgrade that does not offer `name`; pick it when offered. None: any."""
        self.behaviour.subprotocol = name

    def answer_pings(self, delay_ms: float = 0, never: bool = False) -> None:
        """Pong with the ping's payload, `delay_ms` after the ping arrived, or never."""
        self.behaviour.pong_delay_s = None if never else delay_ms / 1000

    def on_connect_send(self, text: str | bytes | None = None, binary: bytes | None = None) -> None:
        """Messages to send right behind the 101, in the same write (text first)."""
        frames = []
        if text is not None:
            frames.append(encode_frame(OP_TEXT, _as_bytes(text)))
        if binary is not None:
            frames.append(encode_frame(OP_BINARY, binary))
        self.behaviour.greeting = frames

    def record_only(self) -> None:
        """After the 101, take no part: record every frame the device sends, whole, also those a
        strict server refuses (a reserved opcode, an oversized control frame); no echo, no pong,
        no close reply."""
        self.behaviour.interpret = False

    def on_device_close(self, reply: bool = True, drop_tcp_after_ms: float | None = None) -> None:
        """What to do when the device sends a close frame first: answer with a close frame
        carrying its status code (or empty when it had none), and close TCP after the given
        delay, or (None, the default) keep TCP open so everything the device does after its
        close is still recorded, until it drops the connection."""
        self.behaviour.reply_to_device_close = reply
        self.behaviour.drop_after_device_close_s = (
            None if drop_tcp_after_ms is None else drop_tcp_after_ms / 1000)

    # -- actions on the latest live connection --

    def send_text(self, text: str | bytes) -> None:
        self._write(encode_frame(OP_TEXT, _as_bytes(text)))

    def send_binary(self, data: bytes) -> None:
        self._write(encode_frame(OP_BINARY, data))

    def send_ping(self, payload: bytes = b"") -> None:
        self._write(encode_frame(OP_PING, payload))

    def send_pong(self, payload: bytes = b"") -> None:
        self._write(encode_frame(OP_PONG, payload))

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are: hand-built frames, or a hand-made handshake response."""
        self._write(data)

    def close(self, code: int | None = 1000, reason: str | bytes = b"", drop_tcp: bool = False) -> None:
        """Send a close frame (code None: empty payload). By default TCP stays open until the
        device drops it, so a test can see whether and when it does. drop_tcp=True behaves like
        an RFC 6455 server: TCP is closed as soon as the device's close frame arrives (or after
        CLOSE_REPLY_WAIT_S without one). Returns once the close frame is written."""
        conn = self._live()
        frame = encode_frame(OP_CLOSE, close_payload(code, reason))

        def act() -> None:
            conn.write(frame)
            conn.sent_close()
            if drop_tcp:
                conn.drop_tcp_on_close_frame(CLOSE_REPLY_WAIT_S)

        self._server.call_in_loop(act)

    def stall_reading(self, stalled: bool = True) -> None:
        """Stop reading what the device sends (True) or read again (False). With the server's
        small receive window (WsTestServer(receive_buffer=...)) the device's sends then block."""
        conn = self._live()
        self._server.call_in_loop(lambda: conn.stall_reading(stalled))

    def drop(self) -> None:
        """Close TCP abruptly with a RST, no close frame."""
        conn = self._live()
        self._server.call_in_loop(conn.abort_tcp)

    def close_endpoint(self) -> None:
        """Forget this endpoint: its path answers 404 from now on, its connections are dropped."""
        self._server.forget(self)

    # -- recorder views --

    @property
    def frames(self) -> list[RecordedFrame]:
        return [rf for conn in list(self.connections) for rf in list(conn.frames)]

    @property
    def pings_received(self) -> list[RecordedFrame]:
        return [rf for rf in self.frames if rf.frame.opcode == OP_PING]

    @property
    def pongs_sent(self) -> list[tuple[float, bytes]]:
        return [pong for conn in list(self.connections) for pong in list(conn.pongs_sent)]

    @property
    def tls_handshakes(self) -> list[TlsHandshake]:
        """wss://: the TLS handshakes the server ran since this endpoint was made. TLS comes
        before the request names a path, so they are the server's, not the path's: with one test
        at a time per server, they are the ones that test's device made."""
        return self._server.tls_handshakes(since=self.created_at)

    # -- waits --

    def wait_connection(self, timeout: float = 5.0, count: int = 1) -> Connection:
        """The count-th connection whose request head arrived (refused or stalled ones too)."""
        def check() -> Connection | None:
            return self.connections[count - 1] if len(self.connections) >= count else None
        what = "a handshake" if count == 1 else f"handshake number {count}"
        return self._wait(check, timeout, what)

    def wait_frame(self, predicate: Callable[[RecordedFrame], bool], timeout: float = 3.0,
                   what: str | None = None) -> RecordedFrame:
        """The first recorded frame (any connection, already recorded ones included) matching."""
        return self.wait_frames(predicate, 1, timeout, what)[0]

    def wait_frames(self, predicate: Callable[[RecordedFrame], bool], count: int,
                    timeout: float = 3.0, what: str | None = None) -> list[RecordedFrame]:
        def check() -> list[RecordedFrame] | None:
            matching = [rf for rf in self.frames if predicate(rf)]
            return matching[:count] if len(matching) >= count else None
        return self._wait(check, timeout, f"{count} frame(s) matching {what or _describe(predicate)}")

    def wait_tls_handshake(self, since: float | None = None, timeout: float = 5.0) -> TlsHandshake:
        """wss://: the first TLS handshake to end (completed or failed) on the server, of those
        whose TCP connection was accepted at or after `since` (default: when this endpoint was
        made)."""
        since = self.created_at if since is None else since

        def check() -> TlsHandshake | None:
            ended = self._server.tls_handshakes(since=since)
            return ended[0] if ended else None
        return self._wait(check, timeout, "a TLS handshake to end")

    def wait_disconnect(self, timeout: float = 3.0) -> Connection:
        """The latest connection, once its TCP is closed (by either side)."""
        def check() -> Connection | None:
            latest = self.connections[-1] if self.connections else None
            return latest if latest is not None and latest.closed_at is not None else None
        return self._wait(check, timeout, "the TCP connection to close")

    def anomalies(self) -> list[str]:
        """What reached this path besides the device, in order: connections refused because the
        device's was open."""
        with self._cond:
            return list(self._anomalies)

    # -- internals --

    def holder(self) -> Connection | None:
        """The open connection that has this path, if it is exclusive."""
        if not self.exclusive:
            return None
        return next((c for c in reversed(self.connections) if c.is_open), None)

    def bind(self, conn: Connection) -> None:
        """Loop only: the connection's request head named this endpoint."""
        conn.notify = self._notify
        self.connections.append(conn)
        self._notify()

    def note_refused(self, conn: Connection, holder: Connection) -> None:
        """Loop only: `conn` asked for this path while `holder` had it, and was refused."""
        assert conn.handshake is not None
        line = conn.handshake.raw.split(b"\r\n", 1)[0][:_SHOWN_REQUEST_LINE]
        with self._cond:
            self._anomalies.append(
                f"t={conn.handshake.time:.3f} refused (409) {line!r} from {conn.peer} while the "
                f"device's connection from {holder.peer} was open")

    def tls_recorded(self) -> None:
        """Loop only: the server recorded a TLS handshake."""
        self._notify()

    def _notify(self) -> None:
        with self._cond:
            self._changes += 1
            self._cond.notify_all()

    def _wait(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        # check() runs outside the lock so a slow predicate never holds up the event loop,
        # which takes the lock to notify; the change counter closes the gap in between.
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                seen = self._changes
            found = check()
            if found is not None:
                return found
            with self._cond:
                while self._changes == seen:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ServerWaitTimeout(self._transcript(
                            f"{self.path}: waited {timeout:g} s for {what}; recorded instead:"))
                    self._cond.wait(left)

    def _live(self) -> Connection:
        if not self._server.running:
            raise RuntimeError(f"{self.path}: the server is not running")
        for conn in reversed(list(self.connections)):
            if conn.is_open and conn.refused_status is None:
                return conn
        raise NoLiveConnection(self._transcript(
            f"{self.path}: no open connection to act on; recorded instead:"))

    def _write(self, data: bytes) -> None:
        conn = self._live()
        self._server.call_in_loop(lambda: conn.write(data))

    def describe(self, t0: float | None = None) -> str:
        """What the endpoint recorded, for a report attachment; with `t0` (the test's start on
        the AT transcript's clock, time.monotonic()) every time is shown as seconds since it, so
        the two line up."""
        return self._transcript(f"{self.path}: what the server recorded", t0)

    def _transcript(self, headline: str, t0: float | None = None) -> str:
        def at(t: float | None) -> str:
            if t is None:
                return "          "
            return f"{t - t0:9.4f} " if t0 is not None else f"{t:9.3f} "
        lines = [headline + (" (times: seconds since the test began, the AT transcript's clock)"
                             if t0 is not None else "")]
        if not self.connections:
            lines.append("  no connection to this endpoint")
        for index, conn in enumerate(list(self.connections), 1):
            lines.append(f"  connection {index}: {conn!r}")
            lines.append(f"    {at(conn.opened_at)}TCP open from {conn.peer}")
            lines.append(f"    {at(conn.handshake.time if conn.handshake else None)}"
                         f"{conn.handshake.words() if conn.handshake else 'no handshake'}")
            frames = list(conn.frames)
            if len(frames) > _SHOWN_FRAMES:
                lines.append(f"    ... {len(frames) - _SHOWN_FRAMES} earlier frames")
            lines.extend(f"    {at(rf.time)}{rf.words()}" for rf in frames[-_SHOWN_FRAMES:])
            if conn.rejection:
                lines.append(f"              the server refused a frame and failed the "
                             f"connection: {conn.rejection}")
            if conn.close_sent_at is not None:
                lines.append(f"    {at(conn.close_sent_at)}the server sent a close frame")
            if conn.closed_at is not None:
                lines.append(f"    {at(conn.closed_at)}TCP closed by the {conn.close_initiator}")
        handshakes = self.tls_handshakes
        if handshakes:
            lines.append("  TLS handshakes at the server since the endpoint was made (a failed one "
                         "never reaches a path):")
            lines.extend(f"    {at(hs.started)}{hs.words()}" for hs in handshakes)
        anomalies = self.anomalies()
        if anomalies:
            lines.append("  anomalies (never recorded as the device's):")
            lines.extend(f"    {text}" for text in anomalies)
        others = self._server.unmatched_handshakes()
        if others:
            lines.append("  handshakes to paths with no endpoint:")
            lines.extend(f"    {hs!r}" for hs in others[-5:])
        return "\n".join(lines)


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text


def _describe(predicate: Callable[..., object]) -> str:
    """The predicate's source line when there is one: a lambda's repr says nothing."""
    try:
        return inspect.getsource(predicate).strip()[:200]
    except (OSError, TypeError):
        return repr(predicate)
