"""Serving a `Uart` on TCP as RFC 2217 (telnet COM-PORT-OPTION, pyserial's `rfc2217://`, with baud
rate and DTR/RTS). The AT port's plain `socket://` is sim/transport.SocketPort.

The telnet and RFC 2217 state machine is pyserial's own server side, `serial.rfc2217.PortManager`
(the reference the `rfc2217://` client is written against): option negotiation, SET-BAUDRATE /
DATASIZE / PARITY / STOPSIZE / CONTROL with the SERVER_* replies the client waits for, PURGE-DATA,
NOTIFY-MODEMSTATE / LINESTATE polls, IAC doubling. It drives `_UartPort`, which has the
attributes of a pyserial port and is backed by the Uart and the two line callbacks.

One host at a time: a new connection replaces the old one, like re-opening a port; the Uart and
whatever hangs on the lines persist. When the host goes, DTR and RTS are deasserted (as a
USB-UART's are when its port closes, and as esp_rfc2217_server does), RTS first: deasserting
DTR first would pass through "RTS only", which pulls EN low on a dev board.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from serial.rfc2217 import IAC, IAC_DOUBLED, M_NORMAL, PortManager

from sim.uart import Uart

log = logging.getLogger("sim.rfc2217")

# What the TCP side may hold for a host that does not read; beyond it bytes are dropped.
WRITE_BUFFER_LIMIT = 1 << 20

LineCallback = Callable[[bool], None]


class _UartPort:
    """What PortManager reads and sets on "the serial port"."""

    def __init__(self, served: "_ServedUart") -> None:
        self._served = served
        self.bytesize = 8
        self.parity = "N"
        self.stopbits = 1
        self.xonxoff = False
        self.rtscts = False
        self.break_condition = False
        # Inputs of the bridge that a dev board leaves unconnected.
        self.cts = self.dsr = self.ri = self.cd = False

    @property
    def baudrate(self) -> int:
        return self._served.uart.baud

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        self._served.uart.baud = value

    @property
    def dtr(self) -> bool:
        return self._served.dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self._served.set_dtr(value)

    @property
    def rts(self) -> bool:
        return self._served.rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self._served.set_rts(value)

    def reset_input_buffer(self) -> None:     # the port's input: what the chip sent
        self._served.uart.purge(to_host=True)

    def reset_output_buffer(self) -> None:    # the port's output: what goes to the chip
        self._served.uart.purge(to_device=True)


class _Connection(asyncio.Protocol):
    """One host's TCP connection; plain bytes."""

    def __init__(self, served: "_ServedUart") -> None:
        self.served = served
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.start()
        self.served.replace(self)

    def start(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if t.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            log.debug("host not reading, %d bytes dropped", len(data))
            return
        t.write(data)

    def to_host(self, data: bytes) -> None:
        """The Uart's sink."""
        self.write(data)

    def data_received(self, data: bytes) -> None:
        if self.served.current is self:
            self.served.uart.receive(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.served.lost(self)
        self.transport = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Rfc2217Connection(_Connection):
    def start(self) -> None:
        # Sends the server's initial option requests at once.
        self.telnet = PortManager(_UartPort(self.served), self, logger=log)

    def to_host(self, data: bytes) -> None:
        self.write(data.replace(IAC, IAC_DOUBLED))

    def data_received(self, data: bytes) -> None:
        if self.served.current is not self:
            return
        tm = self.telnet
        # Fast path for plain data; PortManager.filter works a byte at a time.
        if tm.mode == M_NORMAL and tm.suboption is None:
            cut = data.find(IAC)
            if cut < 0:
                self.served.uart.receive(data)
                return
            if cut:
                self.served.uart.receive(data[:cut])
            data = data[cut:]
        payload = b"".join(tm.filter(data))
        if payload and self.served.current is self:
            self.served.uart.receive(payload)


@dataclass
class _ServedUart:
    uart: Uart
    host: str = "127.0.0.1"
    port: int = 0
    server: asyncio.base_events.Server | None = None
    current: _Connection | None = None
    scheme = "socket"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def replace(self, conn: _Connection) -> None:
        old, self.current = self.current, conn
        if old is not None:
            self.uart.detach(old.to_host)
            self.host_gone()
            old.close()
        self.uart.attach(conn.to_host)

    def lost(self, conn: _Connection) -> None:
        if self.current is conn:
            self.current = None
            self.uart.detach(conn.to_host)
            self.host_gone()

    def host_gone(self) -> None:
        pass

    async def close(self) -> None:
        conn, self.current = self.current, None
        if conn is not None:
            self.uart.detach(conn.to_host)
            conn.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@dataclass
class Rfc2217Port(_ServedUart):
    """A Uart as pyserial's `rfc2217://`, with DTR and RTS reported to `on_dtr` / `on_rts`
    (True = asserted) on every SET-CONTROL that sets them."""

    on_dtr: LineCallback | None = None
    on_rts: LineCallback | None = None
    dtr: bool = False
    rts: bool = False
    scheme = "rfc2217"

    def set_dtr(self, asserted: bool) -> None:
        self.dtr = bool(asserted)
        if self.on_dtr is not None:
            self.on_dtr(self.dtr)

    def set_rts(self, asserted: bool) -> None:
        self.rts = bool(asserted)
        if self.on_rts is not None:
            self.on_rts(self.rts)

    def host_gone(self) -> None:
        if self.rts:
            self.set_rts(False)
        if self.dtr:
            self.set_dtr(False)


async def _serve(served: _ServedUart, protocol: type[_Connection], port: int) -> None:
    loop = asyncio.get_running_loop()
    served.server = await loop.create_server(lambda: protocol(served), served.host, port)
    served.port = served.server.sockets[0].getsockname()[1]


async def serve_rfc2217(uart: Uart, host: str = "127.0.0.1", port: int = 0, *,
                        on_dtr: LineCallback | None = None,
                        on_rts: LineCallback | None = None) -> Rfc2217Port:
    served = Rfc2217Port(uart=uart, host=host, on_dtr=on_dtr, on_rts=on_rts)
    await _serve(served, _Rfc2217Connection, port)
    return served
