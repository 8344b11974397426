"""ESP32-C2 images (sim/image_build.py, sim/image.py): built, checked by esptool itself, parsed,
and booted the way the ROM and the 2nd-stage bootloader do, with the text they print."""
import hashlib
import json
import re
import subprocess
import sys

import pytest

from sim.image import (AppDescriptor, Booted, BootFailed, ImageError, Partition, boot,
                       download_banner, flash_reader, panic_log, parse_app_descriptor, parse_image,
                       parse_partition_table, read_image)
from sim.image_build import (APP_OFFSET, AT_CUSTOMIZE_PARTITIONS, ESP_AT_PARTITIONS,
                             build_app_image, build_bootloader_image, build_factory_image,
                             build_ota_data, build_partition_table, flash_files, write_build_dir)

VERSION = "v4.1.0.0-sim"
OTA_1 = 0x230000


@pytest.fixture(scope="module")
def factory() -> bytes:
    return build_factory_image(VERSION)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return write_build_dir(tmp_path_factory.mktemp("build"), VERSION)


def with_bytes(flash: bytes, offset: int, data: bytes) -> bytes:
    out = bytearray(flash.ljust(offset + len(data), b"\xff"))
    out[offset:offset + len(data)] = data
    return bytes(out)


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def boot_of(flash: bytes):
    result = boot(flash_reader(flash))
    text = result.log.decode()
    assert "\n" not in text.replace("\r\n", ""), "every line ends in CRLF"
    return result, text


def test_build_parse_round_trip():
    app = build_app_image(VERSION)
    assert parse_app_descriptor(app) == AppDescriptor(
        VERSION, "esp-at", "16:39:55", "Jun 19 2024", "v5.0.4", 0,
        hashlib.sha256(f"esp-at.elf {VERSION}".encode()).digest())   # what the build wrote
    image = parse_image(app)
    assert image.chip_id == 12 and image.hash_appended and image.size == len(app)
    assert [hex(s.addr) for s in image.segments if s.mapped] == ["0x3c010020", "0x42000020"]
    assert all((APP_OFFSET + s.offset) % 0x10000 == s.addr % 0x10000 for s in image.segments if s.mapped)
    assert parse_image(build_bootloader_image()).bootloader_desc == ("v5.0.4", "Jun 19 2024 16:39:55")
    assert parse_partition_table(build_partition_table()) == list(ESP_AT_PARTITIONS)
    assert parse_partition_table(build_partition_table(AT_CUSTOMIZE_PARTITIONS, md5=False)) == \
        list(AT_CUSTOMIZE_PARTITIONS)


def test_image_errors_say_what_is_wrong():
    app = build_app_image(VERSION)
    with pytest.raises(ImageError, match=r"image is for chip id 0 \(ESP32\), not ESP32-C2 \(12\)"):
        parse_image(build_app_image(VERSION, chip_id=0))
    with pytest.raises(ImageError, match="invalid magic byte 0xff at 0x0, not 0xe9 .erased flash"):
        parse_image(b"\xff" * 64)
    with pytest.raises(ImageError, match="checksum failed: calculated 0x.., stored 0x") as err:
        parse_image(flip(app, 0x100))                       # in the DROM segment's data
    assert err.value.kind == "checksum"
    with pytest.raises(ImageError, match="SHA-256 mismatch at 0x0: calculated [0-9a-f]{64}, stored"):
        parse_image(flip(app, 4))                           # the entry point: not in the checksum
    with pytest.raises(ImageError, match="truncated"):
        parse_image(app[:-100])
    table = bytearray(build_partition_table())
    table[len(ESP_AT_PARTITIONS) * 32 + 20] ^= 0xFF
    with pytest.raises(ImageError, match="MD5 mismatch"):
        parse_partition_table(bytes(table))
    with pytest.raises(ImageError, match="entry 0 has magic 0x0000"):
        parse_partition_table(bytes(32))
    with pytest.raises(ValueError, match="does not fit a char.32."):
        build_app_image("v" * 32)


@pytest.mark.parametrize("name, expect", [
    ("bootloader/bootloader.bin", ["Bootloader Information", "ESP-IDF: v5.0.4", "Segments: 3"]),
    ("esp-at.bin", ["Application Information", "Project name: esp-at", f"App version: {VERSION}",
                    "ESP-IDF: v5.0.4", "Segments: 5"]),
])
def test_esptool_accepts_the_images(build_dir, name, expect):
    out = subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32c2", "image-info",
                          str(build_dir / name)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for line in ["Chip ID: 12 (ESP32-C2)", "Minimal chip revision: v1.0", "Flash size: 4MB",
                 "Flash freq: 60m", "Flash mode: DIO", *expect]:
        assert line in text, (line, text)
    assert re.search(r"Checksum: 0x[0-9a-f]{2} \(valid\)", text), text
    assert re.search(r"Validation hash: [0-9a-f]{64} \(valid\)", text), text
    assert "warning" not in (text + out.stderr).lower()


def test_build_dir_is_what_pytest_embedded_idf_reads(build_dir):
    args = json.loads((build_dir / "flasher_args.json").read_text())
    files = {int(offset, 0): rel for offset, rel in args["flash_files"].items()}
    assert files == {0x0: "bootloader/bootloader.bin", 0x8000: "partition_table/partition-table.bin",
                     0xD000: "ota_data_initial.bin", 0x1E000: "at_customize.bin",
                     0x60000: "esp-at.bin"}
    for key, offset in [("bootloader", 0x0), ("app", APP_OFFSET), ("partition-table", 0x8000)]:
        assert args[key] == {"offset": hex(offset), "file": files[offset], "encrypted": "false"}
    assert args["extra_esptool_args"] == {"after": "hard_reset", "before": "default_reset",
                                          "stub": True, "chip": "esp32c2"}
    assert args["write_flash_args"] == ["--flash_mode", "dio", "--flash_size", "4MB",
                                        "--flash_freq", "60m"]
    assert args["flash_settings"] == {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "60m"}
    assert json.loads((build_dir / "config" / "sdkconfig.json").read_text())["IDF_TARGET"] == "esp32c2"
    merged = (build_dir / "factory" / "factory_ESP32C2-4MB.bin").read_bytes()
    assert len(merged) == 4 << 20
    for offset, rel in files.items():
        part = (build_dir / rel).read_bytes()
        assert merged[offset:offset + len(part)] == part, rel
    unfilled = (build_dir / "factory" / "factory_ESP32C2-4MB_unfilled.bin").read_bytes()
    assert merged[:len(unfilled)] == unfilled and set(merged[len(unfilled):]) == {0xFF}


def test_merged_image_is_esptools_merge_bin(build_dir, factory):
    import esptool.cmds
    args = json.loads((build_dir / "flasher_args.json").read_text())
    pairs = [(int(o, 0), str(build_dir / rel)) for o, rel in args["flash_files"].items()]
    assert esptool.cmds.merge_bin(pairs, "esp32c2", output=None) == factory
    assert build_factory_image(VERSION, fill=True) == factory.ljust(4 << 20, b"\xff")


def test_good_flash_boots_with_the_rom_and_bootloader_text(factory):
    result, text = boot_of(factory)
    assert isinstance(result, Booted), text
    assert result.app.version == VERSION and result.partition.offset == APP_OFFSET
    rom = result.log[:result.rom_end].decode()
    assert rom.startswith("ESP-ROM:esp8684-api2-20220127\r\nBuild:Jan 27 2022\r\n"
                          "rst:0x1 (POWERON),boot:0xc (SPI_FAST_FLASH_BOOT)\r\nSPIWP:0xee\r\n"
                          "mode:DIO, clock div:1\r\nload:0x3fcd6108,len:0x18b0\r\n")
    assert rom.endswith("entry 0x403ae000\r\n")
    for line in ["boot: ESP-IDF v5.0.4 2nd stage bootloader",
                 "boot:  4 ota_0            OTA app          00 10 00060000 001d0000",
                 "boot: No factory image, trying OTA 0",
                 "esp_image: segment 0: paddr=00060020 vaddr=3c010020 size=02000h (  8192) map",
                 "boot: Loaded app from partition at offset 0x60000",
                 "cpu_start: Project name:     esp-at", f"cpu_start: App version:      {VERSION}",
                 "module_name: ESP32C2-4MB"]:
        assert line in text, line
    stamps = [int(m) for m in re.findall(r"^I \((\d+)\) ", text, re.M)]
    assert stamps == sorted(stamps) and stamps
    assert "App version" not in boot(flash_reader(factory), app_info=False).log.decode()
    assert "\x1b[0;32mI (" in boot(flash_reader(factory), colors=True).log.decode()


def test_reset_reasons_in_the_banner(factory):
    text = boot(flash_reader(factory), reset_reason="panic").log.decode()
    assert "rst:0xc (RTC_SW_CPU_RST),boot:0xc (SPI_FAST_FLASH_BOOT)\r\nSaved PC:0x" in text
    assert "rst:0x3 (RTC_SW_SYS_RST)" in boot(flash_reader(factory), reset_reason="RTC_SW_SYS_RST").log.decode()
    assert "rst:0x1 (POWERON)" in boot(flash_reader(factory), reset_reason="en_pin").log.decode()
    with pytest.raises(ValueError, match="unknown reset reason"):
        boot(flash_reader(factory), reset_reason="EXT")


def test_erased_flash_loops_in_the_rom():
    result, text = boot_of(b"")
    assert isinstance(result, BootFailed) and "invalid header 0xffffffff" in result.reason
    assert text.count("invalid header: 0xffffffff\r\n") == 8 and "boot:" not in text.replace("boot:0xc", "")


def test_wrong_chip_build_stops_in_the_rom():
    result, text = boot_of(build_factory_image(VERSION, chip_id=0))
    assert isinstance(result, BootFailed) and "chip id 0 (ESP32)" in result.reason
    assert "Invalid chip id. Expected 12 read 0. Bootloader for wrong chip?\r\nets_main.c 333\r\n" in text


def test_bootloader_checksum_and_hash_failures_in_the_rom(factory):
    result, text = boot_of(flip(factory, 0x100))            # bootloader DRAM data
    assert isinstance(result, BootFailed)
    assert re.search(r"Checksum failure\. Calculated 0x[0-9a-f]{2} stored 0x[0-9a-f]{2}\r\nets_main\.c", text)
    result, text = boot_of(flip(factory, 4))                # entry point: only the hash sees it
    assert "SHA-256 comparison failed:\r\nCalculated: " in text and "Attempting to boot anyway..." in text
    assert isinstance(result, Booted)                       # as the ROM does without secure boot


def test_wrong_chip_app_is_refused_by_the_bootloader(factory):
    flash = with_bytes(factory, APP_OFFSET, build_app_image(VERSION, chip_id=0))
    result, text = boot_of(flash)
    assert isinstance(result, BootFailed) and "chip id 0 (ESP32), not ESP32-C2 (12)" in result.reason
    assert re.search(r"E \(\d+\) boot_comm: mismatch chip ID, expected 12, found 0\r\n"
                     r"E \(\d+\) boot: OTA app partition slot 0 is not bootable\r\n", text)
    assert "esp_image: image at 0x230000 has invalid magic byte (nothing flashed here?)" in text
    assert text.endswith("boot: No bootable app partitions in the partition table\r\n")
    assert "esp_image: segment" not in text


@pytest.mark.parametrize("where, message", [
    (0x100, r"E \(\d+\) esp_image: Checksum failed\. Calculated 0x[0-9a-f]+ read 0x[0-9a-f]+"),
    (4, r"E \(\d+\) esp_image: Image hash failed - image is corrupt"),
])
def test_corrupt_app_is_refused_by_the_bootloader(factory, where, message):
    result, text = boot_of(flip(factory, APP_OFFSET + where))
    assert isinstance(result, BootFailed), text
    assert re.search(message + r"\r\nE \(\d+\) boot: OTA app partition slot 0 is not bootable", text)
    assert text.count("esp_image: segment") == 5            # read whole before the verdict


def test_missing_app_and_broken_table(factory):
    result, text = boot_of(factory[:APP_OFFSET])
    assert isinstance(result, BootFailed)
    assert "esp_image: image at 0x60000 has invalid magic byte (nothing flashed here?)" in text
    table_end = 0x8000 + 32 * len(ESP_AT_PARTITIONS) + 20
    result, text = boot_of(flip(factory, table_end))
    assert re.search(r"E \(\d+\) flash_parts: Incorrect MD5 checksum\r\nE \(\d+\) boot: Failed to "
                     r"verify partition table\r\nE \(\d+\) boot: load partition table error!\r\n$", text)


def test_otadata_selects_ota_1_and_a_factory_partition_is_the_default(factory):
    flash = with_bytes(with_bytes(factory, OTA_1, build_app_image("v9.9.9.9")), 0xD000, build_ota_data(2))
    result, text = boot_of(flash)
    assert isinstance(result, Booted) and result.app.version == "v9.9.9.9"
    assert "Loaded app from partition at offset 0x230000" in text and "trying OTA 0" not in text
    parts = (Partition("nvs", 1, 2, 0x9000, 0x6000), Partition("otadata", 1, 0, 0xF000, 0x2000),
             Partition("phy_init", 1, 1, 0x11000, 0x1000), Partition("factory", 0, 0, 0x60000, 0x100000))
    result, text = boot_of(with_bytes(factory, 0x8000, build_partition_table(parts)))
    assert isinstance(result, Booted) and "boot: Defaulting to factory image" in text
    assert "boot:  3 factory          factory app      00 00 00060000 00100000" in text


def test_download_and_panic_text():
    assert download_banner() == (b"ESP-ROM:esp8684-api2-20220127\r\nBuild:Jan 27 2022\r\n"
                                 b"rst:0x1 (POWERON),boot:0x4 (DOWNLOAD(UART0))\r\nwaiting for download\r\n")
    text = panic_log().decode()
    assert text.startswith("Guru Meditation Error: Core  0 panic'ed (Load access fault). "
                           "Exception was unhandled.\r\n\r\nCore  0 register dump:\r\nMEPC    : 0x")
    assert "MCAUSE  : 0x00000005" in text and text.endswith("\r\nRebooting...\r\n")


def test_cli_writes_image_and_build_dir(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sim.image_build", "--version", VERSION, "--out",
                          str(tmp_path / "f.bin"), "--build-dir", str(tmp_path / "b")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "f.bin").read_bytes() == build_factory_image(VERSION)
    assert (tmp_path / "b" / "flasher_args.json").is_file()
    assert read_image(flash_reader((tmp_path / "f.bin").read_bytes()), APP_OFFSET).app.version == VERSION
    assert set(flash_files(VERSION)) == {0x0, 0x8000, 0xD000, 0x1E000, 0x60000}
