"""The ESP32-C2 registers the serial loader's READ_REG / WRITE_REG reach, as far as esptool uses
them: the ROM's chip magic word, the eFuse words (MAC, chip revision, package, flash), UART0's
clock divider (esptool estimates the crystal from it), the SPI1 controller's user-command
registers (esptool runs flash commands through them: RDID, SFDP, status, reset) and the RTC
watchdog (`--after watchdog-reset`).

Addresses and bit fields follow esptool 5.6.0: esptool/targets/esp32c2.py, its bases esp32c3.py
and esp32.py, and ESPLoader.run_spiflash_command / get_crystal_freq in esptool/loader.py. Any
other register reads as 0 (logged at DEBUG) until written; writes are kept, except to read-only
words (the ROM and eFuse reads), which ignore them.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

from sim.flash import Flash

log = logging.getLogger("sim.rom.chip")

CHIP_ID = 12                        # GET_SECURITY_INFO's chip_id, the image header's chip id
API_VERSION = 2                     # the ROM's api version ("esp8684-api2" in its banner)
ROM_BAUD = 115200

CHIP_DETECT_MAGIC_REG = 0x40001000
CHIP_DETECT_MAGIC = 0x7C41A06F      # the ECO1 ROM (revisions v1.x)

UART0_CLKDIV = 0x60000014
UART_CLKDIV_MASK = 0xFFFFF

EFUSE_BASE = 0x60008800
EFUSE_RD_REPEAT_DATA0 = EFUSE_BASE + 0x30     # security bits: all 0 (nothing enabled)
EFUSE_BLOCK2 = EFUSE_BASE + 0x40              # MAC and system data, eight words

SPI1_BASE = 0x60002000
SPI1_CMD = SPI1_BASE + 0x00
SPI1_ADDR = SPI1_BASE + 0x04
SPI1_USER = SPI1_BASE + 0x18
SPI1_USER2 = SPI1_BASE + 0x20
SPI1_MOSI_DLEN = SPI1_BASE + 0x24
SPI1_MISO_DLEN = SPI1_BASE + 0x28
SPI1_W0 = SPI1_BASE + 0x58
SPI1_W_COUNT = 16
SPI_CMD_USR = 1 << 18
SPI_USR_MISO = 1 << 28
SPI_USR_MOSI = 1 << 27

RTC_CNTL_WDTCONFIG0 = 0x60008084
RTC_CNTL_WDTCONFIG1 = 0x60008088
RTC_CNTL_WDTWPROTECT = 0x6000809C
RTC_CNTL_WDT_WKEY = 0x50D83AA1
RTC_CNTL_WDT_EN = 1 << 31

# RAM a MEM_BEGIN may load into (esptool's ESP32C2ROM.MEMORY_MAP).
DRAM = range(0x3FCA0000, 0x3FCE0000)
IRAM = range(0x4037C000, 0x403C0000)

# SFDP as a JEDEC part answers: signature, revision 1.6, two parameter headers (the basic table,
# then the vendor's, whose id is the manufacturer: esptool's XMC check reads it at 0x10).
def _sfdp(manufacturer: int) -> bytes:
    return (b"SFDP" + bytes([0x06, 0x01, 0x01, 0xFF])
            + bytes([0x00, 0x06, 0x01, 0x10, 0x30, 0x00, 0x00, 0xFF])
            + bytes([manufacturer, 0x00, 0x01, 0x03, 0x80, 0x00, 0x00, 0xFF]))


@dataclass(frozen=True)
class ChipInfo:
    """What the eFuses say about the chip: revision v1.0 of the bare ESP32-C2 (package 0, the
    flash outside the package). esptool's stub refuses revision v0.x (_post_connect)."""
    major: int = 1
    minor: int = 0
    package: int = 0            # 0 ESP32-C2, 1 ESP8684H
    flash_cap: int = 0          # 0 external flash, 1/2/3 embedded 4/2/1 MB
    flash_vendor: int = 0       # 1 XMC, 2 GD, ... (embedded flash only)


class Peripherals:
    """The register file behind READ_REG / WRITE_REG, the same for the ROM and the stub."""

    def __init__(self, flash: Flash, *, mac: bytes, crystal_mhz: int, info: ChipInfo = ChipInfo()) -> None:
        if len(mac) != 6:
            raise ValueError(f"a MAC is 6 bytes, not {len(mac)}")
        self.flash = flash
        self.crystal_mhz = crystal_mhz
        self.uart_baud = ROM_BAUD            # kept current by the loader (CHANGE_BAUDRATE)
        self.watchdog_fired = False          # the RTC watchdog reset the chip (taken by the loader)
        self._wdt_armed = False
        self._status = bytearray(3)          # the flash's status registers 1-3
        self._sfdp = _sfdp(flash.flash_id >> 16)
        self._written: dict[int, int] = {}
        self._fixed = {CHIP_DETECT_MAGIC_REG: CHIP_DETECT_MAGIC}
        for i in range(8):
            self._fixed[EFUSE_RD_REPEAT_DATA0 + 4 * i] = 0
        self._fixed.update(self._block2(mac, info))

    @staticmethod
    def _block2(mac: bytes, info: ChipInfo) -> dict[int, int]:
        # esptool: MAC = (word1 & 0xFFFF) big-endian, then word0 big-endian;
        # word1 bits 16-19 minor, 20-21 major, 22-24 package; word7 bits 24-26 vendor, 29-31 cap.
        words = [0] * 8
        words[0] = int.from_bytes(mac[2:], "big")
        words[1] = (int.from_bytes(mac[:2], "big") | info.minor << 16 | info.major << 20
                    | info.package << 22)
        words[7] = info.flash_vendor << 24 | info.flash_cap << 29
        return {EFUSE_BLOCK2 + 4 * i: w for i, w in enumerate(words)}

    def read(self, addr: int) -> int:
        if addr in self._fixed:
            return self._fixed[addr]
        if addr == UART0_CLKDIV:
            return (self.crystal_mhz * 1_000_000 // self.uart_baud) & UART_CLKDIV_MASK
        if addr in self._written:
            return self._written[addr]
        log.debug("read of unmodelled register %#010x: 0", addr)
        return 0

    def write(self, addr: int, value: int, mask: int = 0xFFFFFFFF) -> None:
        if addr in self._fixed or addr == UART0_CLKDIV:
            log.debug("write %#010x to read-only %#010x ignored", value, addr)
            return
        value = (value & mask) | (self.read(addr) & ~mask & 0xFFFFFFFF)
        if addr in (RTC_CNTL_WDTCONFIG0, RTC_CNTL_WDTCONFIG1) and not self._wdt_unlocked():
            log.debug("write %#010x to %#010x ignored: the RTC watchdog is write-protected", value, addr)
            return
        self._written[addr] = value
        if addr == RTC_CNTL_WDTCONFIG0 and value & RTC_CNTL_WDT_EN:
            self._wdt_armed = True
        elif addr == RTC_CNTL_WDTWPROTECT and value != RTC_CNTL_WDT_WKEY and self._wdt_armed:
            # Locked again with the watchdog running: it fires a few ms later (esptool sets a
            # 2000-cycle timeout), after this write was answered. No clock here: it fires now.
            self._wdt_armed = False
            self.watchdog_fired = True
        elif addr == SPI1_CMD and value & SPI_CMD_USR:
            self._run_user_command()
            self._written[addr] = value & ~SPI_CMD_USR      # done at once

    def _wdt_unlocked(self) -> bool:
        return self._written.get(RTC_CNTL_WDTWPROTECT) == RTC_CNTL_WDT_WKEY

    # ---- SPI1 user commands: what the flash part answers ------------------------------------

    def _run_user_command(self) -> None:
        user = self._written.get(SPI1_USER, 0)
        command = self._written.get(SPI1_USER2, 0) & 0xFF
        addr = self._written.get(SPI1_ADDR, 0)
        mosi = b""
        if user & SPI_USR_MOSI:
            nbytes = (self._written.get(SPI1_MOSI_DLEN, 0) + 1 + 7) // 8
            mosi = b"".join(struct.pack("<I", self._written.get(SPI1_W0 + 4 * i, 0))
                            for i in range((nbytes + 3) // 4))[:nbytes]
        if not user & SPI_USR_MISO:
            self._flash_command(command, addr, mosi, 0)
            return
        nbytes = min((self._written.get(SPI1_MISO_DLEN, 0) + 1 + 7) // 8, 4 * SPI1_W_COUNT)
        answer = self._flash_command(command, addr, mosi, nbytes).ljust(nbytes, b"\xff")
        answer = answer.ljust((nbytes + 3) // 4 * 4, b"\x00")
        for i in range(len(answer) // 4):
            self._written[SPI1_W0 + 4 * i] = struct.unpack_from("<I", answer, 4 * i)[0]

    def _flash_command(self, command: int, addr: int, mosi: bytes, nbytes: int) -> bytes:
        if command == 0x9F:                                   # RDID
            return self.flash.flash_id.to_bytes(3, "big")
        if command == 0x5A:                                   # RDSFDP
            return self._sfdp[addr:addr + nbytes].ljust(nbytes, b"\xff")
        if command == 0x03:                                   # READ
            if addr + nbytes <= self.flash.size:
                return self.flash.read(addr, nbytes)
            return b""
        status = {0x05: 0, 0x35: 1, 0x15: 2}                  # RDSR, RDSR2, RDSR3
        if command in status:
            return bytes([self._status[status[command]]])
        write_status = {0x01: 0, 0x31: 1, 0x11: 2}            # WRSR (1 or 2 bytes), WRSR2, WRSR3
        if command in write_status:
            first = write_status[command]
            for i, byte in enumerate(mosi[:3 - first]):
                self._status[first + i] = byte
            return b""
        if command in (0x06, 0x04, 0x50, 0x66, 0x99, 0xB9, 0xAB, 0x79, 0xFF):
            return b""      # WREN, WRDI, WEVSR, reset enable/reset, (ultra) deep power-down
        log.debug("SPI flash command %#04x not modelled: the bus reads 0xFF", command)
        return b""


def security_info(chip_id: int = CHIP_ID) -> bytes:
    """GET_SECURITY_INFO's 20 bytes: flags, flash_crypt_cnt, seven key purposes, chip_id and the
    ROM's api version (esptool ESPLoader.get_security_info). Nothing is enabled: no secure boot,
    no flash encryption, no Secure Download Mode."""
    return struct.pack("<IB7BII", 0, 0, *([0] * 7), chip_id, API_VERSION)
