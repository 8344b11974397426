"""One UART of the simulated chip, seen from the host side and independent of how it is served
(TCP, RFC 2217, a pty).

The chip transmits with `write(data)`; whatever serves the port attaches a sink for those bytes
(`attach(sink)` / `detach()`). Host bytes arrive by `receive(data)` and go to `on_receive`.
Unpaced, both directions pass straight through, synchronously. Paced, each direction is a line
of 10 bits per byte (8N1) at the current `baud`: a chunk of n bytes is delivered when the line
would have finished sending its last bit, on the running asyncio loop, in order. A baud change
applies to the bytes not yet on the line. Each direction queues at most `limit` bytes; beyond
that the oldest are dropped, as from an overrun FIFO.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("sim.uart")

DEFAULT_BAUD = 115200
BITS_PER_BYTE = 10          # 8N1: start bit, 8 data bits, stop bit
QUEUE_LIMIT = 1 << 20       # per direction
# A paced line hands over about this much line time at once (one timer per chunk), so that
# 921600 baud costs ~100 timers a second, not one per byte.
CHUNK_LINE_TIME_S = 0.01
MIN_CHUNK = 16

Sink = Callable[[bytes], None]


class _Line:
    """One direction of a paced UART: a queue, a virtual line clock and one timer."""

    def __init__(self, uart: "Uart", name: str, deliver: Sink) -> None:
        self._uart = uart
        self._name = name
        self._deliver = deliver
        self._queue = bytearray()
        self._on_line: bytes | None = None      # the chunk being sent now
        self._line_free_at = 0.0                # loop time the last bit of _on_line ends
        self._timer: asyncio.TimerHandle | None = None
        self._idle_waiters: list[asyncio.Future[None]] = []

    @property
    def busy(self) -> bool:
        return self._on_line is not None or bool(self._queue)

    def push(self, data: bytes) -> None:
        self._queue += data
        excess = len(self._queue) - self._uart.limit
        if excess > 0:
            del self._queue[:excess]
            log.debug("%s %s: queue overrun, %d oldest bytes dropped",
                      self._uart.name, self._name, excess)
        if self._on_line is None:
            loop = asyncio.get_running_loop()
            self._line_free_at = max(self._line_free_at, loop.time())
            self._send_chunk(loop)

    def purge(self) -> None:
        """Drop what is queued; the chunk already on the line still arrives."""
        self._queue.clear()
        if self._on_line is None:
            self._wake_idle()

    async def idle(self) -> None:
        if not self.busy:
            return
        fut = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(fut)
        await fut

    def _send_chunk(self, loop: asyncio.AbstractEventLoop) -> None:
        baud = self._uart.baud
        size = max(MIN_CHUNK, int(baud / BITS_PER_BYTE * CHUNK_LINE_TIME_S))
        chunk = bytes(self._queue[:size])
        del self._queue[:size]
        self._on_line = chunk
        # Back to back with the previous chunk while the queue stays full, so a late timer does
        # not slow the line down; from "now" when the line was idle.
        self._line_free_at += len(chunk) * BITS_PER_BYTE / baud
        self._timer = loop.call_at(self._line_free_at, self._chunk_sent)

    def _chunk_sent(self) -> None:
        chunk, self._on_line, self._timer = self._on_line, None, None
        if self._queue:
            self._send_chunk(asyncio.get_running_loop())
        if chunk:
            self._deliver(chunk)
        if not self.busy:
            self._wake_idle()

    def _wake_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._on_line = None
        self._queue.clear()
        self._wake_idle()


class Uart:
    """A UART of the chip. `write` is the chip's TX (to the host), `receive` the host's bytes
    (to the chip's RX, i.e. `on_receive`)."""

    def __init__(self, name: str = "uart", *, baud: int = DEFAULT_BAUD, paced: bool = False,
                 limit: int = QUEUE_LIMIT, on_receive: Sink | None = None,
                 on_baud_change: Callable[[int], None] | None = None) -> None:
        if baud <= 0:
            raise ValueError(f"baud must be positive, not {baud}")
        self.name = name
        self.paced = paced
        self.limit = limit
        self.on_receive = on_receive
        self.on_baud_change = on_baud_change
        self._baud = baud
        self._sink: Sink | None = None
        self._to_host = _Line(self, "to host", self._deliver_to_host)
        self._to_device = _Line(self, "to device", self._deliver_to_device)

    # ---- line settings ------------------------------------------------------------------

    @property
    def baud(self) -> int:
        return self._baud

    @baud.setter
    def baud(self, value: int) -> None:
        if value <= 0:
            raise ValueError(f"baud must be positive, not {value}")
        if value == self._baud:
            return
        log.debug("%s: %d -> %d baud", self.name, self._baud, value)
        self._baud = value
        if self.on_baud_change is not None:
            self.on_baud_change(value)

    # ---- host side ----------------------------------------------------------------------

    def attach(self, sink: Sink) -> None:
        """A host opened the port; it replaces any previous one."""
        self._sink = sink

    def detach(self, sink: Sink | None = None) -> None:
        """The host (or, given, only that sink) closed the port."""
        if sink is None or self._sink is sink:
            self._sink = None

    @property
    def attached(self) -> bool:
        return self._sink is not None

    def receive(self, data: bytes) -> None:
        """Bytes the host sent, to the chip's RX."""
        if not data:
            return
        if self.paced:
            self._to_device.push(bytes(data))
        else:
            self._deliver_to_device(bytes(data))

    # ---- device side --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Bytes the chip transmits, to the host."""
        if not data:
            return
        if self.paced:
            self._to_host.push(bytes(data))
        else:
            self._deliver_to_host(bytes(data))

    async def drain(self) -> None:
        """Wait until everything the chip wrote has left the line (e.g. "answer, then change
        baud"). At once when unpaced."""
        await self._to_host.idle()

    async def receive_idle(self) -> None:
        """Wait until everything the host sent has reached `on_receive`."""
        await self._to_device.idle()

    def purge(self, *, to_host: bool = False, to_device: bool = False) -> None:
        """Drop queued bytes (RFC 2217 PURGE-DATA): those not yet on the line."""
        if to_host:
            self._to_host.purge()
        if to_device:
            self._to_device.purge()

    def close(self) -> None:
        """Stop both lines' timers; queued bytes are lost."""
        self._to_host.cancel()
        self._to_device.cancel()

    # ---- delivery -----------------------------------------------------------------------

    def _deliver_to_host(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink(data)
        else:
            log.debug("%s: no host, %d bytes lost", self.name, len(data))

    def _deliver_to_device(self, data: bytes) -> None:
        if self.on_receive is not None:
            self.on_receive(data)
        else:
            log.debug("%s: nothing listening, %d bytes lost", self.name, len(data))
