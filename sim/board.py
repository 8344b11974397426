"""The simulated ESP32-C2 dev board around the AT firmware (sim.device.Device): its SPI flash, the
chip's boot (ROM, 2nd-stage bootloader, app), UART0 (ROM download mode and the log), UART1 (the
AT port) and the auto-reset circuit between the USB bridge's DTR/RTS and EN/IO9.

The chip is in one of four states, changed only here:

    held       EN is low: nothing runs, both UARTs are silent, links are gone
    download   EN rose with IO9 low: the ROM's serial loader answers on UART0 (sim.rom)
    running    the app from flash booted: the AT firmware answers on UART1
    halted     the ROM or the bootloader found nothing bootable: their error on UART0, and
               UART1 stays silent, as a bricked board shows

EN rising with IO9 high boots from flash (SPI boot). AT+RST and a panic are software resets: the
ROM banner again, then the app, or `halted` when the flash no longer holds a bootable image.
"""
from __future__ import annotations

import asyncio
import enum
import logging

from sim.device import Device
from sim.flash import Flash
from sim.image import Booted, boot, download_banner, panic_log
from sim.reset_circuit import AutoResetCircuit
from sim.timing import AtOutputDelay
from sim.rom.loader import DownloadMode, Reset, RunApp, Send, SetBaud
from sim.uart import Uart

log = logging.getLogger("sim.board")

# The dev board's MAC (Espressif's OUI; locally unique is enough for a model).
BOARD_MAC = bytes.fromhex("08b61f8c5c20")


class ChipState(enum.Enum):
    HELD = "held"
    DOWNLOAD = "download"
    RUNNING = "running"
    HALTED = "halted"


class Board:
    """One board. `uart0` and `uart1` are served by sim.transport / sim.rfc2217; `circuit` takes
    the DTR/RTS a host sets on the UART0 port (RFC 2217)."""

    def __init__(self, device: Device, flash: Flash, *, paced: bool = False) -> None:
        self.device = device
        self.flash = flash
        self.uart0 = Uart("uart0", paced=paced, on_receive=self._uart0_input)
        self.uart1 = Uart("uart1", paced=paced, on_receive=self._uart1_input)
        self.circuit = AutoResetCircuit(self._en_low, self._en_high)
        self.state = ChipState.HELD
        self.app_version = "?"
        self._rom: DownloadMode | None = None
        self._rom_output: asyncio.Task[None] | None = None
        device.chip = self
        # What the firmware prints reaches UART1 after its answer latency (board-like timing).
        self._device_sink = AtOutputDelay(self._at_output, device.timings)
        device.attach(self._device_sink)

    @property
    def at_port(self) -> "_HostSide":
        """UART1 as sim.transport's ports serve a device (attach, detach, feed)."""
        return _HostSide(self)

    def power_on(self) -> None:
        """Plugging the board in: EN rises with IO9 high."""
        self._start("POWERON", download=False)

    # ---- the chip, as the AT firmware sees it (sim.device.BareChip) ------------------------

    def software_reset(self, reason: str) -> bool:
        self.uart0.write(self._boot_from_flash(reason))
        return self.state is ChipState.RUNNING

    def panic(self, reason: str) -> None:
        self.uart0.write(panic_log(reason))

    # ---- EN and IO9 --------------------------------------------------------------------------

    def _en_low(self) -> None:
        log.info("EN low: chip held in reset")
        self.state = ChipState.HELD
        self._rom = None
        self.device.power_off()

    def _en_high(self, download: bool) -> None:
        log.info("EN high with IO9 %s", "low: download mode" if download else "high: SPI boot")
        self._start("POWERON", download)

    def _start(self, reason: str, download: bool) -> None:
        if download:
            self.state = ChipState.DOWNLOAD
            self._rom = DownloadMode(self.flash, mac=BOARD_MAC)
            self.uart0.write(download_banner(reason))
            return
        self.uart0.write(self._boot_from_flash(reason))
        if self.state is ChipState.RUNNING:
            self.device.cold_boot()

    def _boot_from_flash(self, reason: str) -> bytes:
        result = boot(self.flash.read, reset_reason=reason)
        if isinstance(result, Booted):
            self.state = ChipState.RUNNING
            self.app_version = result.app.version
            log.info("booted %s %s", result.app.project_name, result.app.version)
        else:
            self.state = ChipState.HALTED
            self.device.power_off()
            log.warning("boot failed: %s", result.reason)
        return result.log

    # ---- the UARTs ---------------------------------------------------------------------------

    def _at_output(self, data: bytes) -> None:
        if self.state is ChipState.RUNNING:
            self.uart1.write(data)

    def _uart1_input(self, data: bytes) -> None:
        if self.state is ChipState.RUNNING:
            self.device.feed(data)

    def _uart0_input(self, data: bytes) -> None:
        if self.state is not ChipState.DOWNLOAD or self._rom is None:
            return                                # the app does not read its log port
        rom = self._rom
        for action in rom.feed(data):
            if isinstance(action, Send):
                self.uart0.write(action.data)
            elif isinstance(action, SetBaud):
                # The answer goes out at the old rate; the ROM switches once it has left.
                asyncio.get_running_loop().create_task(self._set_baud(action.baud))
            elif isinstance(action, RunApp):
                self._start("RTC_SW_SYS_RST", download=False)
                return
            elif isinstance(action, Reset):
                # The RTC watchdog samples the boot pin again; a software reset returns to the ROM.
                self.uart0.baud = 115200
                download = not action.straps_latched or self.circuit.boot_pin_low
                self._start("RTC_SW_SYS_RST", download=download)
                return

    async def _set_baud(self, baud: int) -> None:
        await self.uart0.drain()
        log.info("UART0 at %d baud", baud)
        self.uart0.baud = baud


class _HostSide:
    """A host opening the AT port: like re-opening a UART, a half-typed line from the previous
    host is lost (sim.device.Device.attach)."""

    def __init__(self, board: Board) -> None:
        self._board = board

    def attach(self, sink) -> None:
        self._board.uart1.attach(sink)
        self._board.device.attach(self._board._device_sink)

    def detach(self, sink) -> None:
        self._board.uart1.detach(sink)

    def feed(self, data: bytes) -> None:
        self._board.uart1.receive(data)
