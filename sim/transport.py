"""Serving a Device's AT port: a TCP socket (pyserial `socket://`) or a pseudo-terminal, plus a
helper that runs a whole model in a background thread for synchronous callers (tests, fixtures)."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import tty
from collections.abc import Iterable
from dataclasses import dataclass, field

from sim.device import Device
from sim.timing import DEFAULT_TIMINGS, Timings

log = logging.getLogger("sim.transport")

PTY_READ_SIZE = 4096
# Output kept for a pty nobody reads; beyond this the oldest bytes are lost, as from a UART FIFO.
PTY_OUTPUT_LIMIT = 1 << 20
THREAD_START_TIMEOUT_S = 10.0
THREAD_STOP_TIMEOUT_S = 5.0


class _ATProtocol(asyncio.Protocol):
    def __init__(self, port: "SocketPort") -> None:
        self._port = port
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._port.replace(self)

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self._port.current is self:
            self._port.device.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._port.device.detach(self.write)
        if self._port.current is self:
            self._port.current = None
        self._transport = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@dataclass
class SocketPort:
    """The AT port on TCP: one host at a time; a new connection replaces the old one, like
    re-opening a UART. Device state persists across connections."""

    device: Device
    server: asyncio.base_events.Server | None = None
    current: _ATProtocol | None = None
    host: str = "127.0.0.1"
    port: int = 0

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def replace(self, proto: _ATProtocol) -> None:
        old, self.current = self.current, proto
        if old is not None:
            self.device.detach(old.write)
            old.close()
        self.device.attach(proto.write)

    async def close(self) -> None:
        if self.current is not None:
            self.current.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def serve_socket(device: Device, host: str = "127.0.0.1", port: int = 0) -> SocketPort:
    sp = SocketPort(device=device, host=host)
    loop = asyncio.get_running_loop()
    sp.server = await loop.create_server(lambda: _ATProtocol(sp), host, port)
    sp.port = sp.server.sockets[0].getsockname()[1]
    return sp


@dataclass
class PtyPort:
    """The AT port on a pseudo-terminal. The model keeps its own slave fd open so the master does
    not get EIO whenever the host closes its side."""

    device: Device
    master_fd: int
    slave_fd: int
    path: str
    _out: bytearray = field(default_factory=bytearray)
    _writing: bool = False

    @property
    def url(self) -> str:
        return self.path

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.master_fd, self._on_readable)
        self.device.attach(self._write)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master_fd, PTY_READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # no host on the slave side right now
                return
            raise
        if data:
            self.device.feed(data)

    def _write(self, data: bytes) -> None:
        self._out += data
        if len(self._out) > PTY_OUTPUT_LIMIT:
            del self._out[:len(self._out) - PTY_OUTPUT_LIMIT]
        self._flush()

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._out:
            try:
                n = os.write(self.master_fd, self._out)
            except BlockingIOError:
                break
            except OSError as exc:
                log.debug("pty write failed: %r", exc)
                break
            del self._out[:n]
        if self._out and not self._writing:
            loop.add_writer(self.master_fd, self._flush)
            self._writing = True
        elif not self._out and self._writing:
            loop.remove_writer(self.master_fd)
            self._writing = False

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        self.device.detach(self._write)
        loop.remove_reader(self.master_fd)
        if self._writing:
            loop.remove_writer(self.master_fd)
        os.close(self.master_fd)
        os.close(self.slave_fd)


async def serve_pty(device: Device) -> PtyPort:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    port = PtyPort(device=device, master_fd=master, slave_fd=slave, path=os.ttyname(slave))
    port.start()
    return port


class SimThread:
    """A model in a background thread with its own event loop: `url` is its AT port."""

    def __init__(self, profile: str = "seed", defects: Iterable[str] = (), *,
                 timings: Timings = DEFAULT_TIMINGS, pty: bool = False,
                 host: str = "127.0.0.1", port: int = 0, boot_noise: bool = False,
                 pki: str | os.PathLike | None = None,
                 library_version: str | None = None, knobs: dict | None = None) -> None:
        # Built here so a bad profile, defect name or PKI directory raises in the caller's thread.
        self.device = Device(profile, defects, timings=timings, boot_noise=boot_noise, pki=pki,
                             library_version=library_version, knobs=knobs)
        self._pty = pty
        self._host, self._port = host, port
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="sim", daemon=True)
        self.url = ""

    def start(self) -> "SimThread":
        """Start serving (once; a second call returns at once) and wait for the AT port."""
        if self._thread.ident is None:
            self._thread.start()
        if not self._ready.wait(THREAD_START_TIMEOUT_S):
            raise TimeoutError("the model did not start")
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        port = await (serve_pty(self.device) if self._pty
                      else serve_socket(self.device, self._host, self._port))
        self.url = port.url
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            self.device.shutdown()
            await port.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(THREAD_STOP_TIMEOUT_S)

    def __enter__(self) -> "SimThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
