"""The ESP32-C2's serial download mode on UART0, without I/O: feed it the bytes the host sent and
get back what the chip does (`Send` bytes, `SetBaud`, `RunApp`, `Reset`).

Two dialects answer, each a command table (op -> handler):
- `RomLoader`, the ROM's loader: responses carry 4 status bytes and the ROM's error codes, flash
  commands need SPI_ATTACH first and stay within the size SPI_SET_PARAMS set (2 MB before), the
  ROM erases at FLASH_BEGIN, SPI_FLASH_MD5 answers 32 hex digits, READ_FLASH_SLOW reads 64 bytes
  a command. MEM_END with an entry point inside RAM the host loaded runs that code: the model
  takes it to be the flasher stub (it does not execute it), and the stub greets with OHAI.
- `StubLoader`, the flasher stub esptool uploads (esp-flasher-stub, the JSON esptool ships in
  targets/stub_flasher/2): 2 status bytes with 0xC0xx error codes, SYNC answered with value 0,
  the stub-only ERASE_FLASH, ERASE_REGION and READ_FLASH (packets, the host's acks, a final
  MD5), errors of work done after the response (writes, inflating) reported on the next command.

Followed: esptool 5.6.0's esptool/loader.py (ESPLoader.command, check_command, sync, mem_*,
flash_*, flash_defl_*, flash_md5sum, read_flash, change_baud, soft_reset, StubMixin),
esptool/targets/esp32c2.py with esp32c3.py and esp32.py (read_flash_slow, change_baud with a
26 MHz crystal, watchdog_reset), esptool/cmds.py (write_flash, read_flash, erase_*, attach_flash,
reset_chip); esp-flasher-stub's src/command_handler.c (v1.1.0) for the stub; esptool's
docs/en/advanced-topics/serial-protocol.rst for the ROM's status bytes and error codes.

How the session ends (esptool's --after):
- hard-reset: RTS pulses EN, nothing on the serial line; the board's reset circuit acts.
- no-reset: with the stub, FLASH_BEGIN(0) + FLASH_END(reboot); the stub ignores the reboot flag
  (its handler's "TODO: Implement reboot"), so the model stays in the stub, and the next esptool
  run finds it by SYNC's value 0. With the ROM: nothing is sent.
- no-reset-stub: nothing is sent.
- soft-reset: with the ROM, FLASH_BEGIN(0) + FLASH_END(run user code): `RunApp` after the
  answer. (esptool refuses it with the stub on this chip.) FLASH_END(reboot) to the ROM, which
  esptool never sends, is a software reset: `Reset(straps_latched=False)`, download mode again.
- watchdog-reset: WRITE_REGs arm the RTC watchdog; when its write protection is locked again it
  fires: `Reset(straps_latched=True)`, a chip reset after which the boot strapping pin decides
  between download mode and the app.
After a `Reset` the model is back in the ROM's download mode at 115200 baud (a `SetBaud` precedes
it when the rate was changed); a board that boots the app instead just stops feeding it. After
`RunApp` (or RAM code that is not the stub) the model ignores its input until `reset()`.
"""
from __future__ import annotations

import enum
import hashlib
import logging
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sim.flash import SECTOR_SIZE, Flash
from sim.rom.chip import DRAM, IRAM, ROM_BAUD, Peripherals, security_info
from sim.rom.slip import SlipDecoder, slip_encode

log = logging.getLogger("sim.rom")

DEFAULT_MAC = bytes.fromhex("7cdfa1c2c201")     # Espressif's OUI 7C:DF:A1
ROM_DEFAULT_FLASH_SIZE = 2 << 20                 # until SPI_SET_PARAMS (esptool: erase_region)
SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32
ROM_SYNC_VALUE = 0x20120707                      # non-zero: esptool sees the ROM, not the stub
SYNC_RESPONSES = 8
CHECKSUM_SEED = 0xEF
DATA_HEADER = struct.Struct("<IIII")             # _DATA commands: length, seq, 0, 0
READ_FLASH_SLOW_BLOCK = 64
STUB_MAX_READ_PACKET = 4096
OHAI = b"OHAI"
HEADER = struct.Struct("<BBHI")                  # direction, op, size, checksum / value


# ---- what the chip does ------------------------------------------------------------------------

@dataclass(frozen=True)
class Send:
    """Bytes for UART0's transmit line, SLIP-encoded already."""
    data: bytes


@dataclass(frozen=True)
class SetBaud:
    """UART0 switches to `baud` once the bytes sent before this action are out."""
    baud: int


@dataclass(frozen=True)
class RunApp:
    """The loader leaves download mode and runs the app in flash."""


@dataclass(frozen=True)
class Reset:
    """The chip reset itself. `straps_latched`: the reset samples the strapping pins again (the
    RTC watchdog), so the boot pin decides what runs; otherwise (a software reset) the chip comes
    back into download mode. Either way the model is now the ROM at 115200 baud."""
    straps_latched: bool


Action = Send | SetBaud | RunApp | Reset


class Op(enum.IntEnum):
    FLASH_BEGIN = 0x02
    FLASH_DATA = 0x03
    FLASH_END = 0x04
    MEM_BEGIN = 0x05
    MEM_END = 0x06
    MEM_DATA = 0x07
    SYNC = 0x08
    WRITE_REG = 0x09
    READ_REG = 0x0A
    SPI_SET_PARAMS = 0x0B
    SPI_ATTACH = 0x0D
    READ_FLASH_SLOW = 0x0E
    CHANGE_BAUDRATE = 0x0F
    FLASH_DEFL_BEGIN = 0x10
    FLASH_DEFL_DATA = 0x11
    FLASH_DEFL_END = 0x12
    SPI_FLASH_MD5 = 0x13
    GET_SECURITY_INFO = 0x14
    ERASE_FLASH = 0xD0
    ERASE_REGION = 0xD1
    READ_FLASH = 0xD2
    RUN_USER_CODE = 0xD3


# ---- failures, and how each dialect spells them -------------------------------------------------

class Why(enum.Enum):
    BAD_LENGTH = "payload length wrong for the command"
    BAD_CHECKSUM = "data checksum mismatch"
    NOT_IN_SESSION = "data or end without its begin"
    TOO_MUCH_DATA = "more data than announced"
    NOT_ENOUGH_DATA = "payload shorter than the data header"
    FLASH_ERASE = "flash erase failed"
    FLASH_WRITE = "flash write failed"
    FLASH_READ = "flash read failed"
    READ_TOO_LONG = "read longer than a block"
    INFLATE = "compressed data corrupt"
    BAD_RAM_ADDRESS = "not in RAM"
    UNKNOWN_COMMAND = "unknown command"


# ROM: status 1, then the error (serial-protocol.rst's "ROM Loader Errors").
ROM_ERRORS = {
    Why.BAD_LENGTH: 0x05, Why.TOO_MUCH_DATA: 0x05, Why.NOT_ENOUGH_DATA: 0x05,
    Why.UNKNOWN_COMMAND: 0x05, Why.NOT_IN_SESSION: 0x06, Why.FLASH_ERASE: 0x06,
    Why.BAD_CHECKSUM: 0x07, Why.FLASH_WRITE: 0x08, Why.FLASH_READ: 0x09, Why.READ_TOO_LONG: 0x0A,
    Why.INFLATE: 0x0B, Why.BAD_RAM_ADDRESS: 0x0F,
}
# Stub: a 16-bit response code, big-endian (esp-flasher-stub src/commands.h).
STUB_ERRORS = {
    Why.BAD_LENGTH: 0xC000, Why.READ_TOO_LONG: 0xC000, Why.BAD_RAM_ADDRESS: 0xC000,
    Why.BAD_CHECKSUM: 0xC100, Why.UNKNOWN_COMMAND: 0xC300, Why.FLASH_ERASE: 0xC400,
    Why.FLASH_WRITE: 0xC400, Why.FLASH_READ: 0xC400, Why.NOT_IN_SESSION: 0xC600,
    Why.INFLATE: 0xC700, Why.NOT_ENOUGH_DATA: 0xC800, Why.TOO_MUCH_DATA: 0xC900,
}


class Failed(Exception):
    def __init__(self, why: Why, detail: str = "") -> None:
        super().__init__(f"{why.value}{': ' + detail if detail else ''}")
        self.why = why


@dataclass(frozen=True)
class Request:
    op: int
    data: bytes
    checksum: int

    def words(self, *counts: int) -> tuple[int, ...]:
        """The payload as little-endian words; there must be one of `counts` of them."""
        if len(self.data) not in [4 * n for n in counts]:
            raise Failed(Why.BAD_LENGTH, f"{len(self.data)} bytes")
        return struct.unpack(f"<{len(self.data) // 4}I", self.data)

    def block(self, *, too_short: Why) -> tuple[int, bytes]:
        """A _DATA command's sequence number and data (length checked against the header)."""
        if len(self.data) < DATA_HEADER.size:
            raise Failed(too_short, f"{len(self.data)} bytes")
        length, seq, _, _ = DATA_HEADER.unpack_from(self.data)
        data = self.data[DATA_HEADER.size:]
        if length != len(data):
            raise Failed(Why.TOO_MUCH_DATA, f"header says {length} bytes, {len(data)} follow")
        return seq, data


@dataclass(frozen=True)
class Reply:
    value: int = 0
    data: bytes = b""
    repeat: int = 1                                   # SYNC: the same answer eight times
    then: tuple[Action, ...] = ()                     # after the answer has gone out
    silent: bool = False                              # no answer at all


def checksum(data: bytes) -> int:
    state = CHECKSUM_SEED
    for byte in data:
        state ^= byte
    return state


def _align_down(n: int) -> int:
    return n - n % SECTOR_SIZE


def _align_up(n: int) -> int:
    return -(-n // SECTOR_SIZE) * SECTOR_SIZE


@dataclass
class _FlashWrite:
    """One FLASH_BEGIN / FLASH_DEFL_BEGIN ... END."""
    start: int
    size: int                      # announced: the ROM erased this much, the stub writes it
    block_size: int
    blocks: int
    inflate: "zlib._Decompress | None"
    pos: int = 0                   # next byte written by a streamed write (start + pos)


@dataclass
class _RamLoad:
    start: int
    size: int
    block_size: int
    data: bytearray = field(default_factory=bytearray)


# ---- the two dialects -----------------------------------------------------------------------

class _Loader:
    """What both dialects share: parse a frame, dispatch, answer with this dialect's status."""
    name = "?"
    # op -> the method that answers it; each dialect has its own methods and adds its own ops.
    COMMANDS: dict[int, str] = {
        Op.SYNC: "sync", Op.READ_REG: "read_reg", Op.WRITE_REG: "write_reg",
        Op.GET_SECURITY_INFO: "get_security_info", Op.SPI_ATTACH: "spi_attach",
        Op.SPI_SET_PARAMS: "spi_set_params", Op.CHANGE_BAUDRATE: "change_baudrate",
        Op.FLASH_BEGIN: "flash_begin", Op.FLASH_DATA: "flash_data", Op.FLASH_END: "flash_end",
        Op.FLASH_DEFL_BEGIN: "flash_defl_begin", Op.FLASH_DEFL_DATA: "flash_defl_data",
        Op.FLASH_DEFL_END: "flash_end", Op.SPI_FLASH_MD5: "spi_flash_md5",
        Op.MEM_BEGIN: "mem_begin", Op.MEM_DATA: "mem_data", Op.MEM_END: "mem_end",
    }

    def __init__(self, regs: Peripherals) -> None:
        self.regs = regs
        self.flash = regs.flash
        self.successor: _Loader | None = None     # the loader that runs from the next frame on

    def receive(self, frame: bytes) -> list[Action]:
        if len(frame) < HEADER.size:
            log.debug("%s: ignored a %d-byte frame", self.name, len(frame))
            return []
        direction, op, size, chk = HEADER.unpack_from(frame)
        data = frame[HEADER.size:]
        if direction != 0:
            return self.not_a_request(op)
        if size != len(data):
            log.debug("%s: op %#04x says %d bytes, %d came", self.name, op, size, len(data))
            return [self.response(op, Failed(Why.BAD_LENGTH))]
        return self.run(Request(op, data, chk))

    def run(self, req: Request) -> list[Action]:
        name = self.COMMANDS.get(req.op)
        try:
            if name is None:
                raise Failed(Why.UNKNOWN_COMMAND, f"{req.op:#04x}")
            reply = getattr(self, name)(req)
        except Failed as failure:
            log.info("%s: %s failed: %s", self.name, _op_name(req.op), failure)
            return [self.response(req.op, failure)]
        if reply.silent:
            return list(reply.then)
        out: list[Action] = [self.response(req.op, reply)] * reply.repeat
        return out + list(reply.then)

    def response(self, op: int, outcome: Reply | Failed) -> Send:
        if isinstance(outcome, Failed):
            value, data, status = 0, b"", self.status(outcome.why)
        else:
            value, data, status = outcome.value, outcome.data, self.status(None)
        body = data + status
        return Send(slip_encode(HEADER.pack(1, op, len(body), value) + body))

    def not_a_request(self, op: int) -> list[Action]:
        raise NotImplementedError

    def status(self, why: Why | None) -> bytes:
        raise NotImplementedError

    # -- shared command bodies --

    def read_reg(self, req: Request) -> Reply:
        (addr,) = req.words(1)
        return Reply(value=self.regs.read(addr))

    def write_reg(self, req: Request) -> Reply:
        if not req.data or len(req.data) % 16:
            raise Failed(Why.NOT_ENOUGH_DATA, f"{len(req.data)} bytes")
        for addr, value, mask, _delay_us in struct.iter_unpack("<IIII", req.data):
            self.regs.write(addr, value, mask)
        return Reply()

    def get_security_info(self, req: Request) -> Reply:
        req.words(0)
        return Reply(data=security_info())

    def check_flash(self, offset: int, n: int, why: Why) -> None:
        limit = self.flash_limit()
        if offset < 0 or offset + n > limit:
            raise Failed(why, f"{n:#x} bytes at {offset:#x}, beyond the {limit:#x}-byte flash")

    def flash_limit(self) -> int:
        return self.flash.size

    def inflate(self, job: _FlashWrite, data: bytes, limit: int) -> bytes:
        """Decompress the next block of a FLASH_DEFL write, at most to `limit` bytes in all."""
        room = limit - job.pos
        try:
            out = job.inflate.decompress(data, room + 1)
        except zlib.error as e:
            raise Failed(Why.INFLATE, str(e)) from None
        if len(out) > room:
            raise Failed(Why.TOO_MUCH_DATA, f"inflates past the announced {limit} bytes")
        return out

    def program(self, at: int, data: bytes) -> None:
        self.check_flash(at, len(data), Why.FLASH_WRITE)
        self.flash.write(at, data)

    def erase(self, start: int, end: int) -> None:
        if end > start:
            self.check_flash(start, end - start, Why.FLASH_ERASE)
            self.flash.erase(start, end - start)


class RomLoader(_Loader):
    """The ROM's serial loader."""
    name = "rom"

    def __init__(self, regs: Peripherals) -> None:
        super().__init__(regs)
        self.flash_size = ROM_DEFAULT_FLASH_SIZE
        self.attached = False
        self.job: _FlashWrite | None = None
        self.load: _RamLoad | None = None
        self.ram: list[_RamLoad] = []              # what MEM_* loaded, for MEM_END's entry

    def not_a_request(self, op: int) -> list[Action]:
        log.debug("rom: ignored a frame that is not a request (op %#04x)", op)
        return []

    def status(self, why: Why | None) -> bytes:
        return bytes(4) if why is None else bytes([1, ROM_ERRORS[why], 0, 0])

    def flash_limit(self) -> int:
        return min(self.flash_size, self.flash.size)

    def check_flash(self, offset: int, n: int, why: Why) -> None:
        if not self.attached:
            raise Failed(why, "no SPI_ATTACH yet: the ROM has not attached the flash")
        super().check_flash(offset, n, why)

    def sync(self, req: Request) -> Reply:
        if req.data != SYNC_PAYLOAD:
            raise Failed(Why.BAD_LENGTH, "not the sync pattern")
        return Reply(value=ROM_SYNC_VALUE, repeat=SYNC_RESPONSES)

    def spi_attach(self, req: Request) -> Reply:
        req.words(2)                               # pins (0: the default ones), is_legacy
        self.attached = True
        return Reply()

    def spi_set_params(self, req: Request) -> Reply:
        _id, total, _block, _sector, _page, _mask = req.words(6)
        self.flash_size = total
        return Reply()

    def change_baudrate(self, req: Request) -> Reply:
        new, _old = req.words(2)
        # The ROM computes the divider for a 40 MHz crystal; esptool scales the rate it asks for
        # on a 26 MHz one (ESP32C2ROM.change_baud). What the line then runs at:
        baud = round(new * self.regs.crystal_mhz / 40)
        self.regs.uart_baud = baud
        return Reply(then=(SetBaud(baud),))

    def flash_begin(self, req: Request, compressed: bool = False) -> Reply:
        size, blocks, block_size, offset, *_encrypted = req.words(4, 5)
        if size:
            if offset % SECTOR_SIZE:
                raise Failed(Why.FLASH_ERASE, f"{offset:#x} is not sector aligned")
            self.erase(offset, _align_up(offset + size))
        self.job = _FlashWrite(offset, size, block_size, blocks,
                               zlib.decompressobj() if compressed else None)
        return Reply()

    def flash_data(self, req: Request) -> Reply:
        job = self._job(req, compressed=False)
        seq, data = req.block(too_short=Why.NOT_ENOUGH_DATA)
        if checksum(data) != req.checksum:
            raise Failed(Why.BAD_CHECKSUM)
        if len(data) > job.block_size or seq >= job.blocks:
            raise Failed(Why.TOO_MUCH_DATA, f"block {seq} of {len(data)} bytes")
        self.program(job.start + seq * job.block_size, data)
        return Reply()

    def flash_defl_begin(self, req: Request) -> Reply:
        return self.flash_begin(req, compressed=True)

    def flash_defl_data(self, req: Request) -> Reply:
        job = self._job(req, compressed=True)
        _seq, data = req.block(too_short=Why.NOT_ENOUGH_DATA)
        if checksum(data) != req.checksum:
            raise Failed(Why.BAD_CHECKSUM)
        out = self.inflate(job, data, job.size)
        self.program(job.start + job.pos, out)
        job.pos += len(out)
        return Reply()

    def flash_end(self, req: Request) -> Reply:
        (run_user_code,) = req.words(1)
        self.job = None
        if run_user_code:
            self.successor = _Gone("the app in flash")
            return Reply(then=(RunApp(),))
        return Reply(then=(Reset(straps_latched=False),))

    def _job(self, req: Request, *, compressed: bool) -> _FlashWrite:
        if self.job is None or (self.job.inflate is not None) != compressed:
            raise Failed(Why.NOT_IN_SESSION, f"{_op_name(req.op)} without its begin")
        return self.job

    def spi_flash_md5(self, req: Request) -> Reply:
        addr, size, _, _ = req.words(4)
        self.check_flash(addr, size, Why.FLASH_READ)
        return Reply(data=hashlib.md5(self.flash.read(addr, size)).hexdigest().encode())

    def read_flash_slow(self, req: Request) -> Reply:
        addr, size = req.words(2)
        if size > READ_FLASH_SLOW_BLOCK:
            raise Failed(Why.READ_TOO_LONG, f"{size} bytes")
        self.check_flash(addr, size, Why.FLASH_READ)
        return Reply(data=self.flash.read(addr, size).ljust(READ_FLASH_SLOW_BLOCK, b"\x00"))

    def mem_begin(self, req: Request) -> Reply:
        size, _blocks, block_size, offset = req.words(4)
        if not any(offset in ram and offset + size <= ram.stop for ram in (IRAM, DRAM)):
            raise Failed(Why.BAD_RAM_ADDRESS, f"{size:#x} bytes at {offset:#010x}")
        self.load = _RamLoad(offset, size, block_size)
        self.ram.append(self.load)
        return Reply()

    def mem_data(self, req: Request) -> Reply:
        if self.load is None:
            raise Failed(Why.NOT_IN_SESSION, "MEM_DATA without MEM_BEGIN")
        seq, data = req.block(too_short=Why.NOT_ENOUGH_DATA)
        if checksum(data) != req.checksum:
            raise Failed(Why.BAD_CHECKSUM)
        at = seq * self.load.block_size
        if at + len(data) > self.load.size:
            raise Failed(Why.TOO_MUCH_DATA, f"block {seq} ends past the announced {self.load.size}")
        loaded = self.load.data
        loaded.extend(bytes(max(0, at - len(loaded))))
        loaded[at:at + len(data)] = data
        return Reply()

    def mem_end(self, req: Request) -> Reply:
        no_execute, entry = req.words(2)
        self.load = None
        if no_execute:
            return Reply()
        if any(load.start <= entry < load.start + len(load.data) for load in self.ram):
            log.info("rom: running the code loaded at %#010x: the flasher stub", entry)
            self.successor = StubLoader(self.regs)
            return Reply(then=(Send(slip_encode(OHAI)),))
        log.warning("rom: MEM_END jumps to %#010x, where nothing was loaded: the chip hangs", entry)
        self.successor = _Gone(f"a jump to {entry:#010x}")
        return Reply()

    COMMANDS = {**_Loader.COMMANDS, Op.READ_FLASH_SLOW: "read_flash_slow"}


@dataclass
class _FlashRead:
    """The stub's READ_FLASH after its answer: one packet in flight, the host acks each with the
    total it has received, the MD5 of everything follows the last ack."""
    offset: int
    remaining: int
    packet_size: int
    total: int
    md5: "hashlib._Hash" = field(default_factory=hashlib.md5)


class StubLoader(_Loader):
    """The flasher stub (esp-flasher-stub), once the ROM has run it."""
    name = "stub"

    def __init__(self, regs: Peripherals) -> None:
        super().__init__(regs)
        self.job: _FlashWrite | None = None
        self.load: _RamLoad | None = None
        self.pending: Failed | None = None        # failure of work done after the last answer
        self.reading: _FlashRead | None = None

    def not_a_request(self, op: int) -> list[Action]:
        return [self.response(op, Failed(Why.UNKNOWN_COMMAND, "direction is not a request"))]

    def status(self, why: Why | None) -> bytes:
        return struct.pack(">H", 0 if why is None else STUB_ERRORS[why])

    def receive(self, frame: bytes) -> list[Action]:
        if self.reading is not None:
            return self._ack(frame)
        return super().receive(frame)

    def run(self, req: Request) -> list[Action]:
        if self.pending is not None:
            failure, self.pending = self.pending, None
            log.info("stub: %s answered with the earlier failure: %s", _op_name(req.op), failure)
            return [self.response(req.op, failure)]
        return super().run(req)

    def later(self, work: Callable[[], None]) -> None:
        """Work the stub does after it has answered: a failure shows on the next command."""
        try:
            work()
        except Failed as failure:
            log.info("stub: after the answer: %s", failure)
            self.pending = failure

    def sync(self, req: Request) -> Reply:
        if len(req.data) != len(SYNC_PAYLOAD):
            raise Failed(Why.BAD_LENGTH, f"{len(req.data)} bytes")
        return Reply(value=0, repeat=SYNC_RESPONSES)

    def spi_attach(self, req: Request) -> Reply:
        req.words(1)
        return Reply()

    def spi_set_params(self, req: Request) -> Reply:
        req.words(6)
        return Reply()

    def change_baudrate(self, req: Request) -> Reply:
        new, _old = req.words(2)
        self.regs.uart_baud = new
        return Reply(then=(SetBaud(new),))

    def flash_begin(self, req: Request, compressed: bool = False) -> Reply:
        size, blocks, block_size, offset, *_encrypted = req.words(4, 5)
        # The stub erases sector by sector as data comes (skipping blank ones): the same flash.
        self.erase(_align_down(offset), _align_up(offset + size))
        self.job = _FlashWrite(offset, size, block_size, blocks,
                               zlib.decompressobj() if compressed else None)
        return Reply()

    def flash_data(self, req: Request) -> Reply:
        job = self._job()
        _seq, data = req.block(too_short=Why.NOT_ENOUGH_DATA)
        if checksum(data) != req.checksum:
            raise Failed(Why.BAD_CHECKSUM)
        self.later(lambda: self._stream(job, data[:job.size - job.pos]))
        return Reply()

    def flash_defl_begin(self, req: Request) -> Reply:
        return self.flash_begin(req, compressed=True)

    def flash_defl_data(self, req: Request) -> Reply:
        job = self._job()
        if len(req.data) < DATA_HEADER.size:
            raise Failed(Why.BAD_LENGTH, f"{len(req.data)} bytes")
        length = DATA_HEADER.unpack_from(req.data)[0]
        data = req.data[DATA_HEADER.size:]
        if length > len(data):
            raise Failed(Why.BAD_LENGTH, f"header says {length} bytes, {len(data)} follow")
        if checksum(data[:length]) != req.checksum:
            raise Failed(Why.BAD_CHECKSUM)
        if job.inflate is None:
            raise Failed(Why.NOT_IN_SESSION, "FLASH_DEFL_DATA after FLASH_BEGIN")
        self.later(lambda: self._stream(job, self.inflate(job, data[:length], job.size)))
        return Reply()

    def _stream(self, job: _FlashWrite, data: bytes) -> None:
        self.program(job.start + job.pos, data)
        job.pos += len(data)

    def flash_end(self, req: Request) -> Reply:
        req.words(1)                # the reboot flag: ignored by this stub
        job = self._job()
        if job.pos != job.size:
            raise Failed(Why.BAD_LENGTH, f"{job.size - job.pos} announced bytes not written")
        self.job = None
        return Reply()

    def _job(self) -> _FlashWrite:
        if self.job is None:
            raise Failed(Why.NOT_IN_SESSION, "no FLASH_BEGIN")
        return self.job

    def spi_flash_md5(self, req: Request) -> Reply:
        addr, size, _, _ = req.words(4)
        self.check_flash(addr, size, Why.FLASH_READ)
        return Reply(data=self.flash.md5(addr, size))

    def erase_flash(self, req: Request) -> Reply:
        self.flash.erase_all()
        return Reply()

    def erase_region(self, req: Request) -> Reply:
        offset, size = req.words(2)
        if offset % SECTOR_SIZE or size % SECTOR_SIZE:
            raise Failed(Why.BAD_LENGTH, f"{size:#x} bytes at {offset:#x}: not whole sectors")
        self.erase(offset, offset + size)
        return Reply()

    def read_flash(self, req: Request) -> Reply:
        offset, size, packet_size, _max_in_flight = req.words(4)
        if packet_size > STUB_MAX_READ_PACKET:
            self.pending = Failed(Why.BAD_LENGTH, f"{packet_size}-byte packets")
            return Reply()
        self.reading = _FlashRead(offset, size, packet_size, size)
        return Reply(then=tuple(self._next_packet()))

    def _next_packet(self) -> list[Action]:
        read = self.reading
        if read.remaining == 0:
            self.reading = None
            return [Send(slip_encode(read.md5.digest()))]
        n = min(read.remaining, read.packet_size)
        try:
            self.check_flash(read.offset, n, Why.FLASH_READ)
        except Failed as failure:
            self.reading, self.pending = None, failure
            return []
        data = self.flash.read(read.offset, n)
        read.md5.update(data)
        read.offset += n
        read.remaining -= n
        return [Send(slip_encode(data))]

    def _ack(self, frame: bytes) -> list[Action]:
        read = self.reading
        if len(frame) != 4:
            log.info("stub: a %d-byte frame instead of a read ack ends the read", len(frame))
            self.reading = None
            return [Send(slip_encode(read.md5.digest()))]
        (acked,) = struct.unpack("<I", frame)
        if read.remaining:
            return self._next_packet()
        if acked >= read.total:
            return self._next_packet()            # nothing left: the MD5
        return []

    def mem_begin(self, req: Request) -> Reply:
        size, _blocks, block_size, offset = req.words(4)
        self.load = _RamLoad(offset, size, block_size)
        return Reply()

    def mem_data(self, req: Request) -> Reply:
        if len(req.data) < DATA_HEADER.size:
            raise Failed(Why.NOT_ENOUGH_DATA, f"{len(req.data)} bytes")
        if self.load is None:
            raise Failed(Why.NOT_IN_SESSION, "MEM_DATA without MEM_BEGIN")
        _seq, data = req.block(too_short=Why.NOT_ENOUGH_DATA)
        if len(self.load.data) + len(data) > self.load.size:
            raise Failed(Why.TOO_MUCH_DATA, f"past the announced {self.load.size} bytes")
        self.load.data += data
        return Reply()

    def mem_end(self, req: Request) -> Reply:
        no_execute, entry = req.words(2)
        if self.load is None:
            raise Failed(Why.NOT_IN_SESSION, "MEM_END without MEM_BEGIN")
        self.load = None
        if not no_execute:
            log.warning("stub: runs RAM code at %#010x, which the model cannot run", entry)
            self.successor = _Gone(f"RAM code at {entry:#010x}")
        return Reply()

    def run_user_code(self, req: Request) -> Reply:
        log.info("stub: RUN_USER_CODE: no answer and, in this stub, no effect")
        return Reply(silent=True)

    COMMANDS = {**_Loader.COMMANDS, Op.ERASE_FLASH: "erase_flash",
                Op.ERASE_REGION: "erase_region", Op.READ_FLASH: "read_flash",
                Op.RUN_USER_CODE: "run_user_code"}


class _Gone(_Loader):
    """Download mode has been left (the app runs, or RAM code the model cannot run)."""
    name = "left"

    def __init__(self, what: str) -> None:
        self.what = what
        self.successor = None

    def receive(self, frame: bytes) -> list[Action]:
        log.debug("ignored a frame: the chip runs %s", self.what)
        return []


def _op_name(op: int) -> str:
    try:
        return Op(op).name
    except ValueError:
        return f"op {op:#04x}"


# ---- the whole download mode -------------------------------------------------------------------

class DownloadMode:
    """UART0 of an ESP32-C2 that came out of reset in download mode (IO9 low)."""

    def __init__(self, flash: Flash, *, mac: bytes = DEFAULT_MAC, crystal_mhz: int = 40) -> None:
        self._flash = flash
        self._mac = mac
        self._crystal_mhz = crystal_mhz
        self.reset()

    def reset(self) -> None:
        """A chip reset into download mode (EN, power): the ROM at 115200 baud, no stub, and
        whatever was on its way lost."""
        self._regs = Peripherals(self._flash, mac=self._mac, crystal_mhz=self._crystal_mhz)
        self._loader: _Loader = RomLoader(self._regs)
        self._decoder = SlipDecoder()

    @property
    def state(self) -> str:
        """"rom", "stub" or "left" (download mode left: input is ignored until reset())."""
        return self._loader.name

    @property
    def baud(self) -> int:
        return self._regs.uart_baud

    def feed(self, data: bytes) -> list[Action]:
        actions: list[Action] = []
        for frame in self._decoder.feed(data):
            actions += self._loader.receive(frame)
            if self._loader.successor is not None:
                self._loader = self._loader.successor
            if self._regs.watchdog_fired:
                actions.append(Reset(straps_latched=True))
            if actions and isinstance(actions[-1], Reset):
                actions[-1:-1] = self._reset_actions()
                break                    # the rest arrived while the chip was resetting
        return _joined(actions)

    def _reset_actions(self) -> list[Action]:
        baud = self._regs.uart_baud
        self.reset()
        return [] if baud == ROM_BAUD else [SetBaud(ROM_BAUD)]


def _joined(actions: list[Action]) -> list[Action]:
    """Adjacent Sends as one."""
    out: list[Action] = []
    for action in actions:
        if isinstance(action, Send) and out and isinstance(out[-1], Send):
            out[-1] = Send(out[-1].data + action.data)
        else:
            out.append(action)
    return out
