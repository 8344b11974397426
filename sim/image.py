"""ESP32-C2 firmware images as the chip sees them: parsing them, and what happens at reset.

Sans-IO: the flash is read through `read(offset, n) -> bytes`. The formats follow esptool's
bin_image.py (an image: 24-byte header, segments, XOR checksum padded to 16 bytes, appended
SHA-256), ESP-IDF's gen_esp32part.py (the partition table) and esp_app_format (esp_app_desc_t).
`boot` follows the ESP32-C2 ROM and ESP-IDF v5.0's 2nd-stage bootloader (bootloader_utility.c,
esp_image_format.c, flash_partitions.c: their checks, in their order, with their messages), and
its log has the shape of the ESP32-C2 start-up log ESP-AT publishes.

Where the silicon loops, the model stops after one round: an erased or garbage bootloader makes the
ROM print `invalid header: 0x...` forever (`INVALID_HEADER_LINES` lines here); a ROM checksum or
chip-id failure ends in `ets_main.c 333` and a watchdog reset (TG0WDT_SYS_RST); a bootloader with
nothing to boot calls bootloader_reset() (RTC_SW_SYS_RST). Each next round prints the same text.

Baud: the C2 ROM prints at 74880 baud with the 26 MHz crystal of ESP-AT's modules (115200 x 26/40),
the bootloader and the app at 115200; `rom_end` marks where in `log` the rate changes.
Not modelled: the bootloader writing otadata, anti-rollback, secure boot, flash encryption, and
the check of load addresses against the bootloader's own RAM.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

Read = Callable[[int, int], bytes]

IMAGE_MAGIC = 0xE9
CHECKSUM_SEED = 0xEF
APP_DESC_MAGIC = 0xABCD5432
BOOTLOADER_DESC_MAGIC = 0x50
HEADER = struct.Struct("<BBBBI")              # magic, segment count, flash mode, size|freq, entry
# wp pin, 3 bytes of pin drive, chip id, min rev (legacy), min rev full, max rev full, hash appended
EXT_HEADER = struct.Struct("<BBBBHBHH4xB")
SEGMENT_HEADER = struct.Struct("<II")         # load address, length
# esp_app_desc_t: magic, secure_version, version, project_name, time, date, idf_ver,
# app_elf_sha256, min/max efuse block rev (v5.1+), log2 of the MMU page size (v5.3+)
APP_DESC = struct.Struct("<II8x32s32s16s16s32s32sHHB3x72x")
BOOTLOADER_DESC = struct.Struct("<B3xI32s24s16x")  # esp_bootloader_desc_t: magic, version, idf_ver, date_time
PARTITION = struct.Struct("<2sBBII16sI")      # magic, type, subtype, offset, size, label, flags
PARTITION_MAGIC, MD5_MAGIC = b"\xaa\x50", b"\xeb\xeb"
OTA_SELECT = struct.Struct("<I20xII")         # esp_ota_select_entry_t: ota_seq, ota_state, crc

CHIP_ID = 12                                   # ESP32-C2 in the image header
CHIP_REV_FULL = 100                            # the chip modelled: v1.0 (ESP8684 ROM)
CHIP_NAMES = {0: "ESP32", 2: "ESP32-S2", 5: "ESP32-C3", 9: "ESP32-S3", 12: "ESP32-C2",
              13: "ESP32-C6", 16: "ESP32-H2", 18: "ESP32-P4", 20: "ESP32-C61", 23: "ESP32-C5"}
MAX_SEGMENTS = 16
BOOTLOADER_OFFSET, PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE = 0x0, 0x8000, 0xC00
MMU_PAGE = 0x10000
DROM, IROM = (0x3C000000, 0x3C400000), (0x42000000, 0x42400000)   # flash-mapped on the C2
FLASH_MODES = ("QIO", "QOUT", "DIO", "DOUT")
FLASH_SIZES = {0x0: "1MB", 0x1: "2MB", 0x2: "4MB", 0x3: "8MB", 0x4: "16MB"}    # high nibble
FLASH_FREQS = {0xF: 60, 0x0: 30, 0x1: 20, 0x2: 15}                           # low nibble, MHz
DEFAULT_IDF_VER = "v5.0.4"

ROM_BANNER = ("ESP-ROM:esp8684-api2-20220127", "Build:Jan 27 2022")
SPI_BOOT, DOWNLOAD_BOOT = (0xC, "SPI_FAST_FLASH_BOOT"), (0x4, "DOWNLOAD(UART0)")  # IO8/IO9 straps
ROM_FATAL = "ets_main.c 333"       # the C3 ROM's line after a fatal load error; the C2's is alike
INVALID_HEADER_LINES = 8
SAVED_PC = 0x40380E7A

# What the C2 ROM prints after "rst:", and which event gives which.
RESET_REASONS = {
    "POWERON": 0x1,           # power-on, and the EN (CHIP_EN) pin: the C2 reports both as POWERON
    "RTC_SW_SYS_RST": 0x3,    # software system reset: bootloader_reset() (nothing to boot)
    "DSLEEP": 0x5,            # wake from deep sleep
    "TG0WDT_SYS_RST": 0x7,    # the ROM's watchdog after a fatal load error (ets_main.c ...)
    "RTC_SW_CPU_RST": 0xC,    # software CPU reset: esp_restart() (AT+RST) and the panic handler
    "BROWN_OUT_RST": 0xF,
    "RTCWDT_RTC_RST": 0x10,   # RTC watchdog: the bootloader's (CONFIG_BOOTLOADER_WDT_ENABLE)
    "SUPER_WDT_RST": 0x12,
}
RESET_CAUSES = {"power_on": "POWERON", "en_pin": "POWERON", "esp_restart": "RTC_SW_CPU_RST",
                "panic": "RTC_SW_CPU_RST", "bootloader_reset": "RTC_SW_SYS_RST",
                "rom_fatal": "TG0WDT_SYS_RST", "deep_sleep": "DSLEEP", "brownout": "BROWN_OUT_RST"}

# RISC-V mcause of the exceptions ESP-IDF names in "Guru Meditation Error: ... panic'ed (...)".
EXCEPTIONS = {"Instruction address misaligned": 0, "Instruction access fault": 1,
              "Illegal instruction": 2, "Breakpoint": 3, "Load address misaligned": 4,
              "Load access fault": 5, "Store address misaligned": 6, "Store access fault": 7}


class ImageError(ValueError):
    """A flash content the chip refuses. `kind` names the check (magic, chip, rev, segment,
    truncated, checksum, size, hash, partition, app_desc); `idf` is (tag, text) as ESP-IDF's
    bootloader logs it; `segments` are the segments read before the failure."""

    def __init__(self, message: str, kind: str, *, idf: tuple[str, str] | None = None,
                 segments: tuple[Segment, ...] = ()) -> None:
        super().__init__(message)
        self.kind, self.idf, self.segments = kind, idf, tuple(segments)


@dataclass(frozen=True)
class Partition:
    label: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0

    @property
    def usage(self) -> str:
        """The bootloader's "Usage" column."""
        if self.type == 0x00:
            if self.subtype in (0x00, 0x20):
                return "factory app" if self.subtype == 0x00 else "test app"
            return "OTA app" if 0x10 <= self.subtype < 0x20 else "Unknown app"
        if self.type == 0x01:
            return {0x00: "OTA data", 0x01: "RF data", 0x02: "WiFi data", 0x04: "NVS keys",
                    0x05: "efuse"}.get(self.subtype, "Unknown data")
        return "unknown"


@dataclass(frozen=True)
class AppDescriptor:
    version: str
    project_name: str
    time: str
    date: str
    idf_ver: str
    secure_version: int = 0
    elf_sha256: bytes = b""


@dataclass(frozen=True)
class Segment:
    addr: int        # load (virtual) address
    offset: int      # of its data, from the start of the image
    size: int

    @property
    def mapped(self) -> bool:
        return DROM[0] <= self.addr < DROM[1] or IROM[0] <= self.addr < IROM[1]


@dataclass(frozen=True)
class Image:
    flash_mode: int
    flash_size_freq: int
    entry: int
    wp_pin: int
    chip_id: int
    min_rev_full: int
    max_rev_full: int
    hash_appended: bool
    segments: tuple[Segment, ...]
    length: int                    # up to and with the checksum byte
    checksum: int
    calc_checksum: int
    digest: bytes | None
    calc_digest: bytes | None
    app: AppDescriptor | None      # from the first DROM segment
    bootloader_desc: tuple[str, str] | None  # (idf_ver, date_time) from the first DRAM segment

    @property
    def size(self) -> int:
        return self.length + (32 if self.hash_appended else 0)


@dataclass(frozen=True)
class Booted:
    app: AppDescriptor
    log: bytes
    partition: Partition | None = None
    rom_end: int = 0               # log[:rom_end] is the ROM's (74880 baud), the rest 115200


@dataclass(frozen=True)
class BootFailed:
    reason: str                    # which stage refused what: "ROM: ..." or "bootloader: ..."
    log: bytes
    rom_end: int = 0


BootResult = Booted | BootFailed


def chip_name(chip_id: int) -> str:
    return CHIP_NAMES.get(chip_id, "unknown chip")


def bytes_reader(data: bytes) -> Read:
    """A read over `data` alone: past its end reads come back short (a truncated image)."""
    return lambda offset, n: data[offset:offset + n]


def flash_reader(data: bytes, flash_size: int = 4 << 20) -> Read:
    """A read over a SPI flash holding `data` from 0x0: erased (0xFF) past it, and addresses wrap
    at the chip's size as the flash ignores the address bits above it."""
    if len(data) > flash_size:
        raise ValueError(f"0x{len(data):x} bytes do not fit a 0x{flash_size:x}-byte flash")

    def read(offset: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            at = offset % flash_size
            k = min(n, flash_size - at)
            chunk = data[at:at + k]
            out += chunk + b"\xff" * (k - len(chunk))
            offset, n = offset + k, n - k
        return bytes(out)
    return read


def _xor(data: bytes, state: int) -> int:
    x, width = int.from_bytes(data, "little"), len(data)
    while width > 1:
        half = (width + 1) // 2
        x, width = (x & ((1 << 8 * half) - 1)) ^ (x >> 8 * half), half
    return (x & 0xFF) ^ state


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def _app_desc(data: bytes) -> AppDescriptor | None:
    if len(data) < APP_DESC.size:
        return None
    magic, secure, version, project, time, date, idf, sha, *_ = APP_DESC.unpack_from(data)
    if magic != APP_DESC_MAGIC:
        return None
    return AppDescriptor(_cstr(version), _cstr(project), _cstr(time), _cstr(date), _cstr(idf),
                         secure, sha)


def _check_chip(chip_id: int, min_rev: int, max_rev: int, expected: int, chip_rev: int) -> None:
    if chip_id != expected:
        raise ImageError(f"image is for chip id {chip_id} ({chip_name(chip_id)}), not "
                         f"{chip_name(expected)} ({expected})", "chip",
                         idf=("boot_comm", f"mismatch chip ID, expected {expected}, found {chip_id}"))
    v = lambda r: f"v{r // 100}.{r % 100}"
    if min_rev > chip_rev or (max_rev not in (0, 0xFFFF) and chip_rev > max_rev):
        op, rev = (">=", min_rev) if min_rev > chip_rev else ("<=", max_rev)
        raise ImageError(f"image requires chip rev {op} {v(rev)}, chip is {v(chip_rev)}", "rev",
                         idf=("boot_comm", f"Image requires chip rev {op} {v(rev)}, "
                                           f"but chip is {v(chip_rev)}"))


def read_image(read: Read, offset: int = 0, *, verify: bool = False, chip_id: int = CHIP_ID,
               chip_rev: int = CHIP_REV_FULL, max_size: int | None = None) -> Image:
    """Read the image at `offset`. With `verify`, check it as the 2nd-stage bootloader does, in
    its order: magic, chip and revision (before any segment), each segment's length and flash
    mapping, then checksum, size against `max_size` (the partition) and SHA-256."""
    sha, pos, segs = hashlib.sha256(), 0, []

    def take(n: int) -> bytes:
        nonlocal pos
        data = read(offset + pos, n)
        if len(data) < n:
            raise ImageError(f"image at 0x{offset:x} truncated: needs 0x{pos + n:x} bytes, has "
                             f"0x{pos + len(data):x}", "truncated", segments=segs)
        sha.update(data)
        pos += n
        return data

    head = take(HEADER.size + EXT_HEADER.size)
    magic, count, mode, size_freq, entry = HEADER.unpack_from(head)
    if magic != IMAGE_MAGIC:
        erased = " (erased flash)" if head[:4] == b"\xff" * 4 else ""
        raise ImageError(f"invalid magic byte 0x{magic:02x} at 0x{offset:x}, not 0xe9{erased}",
                         "magic", idf=("esp_image", f"image at 0x{offset:x} has invalid magic "
                                                    "byte (nothing flashed here?)"))
    wp, _, _, _, chip, _, min_rev, max_rev, hash_appended = EXT_HEADER.unpack_from(head, 8)
    if verify:
        _check_chip(chip, min_rev, max_rev, chip_id, chip_rev)
    if count > MAX_SEGMENTS:
        raise ImageError(f"segment count {count} exceeds max {MAX_SEGMENTS}", "segment",
                         idf=("esp_image", f"image at 0x{offset:x} segment count {count} "
                                           f"exceeds max {MAX_SEGMENTS}"))
    checksum, app, bl_desc = CHECKSUM_SEED, None, None
    for i in range(count):
        addr, size = SEGMENT_HEADER.unpack(take(SEGMENT_HEADER.size))
        if size % 4 or size >= 1 << 24:
            raise ImageError(f"segment {i}: invalid length 0x{size:x}", "segment", segments=segs,
                             idf=("esp_image", f"invalid segment length 0x{size:x}"))
        seg = Segment(addr, pos, size)
        if verify and seg.mapped and (offset + pos) % MMU_PAGE != addr % MMU_PAGE:
            raise ImageError(f"segment {i}: load address 0x{addr:08x} does not match its flash "
                             f"offset 0x{offset + pos:08x} modulo the MMU page", "segment",
                             segments=segs, idf=("esp_image", f"Segment {i} load address "
                                                 f"0x{addr:08x}, doesn't match data 0x{offset + pos:08x}"))
        data = take(size)
        segs.append(seg)
        checksum = _xor(data, checksum)
        if app is None and DROM[0] <= addr < DROM[1]:
            app = _app_desc(data)
        if bl_desc is None and not seg.mapped and data[:1] == bytes([BOOTLOADER_DESC_MAGIC]) \
                and len(data) >= BOOTLOADER_DESC.size:
            _, _, idf, when = BOOTLOADER_DESC.unpack_from(data)
            bl_desc = (_cstr(idf), _cstr(when))
    stored = take(16 - pos % 16)[-1]
    length, calc_digest, digest = pos, sha.digest(), None
    if hash_appended:
        digest = take(32)
    image = Image(mode, size_freq, entry, wp, chip, min_rev, max_rev, bool(hash_appended),
                  tuple(segs), length, stored, checksum, digest,
                  calc_digest if hash_appended else None, app, bl_desc)
    if verify:
        _verify_content(image, offset, max_size)
    return image


def _verify_content(image: Image, offset: int, max_size: int | None) -> None:
    segs = image.segments
    if image.checksum != image.calc_checksum:
        raise ImageError(f"checksum failed: calculated 0x{image.calc_checksum:02x}, stored "
                         f"0x{image.checksum:02x}", "checksum", segments=segs,
                         idf=("esp_image", f"Checksum failed. Calculated 0x{image.calc_checksum:x} "
                                           f"read 0x{image.checksum:x}"))
    if max_size is not None and image.size > max_size:
        raise ImageError(f"image of {image.size} bytes does not fit its partition of {max_size}",
                         "size", segments=segs, idf=("esp_image", f"Image length {image.size} "
                                                     f"doesn't fit in partition length {max_size}"))
    if image.hash_appended and image.digest != image.calc_digest:
        raise ImageError(f"SHA-256 mismatch at 0x{offset:x}: calculated {image.calc_digest.hex()}, "
                         f"stored {image.digest.hex()}", "hash", segments=segs,
                         idf=("esp_image", "Image hash failed - image is corrupt"))


def parse_image(data: bytes, *, chip_id: int = CHIP_ID) -> Image:
    """Parse and check a whole image file (a bootloader.bin or an app .bin)."""
    return read_image(bytes_reader(data), verify=True, chip_id=chip_id)


def parse_app_descriptor(image: bytes) -> AppDescriptor:
    """The esp_app_desc_t at the start of an app image's first DROM segment."""
    if image[:1] != bytes([IMAGE_MAGIC]):
        raise ImageError(f"invalid magic byte {image[:1].hex() or 'none'}, not e9", "magic")
    pos = HEADER.size + EXT_HEADER.size
    for _ in range(image[1]):
        if len(image) < pos + SEGMENT_HEADER.size:
            break
        addr, size = SEGMENT_HEADER.unpack_from(image, pos)
        if DROM[0] <= addr < DROM[1]:
            desc = _app_desc(image[pos + SEGMENT_HEADER.size:])
            if desc is None:
                raise ImageError("the first DROM segment does not start with an esp_app_desc_t "
                                 f"(magic 0x{APP_DESC_MAGIC:08x})", "app_desc")
            return desc
        pos += SEGMENT_HEADER.size + size
    raise ImageError("no DROM segment in the image, so no esp_app_desc_t", "app_desc")


def parse_partition_table(data: bytes) -> list[Partition]:
    """The entries of a partition table (0x8000, 0xC00 bytes), the MD5 entry checked if there."""
    parts: list[Partition] = []
    for pos in range(0, min(len(data), PARTITION_TABLE_SIZE) - PARTITION.size + 1, PARTITION.size):
        entry = data[pos:pos + PARTITION.size]
        magic = entry[:2]
        if magic == PARTITION_MAGIC:
            _, ptype, subtype, offset, size, label, flags = PARTITION.unpack(entry)
            parts.append(Partition(_cstr(label), ptype, subtype, offset, size, flags))
        elif magic == MD5_MAGIC:
            if entry[16:] != hashlib.md5(data[:pos]).digest():
                raise ImageError(f"partition table MD5 mismatch: the table's 0x{pos:x} bytes hash to "
                                 f"{hashlib.md5(data[:pos]).hexdigest()}, its MD5 entry says "
                                 f"{entry[16:].hex()}", "partition",
                                 idf=("flash_parts", "Incorrect MD5 checksum"))
        elif entry[:4] == b"\xff" * 4:
            return parts
        else:
            number = int.from_bytes(magic, "little")
            raise ImageError(f"partition table entry {len(parts)} has magic 0x{number:04x}, not "
                             "0x50aa", "partition",
                             idf=("flash_parts", f"partition {len(parts)} invalid magic number 0x{number:x}"))
    return parts


# --- the boot log ---------------------------------------------------------------------------

class _Log:
    COLORS = {"E": "\x1b[0;31m", "W": "\x1b[0;33m", "I": "\x1b[0;32m"}

    def __init__(self, colors: bool) -> None:
        self.lines: list[str] = []
        self.ms, self.colors = 28, colors

    def raw(self, *lines: str) -> None:
        self.lines.extend(lines)

    def esp(self, level: str, tag: str, text: str, ms: int = 4) -> None:
        self.ms += ms
        line = f"{level} ({self.ms}) {tag}: {text}"
        self.lines.append(f"{self.COLORS[level]}{line}\x1b[0m" if self.colors else line)

    def i(self, tag: str, text: str, ms: int = 4) -> None:
        self.esp("I", tag, text, ms)

    def e(self, tag: str, text: str) -> None:
        self.esp("E", tag, text, 2)

    def bytes(self) -> bytes:
        return "".join(line + "\r\n" for line in self.lines).encode()


def _rom_banner(reset_reason: str, mode: tuple[int, str]) -> list[str]:
    name = RESET_CAUSES.get(reset_reason, reset_reason)
    if name not in RESET_REASONS:
        raise ValueError(f"unknown reset reason {reset_reason!r}: one of "
                         f"{sorted(RESET_REASONS)} or {sorted(RESET_CAUSES)}")
    lines = [*ROM_BANNER, f"rst:0x{RESET_REASONS[name]:x} ({name}),boot:0x{mode[0]:x} ({mode[1]})"]
    return lines + ([] if name == "POWERON" else [f"Saved PC:0x{SAVED_PC:08x}"])


def download_banner(reset_reason: str = "POWERON") -> bytes:
    """What the ROM prints when the IO9 strap is low at reset (IO8 high): download mode. The boot
    value and its name are those emulators of the C2 ROM print; not checked on silicon here."""
    return "".join(f"{line}\r\n" for line in
                   [*_rom_banner(reset_reason, DOWNLOAD_BOOT), "waiting for download"]).encode()


def panic_log(reason: str = "Load access fault", *, elf_sha256: str = "6f4a2e3b1d0c9a87") -> bytes:
    """ESP-IDF v5's RISC-V panic printout, to `Rebooting...`; the chip then resets with
    RTC_SW_CPU_RST (boot(read, reset_reason="panic"))."""
    regs = dict.fromkeys(["MEPC", "RA", "SP", "GP", "TP", "T0", "T1", "T2", "S0/FP", "S1", "A0",
                          "A1", "A2", "A3", "A4", "A5", "A6", "A7", "S2", "S3", "S4", "S5", "S6",
                          "S7", "S8", "S9", "S10", "S11", "T3", "T4", "T5", "T6", "MSTATUS",
                          "MTVEC", "MCAUSE", "MTVAL", "MHARTID"], 0)
    regs.update({"MEPC": 0x4200A3C2, "RA": 0x4200A3B8, "SP": 0x3FCB0D50, "GP": 0x3FCA8A00,
                 "TP": 0x3FC9E5D4, "T0": 0x4005890E, "T1": 0xF, "S1": 0x3FCAA5A8,
                 "A1": 0x3FCB0D6C, "A3": 0x3FCB0D6C, "A7": 0xA, "MSTATUS": 0x1881,
                 "MTVEC": 0x40380001, "MCAUSE": EXCEPTIONS.get(reason, 0)})
    names = list(regs)
    dump = ["".join(f"{n:<8}: 0x{regs[n]:08x}  " for n in names[k:k + 4])
            for k in range(0, len(names), 4)]
    stack = [f"{0x3FCB0D50 + 32 * k:08x}: " + " ".join(f"0x{w:08x}" for w in words) for k, words in
             enumerate([(0x3FCA3000, 0x4200A3B8, 0, 0, 0, 0, 0x3FCB0DA0, 0x42004F1A)] + [(0,) * 8] * 3)]
    lines = [f"Guru Meditation Error: Core  0 panic'ed ({reason}). Exception was unhandled.", "",
             "Core  0 register dump:", *dump, "", "Stack memory:", *stack, "", "",
             f"ELF file SHA256: {elf_sha256}", "", "Rebooting..."]
    return "".join(f"{line}\r\n" for line in lines).encode()


def _idf_at_least(idf_ver: str, major: int, minor: int) -> bool:
    try:
        got = tuple(int(x) for x in idf_ver.lstrip("v").split("-")[0].split(".")[:2])
    except ValueError:
        return True
    return got >= (major, minor)


def boot(read: Read, *, reset_reason: str = "POWERON", app_info: bool = True,
         colors: bool = False) -> BootResult:
    """What the chip does at reset in SPI boot mode, and the text it prints on UART0.

    `reset_reason`: a name of RESET_REASONS or a cause of RESET_CAUSES. `app_info`: the app's
    INFO start-up lines (IDF's default log level); ESP-AT's release builds set
    CONFIG_LOG_DEFAULT_LEVEL_ERROR and print only their own lines after the bootloader's.
    `colors`: ESP-IDF's CONFIG_LOG_COLORS escapes around ESP_LOG lines."""
    log = _Log(colors)
    log.raw(*_rom_banner(reset_reason, SPI_BOOT))

    def rom_failed(reason: str) -> BootFailed:
        text = log.bytes()
        return BootFailed(f"ROM: {reason}", text, len(text))

    head = read(BOOTLOADER_OFFSET, HEADER.size + EXT_HEADER.size)
    if len(head) < 24 or head[0] != IMAGE_MAGIC:
        word = int.from_bytes(head[:4].ljust(4, b"\xff"), "little")
        log.raw(*[f"invalid header: 0x{word:08x}"] * INVALID_HEADER_LINES)
        return rom_failed(f"invalid header 0x{word:08x} at 0x0: no bootloader")
    if head[12] != CHIP_ID:
        log.raw(f"Invalid chip id. Expected {CHIP_ID} read {head[12]}. Bootloader for wrong chip?",
                ROM_FATAL)
        return rom_failed(f"the bootloader is for chip id {head[12]} ({chip_name(head[12])}), "
                          f"not {chip_name(CHIP_ID)} ({CHIP_ID})")
    log.raw(f"SPIWP:0x{head[8]:02x}", f"mode:{FLASH_MODES[head[2] & 3]}, clock div:"
            f"{60 // FLASH_FREQS.get(head[3] & 0xF, 60)}")
    loads = lambda segs: [f"load:0x{s.addr:08x},len:0x{s.size:x}" for s in segs]
    try:
        bl = read_image(read, BOOTLOADER_OFFSET)
    except ImageError as err:
        log.raw(*loads(err.segments), ROM_FATAL)
        return rom_failed(f"bootloader: {err}")
    log.raw(*loads(bl.segments))
    if bl.checksum != bl.calc_checksum:
        log.raw(f"Checksum failure. Calculated 0x{bl.calc_checksum:02x} stored 0x{bl.checksum:02x}",
                ROM_FATAL)
        return rom_failed("bootloader checksum failed")
    if bl.hash_appended and bl.digest != bl.calc_digest:
        log.raw("SHA-256 comparison failed:", f"Calculated: {bl.calc_digest.hex()}",
                f"Expected: {bl.digest.hex()}", "Attempting to boot anyway...")
    log.raw(f"entry 0x{bl.entry:08x}")
    rom_end = len(log.bytes())
    return _second_stage(read, bl, log, rom_end, app_info)


def _second_stage(read: Read, bl: Image, log: _Log, rom_end: int, app_info: bool) -> BootResult:
    idf_ver, built = bl.bootloader_desc or (DEFAULT_IDF_VER, "Jan  1 2026 00:00:00")
    failed = lambda reason: BootFailed(reason, log.bytes(), rom_end)
    log.i("boot", f"ESP-IDF {idf_ver} 2nd stage bootloader")
    log.i("boot", f"compile time {built if _idf_at_least(idf_ver, 5, 1) else built[-8:]}", 0)
    log.i("boot", f"chip revision: v{CHIP_REV_FULL // 100}.{CHIP_REV_FULL % 100}", 0)
    log.i("boot.esp32c2", f"MMU Page Size  : {MMU_PAGE >> 10}K")
    log.i("boot.esp32c2", f"SPI Speed      : {FLASH_FREQS.get(bl.flash_size_freq & 0xF, 60)}MHz", 5)
    log.i("boot.esp32c2", f"SPI Mode       : {FLASH_MODES[bl.flash_mode & 3]}", 5)
    log.i("boot.esp32c2", f"SPI Flash Size : {FLASH_SIZES.get(bl.flash_size_freq >> 4, '4MB')}")
    log.i("boot", "Enabling RNG early entropy source...", 5)
    try:
        parts = parse_partition_table(read(PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE))
    except ImageError as err:
        log.e(*err.idf)
        log.e("boot", "Failed to verify partition table")
        log.e("boot", "load partition table error!")
        return failed(f"bootloader: {err}")
    log.i("boot", "Partition Table:", 6)
    log.i("boot", "## Label            Usage          Type ST Offset   Length", 3)
    for n, p in enumerate(parts):
        log.i("boot", f"{n:2d} {p.label:<16} {p.usage:<16} {p.type:02x} {p.subtype:02x} "
                      f"{p.offset:08x} {p.size:08x}", 7)
    log.i("boot", "End of partition table", 7)

    apps = {p.subtype: p for p in parts if p.type == 0x00}
    otas = [apps[s] for s in sorted(apps) if 0x10 <= s < 0x20]
    slot = lambda i: apps.get(0x00) if i < 0 else (otas[i] if i < len(otas) else None)
    start = _selected_index(read, parts, len(otas), 0x00 in apps, log)
    tried = []
    for index in [*range(start, -2, -1), *range(start + 1, len(otas))]:
        part = slot(index)
        if part is None:
            continue
        result = _load_app(read, part, log)
        if isinstance(result, Image):
            return _app_start(result, part, log, rom_end, app_info)
        tried.append(f"{part.label} at 0x{part.offset:x}: {result}")
        log.e("boot", ("Factory app partition" if index < 0 else f"OTA app partition slot {index}")
              + " is not bootable")
    test = apps.get(0x20)
    if test is not None and isinstance(result := _load_app(read, test, log), Image):
        log.esp("W", "boot", "Falling back to test app as last resort")
        return _app_start(result, test, log, rom_end, app_info)
    log.e("boot", "No bootable app partitions in the partition table")
    return failed("bootloader: no bootable app partition" + (f" ({'; '.join(tried)})" if tried else ""))


def _selected_index(read: Read, parts: list[Partition], n_otas: int, have_factory: bool,
                    log: _Log) -> int:
    """bootloader_utility_get_selected_boot_partition: -1 = factory, n = ota_n."""
    otadata = next((p for p in parts if (p.type, p.subtype) == (0x01, 0x00)), None)
    if otadata is None:
        return -1
    entries = [OTA_SELECT.unpack(read(otadata.offset + k * 0x1000, OTA_SELECT.size)) for k in (0, 1)]
    invalid = [seq == 0xFFFFFFFF or state in (3, 4) for seq, state, _ in entries]  # INVALID, ABORTED
    if all(invalid) or not n_otas:
        log.i("boot", "Defaulting to factory image" if have_factory else "No factory image, trying OTA 0")
        return -1 if have_factory else 0
    valid = [seq for (seq, _, crc), bad in zip(entries, invalid)
             if not bad and crc == zlib.crc32(struct.pack("<I", seq), 0xFFFFFFFF)]
    if not valid:
        log.e("boot", "ota data partition invalid, falling back to factory")
        return -1
    return (max(valid) - 1) % n_otas


def _load_app(read: Read, part: Partition, log: _Log) -> Image | ImageError:
    try:
        image = read_image(read, part.offset, verify=True, max_size=part.size)
        err = None
    except ImageError as exc:
        image, err = None, exc
    for n, s in enumerate(image.segments if image else err.segments):
        log.i("esp_image", f"segment {n}: paddr={part.offset + s.offset:08x} vaddr={s.addr:08x} "
                           f"size={s.size:05x}h ({s.size:6d}) {'map' if s.mapped else 'load'}",
              3 + s.size // 3600)
    if err is not None:
        log.e(*(err.idf or ("esp_image", str(err))))
        return err
    return image


def _app_start(image: Image, part: Partition, log: _Log, rom_end: int, app_info: bool) -> Booted:
    app = image.app or AppDescriptor("", "", "", "", "")
    log.i("boot", f"Loaded app from partition at offset 0x{part.offset:x}")
    log.i("boot", "Disabling RNG early entropy source...", 1)
    if app_info:
        new = _idf_at_least(app.idf_ver, 5, 1)
        tag, rev_tag = ("app_init", "efuse_init") if new else ("cpu_start", "cpu_start")
        v = lambda r: f"v{r // 100}.{r % 100}"
        log.i("cpu_start", "Pro cpu up.", 12)
        log.i("cpu_start", "Pro cpu start user code", 9)
        log.i("cpu_start", "cpu freq: 120000000 Hz", 0)
        for text in ("Application information:", f"Project name:     {app.project_name}",
                     f"App version:      {app.version}", f"Compile time:     {app.date} {app.time}",
                     f"ELF file SHA256:  {app.elf_sha256.hex()[:16]}...",
                     f"ESP-IDF:          {app.idf_ver}"):
            log.i(tag, text, 5)
        for text in (f"Min chip rev:     {v(image.min_rev_full)}",
                     f"Max chip rev:     {v(image.max_rev_full)} ",
                     f"Chip rev:         {v(CHIP_REV_FULL)}"):
            log.i(rev_tag, text, 5)
        log.i("heap_init", "Initializing. RAM available for dynamic allocation:", 5)
        log.i("heap_init", "At 3FCA9E40 len 000322D0 (200 KiB): D/IRAM", 7)
        log.i("heap_init", "At 3FCDC110 len 00002950 (10 KiB): STACK/DIRAM", 6)
        log.i("spi_flash", "detected chip: generic", 7)
        log.i("spi_flash", f"flash io: {FLASH_MODES[image.flash_mode & 3].lower()}")
        log.i("cpu_start", "Starting scheduler.", 4)
    if app.project_name == "esp-at":
        log.raw("at param mode: 1", "AT cmd port:uart1 tx:7 rx:6 cts:5 rts:4 baudrate:115200",
                "module_name: ESP32C2-4MB", "max tx power=78, ret=0", app.version)
    return Booted(app, log.bytes(), part, rom_end)
