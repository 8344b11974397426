"""Build a small but valid ESP32-C2 flash layout as ESP-AT's build produces it, with no ESP-IDF.

The images follow esptool's format (bin_image.py: ESP32FirmwareImage, which `esptool image-info`
accepts: checksum and SHA-256 valid); the partition tables gen_esp32part.py's (32-byte entries,
then an MD5 entry); the layout ESP-AT's module_config/module_esp32c2_default (partitions_at.csv,
at_customize.csv; sdkconfig.defaults: DIO, 60 MHz, 4 MB). ESP-AT has no factory partition: its app
is ota_0 at 0x60000, booted from an erased otadata ("No factory image, trying OTA 0").
Segment contents are filler; the segments' load addresses and order are those of ESP-AT's
published ESP32-C2 boot log, the flash-mapped ones aligned to the 64 KB MMU page as esptool does.
The bootloader carries an esp_bootloader_desc_t (ESP-IDF v5.3+ has one; v5.0 has not) so that
the model and `esptool image-info` know its IDF version.

    python -m sim.image_build --version v4.1.0.0-sim --out factory.bin [--fill]
                              [--build-dir build] [--chip-id 0]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
import zlib
from pathlib import Path

from sim.image import (APP_DESC, APP_DESC_MAGIC, BOOTLOADER_DESC, BOOTLOADER_DESC_MAGIC,
                       CHECKSUM_SEED, CHIP_ID, DEFAULT_IDF_VER, EXT_HEADER, HEADER, IMAGE_MAGIC,
                       MD5_MAGIC, MMU_PAGE, OTA_SELECT, PARTITION, PARTITION_MAGIC,
                       PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE, SEGMENT_HEADER, Partition)

FLASH_MODE, FLASH_FREQ = "dio", "60m"
FLASH_MODE_BYTE, FLASH_FREQ_NIBBLE = 2, 0xF
FLASH_SIZE_NIBBLES = {1 << 20: 0x0, 2 << 20: 0x1, 4 << 20: 0x2, 8 << 20: 0x3, 16 << 20: 0x4}
WP_PIN_DISABLED = 0xEE
MIN_REV_FULL, MAX_REV_FULL = 100, 199        # v1.0 .. v1.99, ESP-IDF v5.0's ESP32-C2 defaults
BUILD_DATE, BUILD_TIME = "Jun 19 2024", "16:39:55"

ESP_AT_PARTITIONS = (                         # partitions_at.csv
    Partition("otadata", 0x01, 0x00, 0xD000, 0x2000),
    Partition("phy_init", 0x01, 0x01, 0xF000, 0x1000),
    Partition("nvs", 0x01, 0x02, 0x10000, 0xE000),
    Partition("at_customize", 0x40, 0x00, 0x1E000, 0x42000),
    Partition("ota_0", 0x00, 0x10, 0x60000, 0x1D0000),
    Partition("ota_1", 0x00, 0x11, 0x230000, 0x1D0000),
)
AT_CUSTOMIZE_PARTITIONS = (                   # at_customize.csv, ESP-AT's second table at 0x1e000
    Partition("mfg_nvs", 0x01, 0x02, 0x1F000, 0x1F000),
    Partition("fatfs", 0x01, 0x81, 0x47000, 0x19000),
)
APP_OFFSET, OTADATA_OFFSET, AT_CUSTOMIZE_OFFSET = 0x60000, 0xD000, 0x1E000

# Load addresses from ESP-AT's ESP32-C2 boot log; the DROM page follows the IROM one, as the C2's
# one MMU serves both.
BOOTLOADER_SEGMENTS = ((0x3FCD6108, 0x18B0), (0x403AE000, 0x854), (0x403B0000, 0x2724))
BOOTLOADER_ENTRY = 0x403AE000
APP_DROM, APP_DRAM, APP_IRAM, APP_IROM = 0x3C010020, 0x3FCA6010, 0x40380000, 0x42000020
APP_ENTRY = 0x40380080


def _filler(name: str, n: int) -> bytes:
    return hashlib.shake_256(name.encode()).digest(n)


def _cstr(text: str, size: int) -> bytes:
    raw = text.encode("ascii")
    if len(raw) >= size:
        raise ValueError(f"{text!r} does not fit a char[{size}] with its NUL")
    return raw


def _size_freq(flash_size: int) -> int:
    if flash_size not in FLASH_SIZE_NIBBLES:
        raise ValueError(f"flash size 0x{flash_size:x}: one of "
                         f"{', '.join(f'{s >> 20}MB' for s in FLASH_SIZE_NIBBLES)}")
    return FLASH_SIZE_NIBBLES[flash_size] << 4 | FLASH_FREQ_NIBBLE


def _xor(data: bytes, state: int) -> int:
    for byte in data:
        state ^= byte
    return state


def build_image(segments: list[tuple[int, bytes]], entry: int, *, chip_id: int = CHIP_ID,
                flash_size: int = 4 << 20) -> bytes:
    """An ESP image: header, extended header (chip id, revisions, hash appended), segments,
    the XOR checksum in the last byte of a 16-byte block, then the SHA-256 of all that."""
    out = bytearray(HEADER.pack(IMAGE_MAGIC, len(segments), FLASH_MODE_BYTE, _size_freq(flash_size),
                                entry))
    out += EXT_HEADER.pack(WP_PIN_DISABLED, 0, 0, 0, chip_id, MIN_REV_FULL // 100, MIN_REV_FULL,
                           MAX_REV_FULL, 1)
    checksum = CHECKSUM_SEED
    for addr, data in segments:
        out += SEGMENT_HEADER.pack(addr, len(data)) + data
        checksum = _xor(data, checksum)
    out += bytes(15 - len(out) % 16) + bytes([checksum])
    return bytes(out + hashlib.sha256(out).digest())


def build_bootloader_image(*, chip_id: int = CHIP_ID, idf_ver: str = DEFAULT_IDF_VER,
                           flash_size: int = 4 << 20) -> bytes:
    desc = BOOTLOADER_DESC.pack(BOOTLOADER_DESC_MAGIC, 1, _cstr(idf_ver, 32),
                                _cstr(f"{BUILD_DATE} {BUILD_TIME}", 24))
    (dram, dram_len), *iram = BOOTLOADER_SEGMENTS
    segments = [(dram, desc + _filler("bootloader.dram", dram_len - len(desc)))]
    segments += [(addr, _filler(f"bootloader.iram.{addr:x}", n)) for addr, n in iram]
    return build_image(segments, BOOTLOADER_ENTRY, chip_id=chip_id, flash_size=flash_size)


def build_app_image(version: str, *, chip_id: int = CHIP_ID, project_name: str = "esp-at",
                    idf_ver: str = DEFAULT_IDF_VER, date: str = BUILD_DATE, time: str = BUILD_TIME,
                    secure_version: int = 0, flash_size: int = 4 << 20) -> bytes:
    """An app whose first segment (DROM) starts with its esp_app_desc_t, as ESP-IDF links it."""
    elf_sha256 = hashlib.sha256(f"{project_name}.elf {version}".encode()).digest()
    desc = APP_DESC.pack(APP_DESC_MAGIC, secure_version, _cstr(version, 32), _cstr(project_name, 32),
                         _cstr(time, 16), _cstr(date, 16), _cstr(idf_ver, 32), elf_sha256, 0, 0, 0)
    tag = f"{project_name}:{version}"
    drom = desc + _filler(f"{tag}.drom", 0x2000 - len(desc))
    dram = _filler(f"{tag}.dram", 0x400)
    # IRAM fills the first page so that the IROM segment's data starts at 0x10020 = vaddr mod 64K
    iram_start = HEADER.size + EXT_HEADER.size + 3 * SEGMENT_HEADER.size + len(drom) + len(dram)
    iram = _filler(f"{tag}.iram", MMU_PAGE + (APP_IROM % MMU_PAGE) - SEGMENT_HEADER.size - iram_start)
    segments = [(APP_DROM, drom), (APP_DRAM, dram), (APP_IRAM, iram),
                (APP_IROM, _filler(f"{tag}.irom", 0x3000)),
                (APP_IRAM + len(iram), _filler(f"{tag}.iram2", 0x500))]
    return build_image(segments, APP_ENTRY, chip_id=chip_id, flash_size=flash_size)


def build_partition_table(partitions: tuple[Partition, ...] = ESP_AT_PARTITIONS, *,
                          md5: bool = True) -> bytes:
    """gen_esp32part.py's binary: the entries, its MD5 entry (ESP-AT's C2 config turns that off
    with CONFIG_PARTITION_TABLE_MD5=n; gen_esp32part's default writes it), 0xFF to 0xC00."""
    out = b"".join(PARTITION.pack(PARTITION_MAGIC, p.type, p.subtype, p.offset, p.size,
                                  _cstr(p.label, 17)[:16], p.flags) for p in partitions)
    if md5:
        out += MD5_MAGIC + b"\xff" * 14 + hashlib.md5(out).digest()
    return out.ljust(PARTITION_TABLE_SIZE, b"\xff")


def build_ota_data(ota_seq: int | None = None, *, ota_state: int = 0xFFFFFFFF) -> bytes:
    """The otadata partition: erased (ota_data_initial.bin), or selecting ota_((seq-1) % n)."""
    out = bytearray(b"\xff" * 0x2000)
    if ota_seq is not None:
        crc = zlib.crc32(struct.pack("<I", ota_seq), 0xFFFFFFFF)
        entry = OTA_SELECT.pack(ota_seq, ota_state, crc)
        out[:len(entry)] = entry[:4] + b"\xff" * 20 + entry[24:]
    return bytes(out)


def flash_files(version: str, *, chip_id: int = CHIP_ID,
                flash_size: int = 4 << 20) -> dict[int, tuple[str, bytes]]:
    """What ESP-AT flashes, by offset: (path in the build directory, content)."""
    return {
        0x0: ("bootloader/bootloader.bin",
              build_bootloader_image(chip_id=chip_id, flash_size=flash_size)),
        PARTITION_TABLE_OFFSET: ("partition_table/partition-table.bin", build_partition_table()),
        OTADATA_OFFSET: ("ota_data_initial.bin", build_ota_data()),
        AT_CUSTOMIZE_OFFSET: ("at_customize.bin", build_partition_table(AT_CUSTOMIZE_PARTITIONS)),
        APP_OFFSET: ("esp-at.bin", build_app_image(version, chip_id=chip_id, flash_size=flash_size)),
    }


def build_factory_image(version: str, *, flash_size: int = 4 << 20, fill: bool = False,
                        chip_id: int = CHIP_ID) -> bytes:
    """The parts merged at their offsets, 0xFF between: factory_<MODULE>.bin with `fill` (to the
    flash size, as `merge_bin --fill-flash-size`), else factory_<MODULE>_unfilled.bin."""
    files = flash_files(version, chip_id=chip_id, flash_size=flash_size)
    end = max(offset + len(data) for offset, (_, data) in files.items())
    layout_end = max(p.offset + p.size for p in ESP_AT_PARTITIONS)
    if flash_size < layout_end:
        raise ValueError(f"ESP-AT's layout needs 0x{layout_end:x} bytes of flash")
    out = bytearray(b"\xff" * (flash_size if fill else end))
    for offset, (_, data) in files.items():
        out[offset:offset + len(data)] = data
    return bytes(out)


def write_build_dir(path: str | Path, version: str, *, chip_id: int = CHIP_ID,
                    flash_size: int = 4 << 20) -> Path:
    """An ESP-AT-like build directory for pytest-embedded-idf's --app-path and our flasher:
    flasher_args.json, flash_args, config/sdkconfig.json, the parts, factory/ merged images."""
    root = Path(path)
    files = flash_files(version, chip_id=chip_id, flash_size=flash_size)
    for rel, data in files.values():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    size = f"{flash_size >> 20}MB"
    module = f"ESP32C2-{size}"
    (root / "factory").mkdir(exist_ok=True)
    (root / "factory" / f"factory_{module}.bin").write_bytes(
        build_factory_image(version, flash_size=flash_size, fill=True, chip_id=chip_id))
    (root / "factory" / f"factory_{module}_unfilled.bin").write_bytes(
        build_factory_image(version, flash_size=flash_size, chip_id=chip_id))
    entry = lambda offset: {"offset": hex(offset), "file": files[offset][0], "encrypted": "false"}
    args = {
        "write_flash_args": ["--flash_mode", FLASH_MODE, "--flash_size", size,
                             "--flash_freq", FLASH_FREQ],
        "flash_settings": {"flash_mode": FLASH_MODE, "flash_size": size, "flash_freq": FLASH_FREQ},
        "flash_files": {hex(offset): rel for offset, (rel, _) in sorted(files.items())},
        "bootloader": entry(0x0),
        "app": entry(APP_OFFSET),
        "partition-table": entry(PARTITION_TABLE_OFFSET),
        "otadata": entry(OTADATA_OFFSET),
        "at_customize": entry(AT_CUSTOMIZE_OFFSET),
        "extra_esptool_args": {"after": "hard_reset", "before": "default_reset", "stub": True,
                               "chip": "esp32c2"},
    }
    (root / "flasher_args.json").write_text(json.dumps(args, indent=4) + "\n")
    (root / "flash_args").write_text(
        f"--flash_mode {FLASH_MODE} --flash_freq {FLASH_FREQ} --flash_size {size}\n"
        + "".join(f"{hex(offset)} {rel}\n" for offset, (rel, _) in sorted(files.items())))
    (root / "config").mkdir(exist_ok=True)
    (root / "config" / "sdkconfig.json").write_text(json.dumps({
        "IDF_TARGET": "esp32c2", "IDF_FIRMWARE_CHIP_ID": chip_id, "ESPTOOLPY_FLASHMODE": FLASH_MODE,
        "ESPTOOLPY_FLASHFREQ": FLASH_FREQ, "ESPTOOLPY_FLASHSIZE": size,
        "PARTITION_TABLE_OFFSET": PARTITION_TABLE_OFFSET, "APP_PROJECT_VER": version,
        "ESP_CONSOLE_UART_BAUDRATE": 115200, "XTAL_FREQ_26": True}, indent=4) + "\n")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.image_build", description=__doc__.split("\n")[0])
    parser.add_argument("--version", required=True, help="the app version, e.g. v4.1.0.0-sim")
    parser.add_argument("--out", type=Path, help="write the merged factory image here")
    parser.add_argument("--fill", action="store_true", help="pad it with 0xFF to the flash size")
    parser.add_argument("--build-dir", type=Path, help="write an ESP-AT-like build directory here")
    parser.add_argument("--chip-id", type=int, default=CHIP_ID, help="12 = ESP32-C2; 0 = ESP32 ...")
    parser.add_argument("--flash-size", type=lambda s: int(s, 0), default=4 << 20)
    args = parser.parse_args(argv)
    if args.out is None and args.build_dir is None:
        parser.error("give --out, --build-dir or both")
    try:
        if args.out is not None:
            args.out.write_bytes(build_factory_image(args.version, flash_size=args.flash_size,
                                                     fill=args.fill, chip_id=args.chip_id))
            print(args.out)
        if args.build_dir is not None:
            print(write_build_dir(args.build_dir, args.version, chip_id=args.chip_id,
                                  flash_size=args.flash_size))
    except ValueError as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
