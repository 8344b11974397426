"""Opening the AT port from any pyserial URL, with the one fix the speed target needs.

pyserial 3.5's socket:// reports `in_waiting` as 0 or 1 (pyserial#759), so a reader that asks for
`in_waiting` bytes gets one byte per call. FIONREAD gives the real count.
"""
from __future__ import annotations

import fcntl
import select
import socket
import struct
import termios

import serial
from serial.urlhandler.protocol_socket import Serial as SocketSerial

READ_TIMEOUT_S = 0.05     # how long one blocking read waits before the reader checks for stop
WRITE_TIMEOUT_S = 5.0     # a device that stops draining its UART must not hang the suite


class FastSocketSerial(SocketSerial):
    """socket:// with a truthful in_waiting."""

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise serial.PortNotOpenError()
        if not select.select([self._socket], [], [], 0)[0]:
            return 0
        raw = fcntl.ioctl(self._socket.fileno(), termios.FIONREAD, b"\0" * 4)
        # Readable with nothing pending means the peer closed: let read() raise.
        return max(struct.unpack("I", raw)[0], 1)

    def close(self) -> None:
        # pyserial sleeps 0.3 s after closing a socket "for quick reconnects"; nothing here needs it.
        if self.is_open and self._socket:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._socket.close()
            self._socket = None
        self.is_open = False


def open_at_port(url: str, baudrate: int = 115200) -> serial.SerialBase:
    """Open /dev/tty*, a pty, rfc2217://host:port or socket://host:port for the AT client."""
    if url.startswith("socket://"):
        port = FastSocketSerial(None, timeout=READ_TIMEOUT_S, write_timeout=WRITE_TIMEOUT_S)
        port.port = url
        port.open()
        return port
    if url.startswith("rfc2217://"):
        # pyserial's RFC 2217 client refuses write_timeout (NotImplementedError).
        return serial.serial_for_url(url, baudrate=baudrate, timeout=READ_TIMEOUT_S)
    return serial.serial_for_url(url, baudrate=baudrate, timeout=READ_TIMEOUT_S,
                                 write_timeout=WRITE_TIMEOUT_S)
