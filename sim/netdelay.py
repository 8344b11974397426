"""Board-like timing: a link's TCP traffic behind a network delay, each way (sim/timing.py
network_delay_s). Stand-ins for asyncio's StreamReader and StreamWriter."""
from __future__ import annotations

import asyncio
import collections
import ssl

from sim.timing import Timings

# The ESP32-C2's lwIP send buffer (TCP_SND_BUF): a board's send blocks once this much is unacked,
# so the model's socket gets the same bound instead of the host's multi-megabyte autotuning.
TCP_SEND_BUFFER = 5760
# A read from the socket: the client asks for at most buffer_size, this bounds the rest.
READ_SIZE = 4096
# Small tolerance so a timer that fires a hair early still counts as due.
TIMER_SLACK_S = 0.002


class DelayedReader:
    """Board-like timing: the link's receive side behind a network delay. Bytes, the end of the
    stream and a connection error reach the reader one drawn one-way delay after they arrived,
    in the order they arrived (sim/timing.py network_delay_s)."""

    def __init__(self, reader: asyncio.StreamReader, timings: Timings) -> None:
        self._reader = reader
        self._timings = timings
        self._loop = asyncio.get_running_loop()
        self._in_flight: collections.deque[tuple[float, bytes | BaseException]] = \
            collections.deque()
        self._last_due = 0.0
        self._arrived = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        self._pump = self._loop.create_task(self._run(), name="delayed-reader")

    async def _run(self) -> None:
        try:
            while True:
                data = await self._reader.read(READ_SIZE)
                self._send_on(data)
                if not data:
                    return
        except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            self._send_on(exc)

    def _send_on(self, item: bytes | BaseException) -> None:
        due = max(self._last_due, self._loop.time() + self._timings.network_delay())
        self._last_due = due
        self._in_flight.append((due, item))
        self._loop.call_at(due, self._arrive)

    def _arrive(self) -> None:
        now = self._loop.time() + TIMER_SLACK_S     # a callback may run a hair before its time
        while self._in_flight and self._in_flight[0][0] <= now:
            item = self._in_flight.popleft()[1]
            if isinstance(item, BaseException):
                self._error = item
            elif item:
                self._arrived += item
            else:
                self._eof = True
        self._changed.set()

    async def read(self, n: int) -> bytes:
        """At most n bytes of what has arrived, at least one; b"" at end of stream."""
        while not self._arrived and not self._eof and self._error is None:
            self._changed.clear()
            await self._changed.wait()
        if self._arrived:
            out = bytes(self._arrived[:n])
            del self._arrived[:n]
            return out
        if self._error is not None:
            raise self._error
        return b""

    def available(self) -> int:
        """Bytes that have arrived and not been read: read() returns them without a wait."""
        return len(self._arrived)

    def unread(self) -> bool:
        return bool(self._arrived) or any(isinstance(item, bytes) and item
                                          for _, item in self._in_flight)

    def stop(self) -> None:
        self._pump.cancel()


_CLOSE = object()   # in a DelayedWriter's queue: close TCP once everything before it went out


class DelayedWriter:
    """Board-like timing: the link's send side behind a network delay. Each write is handed to
    the socket one drawn one-way delay later, in order. Until then its bytes are in flight, and
    as on a board (whose send buffer keeps bytes until they are acknowledged) they take up the
    send buffer: drain() returns once at most TCP_SEND_BUFFER bytes are in flight and the socket
    took everything handed to it. Stands in for the StreamWriter and its transport."""

    def __init__(self, writer: asyncio.StreamWriter, timings: Timings) -> None:
        self._writer = writer
        self._timings = timings
        self._loop = asyncio.get_running_loop()
        self._queue: collections.deque[tuple[float, object]] = collections.deque()
        self._last_due = 0.0
        self._closing = False
        self._progress = asyncio.Event()     # bytes left the wire (or the queue was dropped)
        self.transport = self                # send() and _write_timed_out use writer.transport

    def write(self, data: bytes) -> None:
        if not self._closing and data:
            self._enqueue(bytes(data))

    def _enqueue(self, item: object) -> None:
        due = max(self._last_due, self._loop.time() + self._timings.network_delay())
        self._last_due = due
        self._queue.append((due, item))
        self._loop.call_at(due, self._hand_over)

    def _hand_over(self) -> None:
        now = self._loop.time() + TIMER_SLACK_S     # a callback may run a hair before its time
        while self._queue and self._queue[0][0] <= now:
            item = self._queue.popleft()[1]
            if item is _CLOSE:
                self._writer.close()
            elif not self._writer.is_closing():
                self._writer.write(item)
        self._progress.set()

    def _over_limit(self) -> int:
        """Bytes written that do not fit the send buffer yet: in flight past TCP_SEND_BUFFER."""
        in_flight = sum(len(item) for _, item in self._queue if isinstance(item, bytes))
        return max(0, in_flight - TCP_SEND_BUFFER)

    async def drain(self) -> None:
        """Until the send buffer holds what was written (high-water mark 0 on the socket)."""
        while True:
            await self._writer.drain()
            if not self._over_limit():
                return
            self._progress.clear()
            await self._progress.wait()

    def get_write_buffer_size(self) -> int:
        return self._writer.transport.get_write_buffer_size() + self._over_limit()

    def is_closing(self) -> bool:
        return self._closing or self._writer.is_closing()

    def close(self) -> None:
        """FIN after what was written, one delay later."""
        if not self._closing:
            self._closing = True
            self._enqueue(_CLOSE)

    def abort(self) -> None:
        self._closing = True
        self._queue.clear()
        self._progress.set()
        self._writer.transport.abort()


