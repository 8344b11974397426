"""Unit tests of the ESP32-C2 download mode model (sim/flash.py, sim/rom/): SLIP, the loader fed
byte streams, and the real, unmodified esptool talking to it over socket:// (a TCP server in a
thread feeds DownloadMode and writes its Send bytes back; esptool runs in-process)."""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import esptool
from sim.flash import Flash
from sim.rom import DownloadMode, Reset, RunApp, Send, SetBaud, SlipDecoder, slip_encode
from sim.rom.chip import CHIP_DETECT_MAGIC, CHIP_DETECT_MAGIC_REG, UART0_CLKDIV
from sim.rom.loader import OHAI, ROM_SYNC_VALUE, SYNC_PAYLOAD, Op, checksum

ROOT = Path(__file__).resolve().parents[2]
MAC = bytes.fromhex("7cdfa1123456")
KIB = 1024


# ---- the host side of the protocol, by hand ----------------------------------------------------

def request(op: int, data: bytes = b"", chk: int = 0) -> bytes:
    return slip_encode(struct.pack("<BBHI", 0, op, len(data), chk) + data)


def data_block(op: int, seq: int, data: bytes, chk: int | None = None) -> bytes:
    payload = struct.pack("<IIII", len(data), seq, 0, 0) + data
    return request(op, payload, checksum(data) if chk is None else chk)


@dataclass(frozen=True)
class Response:
    op: int
    value: int
    data: bytes     # the status bytes included


def responses(actions: list) -> list[Response]:
    frames = SlipDecoder().feed(b"".join(a.data for a in actions if isinstance(a, Send)))
    out = []
    for f in frames:
        direction, op, size, value = struct.unpack_from("<BBHI", f)
        assert direction == 1 and size == len(f) - 8, f
        out.append(Response(op, value, f[8:]))
    return out


def one(actions: list) -> Response:
    (r,) = responses(actions)
    return r


def rom(**kw) -> tuple[DownloadMode, Flash]:
    flash = Flash()
    return DownloadMode(flash, mac=MAC, **kw), flash


def start_stub(mode: DownloadMode) -> list:
    """What esptool's run_stub does, with a dummy blob: load it into IRAM, jump into it."""
    blob = b"\x13\x00\x00\x00" * 64
    mode.feed(request(Op.MEM_BEGIN, struct.pack("<IIII", len(blob), 1, 0x1800, 0x40380000)))
    mode.feed(data_block(Op.MEM_DATA, 0, blob))
    return mode.feed(request(Op.MEM_END, struct.pack("<II", 0, 0x40380010)))


# ---- SLIP --------------------------------------------------------------------------------

def test_slip_encode_escapes_end_and_esc():
    assert slip_encode(b"a\xc0b\xdbc") == b"\xc0a\xdb\xdcb\xdb\xddc\xc0"


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_slip_decoder_frames_whole_and_in_pieces(chunk):
    payloads = [b"\x00\x08", b"\xc0\xdb" * 10, bytes(range(256))]
    stream = b"boot log noise\r\n" + b"".join(slip_encode(p) for p in payloads) + b"\xc0"
    decoder, frames = SlipDecoder(), []
    for i in range(0, len(stream), chunk):
        frames += decoder.feed(stream[i:i + chunk])
    assert frames == payloads


def test_slip_decoder_drops_a_bad_frame_and_keeps_the_next():
    decoder = SlipDecoder(max_frame=8)
    stream = (b"\xc0ab\xdb\x01cd\xc0"           # invalid escape
              + b"\xc0" + b"x" * 9 + b"\xc0"    # too long
              + b"\xc0\xc0ok\xc0"               # an empty frame is only a delimiter
              + b"\xc0\xdb\xc0")                # escape cut by the end
    assert decoder.feed(stream) == [b"ok"]


# ---- the flash --------------------------------------------------------------------------

def test_flash_programs_like_nor_and_erases_to_ff():
    flash = Flash(size=64 * KIB)
    assert flash.flash_id == 0x204010 and flash.size == 64 * KIB
    flash.write(0x100, b"\x0f\xf0")
    flash.write(0x100, b"\x3c\x3c")                 # without an erase: old AND new
    assert flash.read(0x100, 2) == b"\x0c\x30"
    flash.erase(0x100, 2)
    assert flash.read(0xFF, 4) == b"\xff" * 4
    assert flash.md5(0, 16) == hashlib.md5(b"\xff" * 16).digest()


@pytest.mark.parametrize("call", [lambda f: f.read(0x3FFFFF, 2), lambda f: f.write(-1, b"x"),
                                  lambda f: f.erase(0x400000, 1), lambda f: f.md5(0, 0x400001)])
def test_flash_refuses_access_outside_it(call):
    with pytest.raises(ValueError, match="outside the 0x400000-byte flash"):
        call(Flash())


def test_file_backed_flash_keeps_its_image_across_objects(tmp_path):
    path = tmp_path / "flash.bin"
    with Flash(path) as first:
        assert path.stat().st_size == 4 << 20
        first.write(0x1000, b"kept")
        assert path.read_bytes()[0x1000:0x1004] == b"kept"     # written through, as another reader sees it
    with Flash(path) as second:
        assert second.read(0x1000, 4) == b"kept"
        assert second.read(0, 4) == b"\xff" * 4
    with pytest.raises(ValueError, match="holds 4194304 bytes"):
        Flash(path, size=2 << 20)


# ---- the loader, fed by hand ------------------------------------------------------------------

def test_rom_answers_sync_eight_times_with_a_nonzero_value():
    mode, _ = rom()
    sync = request(Op.SYNC, SYNC_PAYLOAD)
    expected = slip_encode(struct.pack("<BBHI", 1, Op.SYNC, 4, ROM_SYNC_VALUE) + bytes(4)) * 8
    assert mode.feed(sync) == [Send(expected)]
    actions = []
    for byte in sync:
        actions += mode.feed(bytes([byte]))
    assert b"".join(a.data for a in actions) == expected


def test_rom_reads_registers_and_unknown_ones_read_zero():
    mode, _ = rom(crystal_mhz=26)
    assert one(mode.feed(request(Op.READ_REG, struct.pack("<I", CHIP_DETECT_MAGIC_REG)))).value \
        == CHIP_DETECT_MAGIC
    assert one(mode.feed(request(Op.READ_REG, struct.pack("<I", 0x600FF000)))).value == 0
    assert one(mode.feed(request(Op.READ_REG, struct.pack("<I", UART0_CLKDIV)))).value \
        == 26_000_000 // 115200


@pytest.mark.parametrize("stub, bad_checksum, unknown, bad_length", [
    (False, b"\x01\x07\x00\x00", b"\x01\x05\x00\x00", b"\x01\x05\x00\x00"),
    (True, b"\xc1\x00", b"\xc3\x00", b"\xc0\x00"),
])
def test_errors_in_each_dialect(stub, bad_checksum, unknown, bad_length):
    mode, flash = rom()
    if stub:
        start_stub(mode)
        assert mode.state == "stub"
    mode.feed(request(Op.SPI_ATTACH, bytes(4 if stub else 8)))
    mode.feed(request(Op.FLASH_BEGIN, struct.pack("<IIIII", 4096, 1, 1024, 0, 0)))
    assert one(mode.feed(data_block(Op.FLASH_DATA, 0, b"\x00" * 1024, chk=0x42))).data == bad_checksum
    assert flash.read(0, 4) == b"\xff" * 4
    assert one(mode.feed(request(0x7E))).data == unknown
    frame = struct.pack("<BBHI", 0, Op.READ_REG, 9, 0) + bytes(4)        # size says 9, 4 follow
    assert one(mode.feed(slip_encode(frame))).data == bad_length


def test_rom_refuses_flash_access_before_spi_attach_and_past_its_flash_size():
    mode, _ = rom()
    md5 = request(Op.SPI_FLASH_MD5, struct.pack("<IIII", 0, 16, 0, 0))
    assert one(mode.feed(md5)).data == b"\x01\x09\x00\x00"
    mode.feed(request(Op.SPI_ATTACH, bytes(8)))
    assert one(mode.feed(md5)).data == hashlib.md5(b"\xff" * 16).hexdigest().encode() + bytes(4)
    beyond_2mb = request(Op.SPI_FLASH_MD5, struct.pack("<IIII", 2 << 20, 16, 0, 0))
    assert one(mode.feed(beyond_2mb)).data[-4:] == b"\x01\x09\x00\x00"      # ROM default: 2 MB
    mode.feed(request(Op.SPI_SET_PARAMS, struct.pack("<6I", 0, 4 << 20, 0x10000, 0x1000, 256, 0xFFFF)))
    assert one(mode.feed(beyond_2mb)).data[-4:] == bytes(4)


def test_garbage_is_ignored_and_the_rom_still_syncs():
    mode, _ = rom()
    noise = bytes(random.Random(7).randrange(256) for _ in range(4096)).replace(b"\xc0", b"")
    assert mode.feed(noise) == []
    assert mode.feed(slip_encode(b"\x00\x08")) == []                       # shorter than a header
    assert mode.feed(slip_encode(struct.pack("<BBHI", 1, 8, 0, 0))) == []  # a response, not a request
    assert len(responses(mode.feed(request(Op.SYNC, SYNC_PAYLOAD)))) == 8


def test_change_baudrate_answers_at_the_old_rate_then_switches():
    mode, _ = rom(crystal_mhz=26)
    # esptool asks a 26 MHz ROM for baud * 40 / 26 (the ROM assumes 40 MHz): the line runs at baud.
    actions = mode.feed(request(Op.CHANGE_BAUDRATE, struct.pack("<II", 460800 * 40 // 26, 0)))
    assert isinstance(actions[0], Send) and actions[1:] == [SetBaud(460800)]
    assert mode.baud == 460800


def test_mem_end_runs_the_stub_which_says_ohai_and_speaks_its_dialect():
    mode, _ = rom()
    (answer, greeting) = SlipDecoder().feed(b"".join(a.data for a in start_stub(mode)))
    assert answer == struct.pack("<BBHI", 1, Op.MEM_END, 4, 0) + bytes(4) and greeting == OHAI
    sync = responses(mode.feed(request(Op.SYNC, SYNC_PAYLOAD)))
    assert [(r.value, r.data) for r in sync] == [(0, b"\x00\x00")] * 8


def test_stub_read_flash_streams_packets_on_acks_then_the_md5():
    mode, flash = rom()
    start_stub(mode)
    flash.write(0x2000, bytes(range(256)) * 40)
    actions = mode.feed(request(Op.READ_FLASH, struct.pack("<IIII", 0x2000, 10000, 4096, 64)))
    frames = SlipDecoder().feed(b"".join(a.data for a in actions))
    assert frames[0][:2] == b"\x01\xd2" and frames[1] == flash.read(0x2000, 4096)
    got = frames[1]
    while True:
        (frame,) = SlipDecoder().feed(mode.feed(slip_encode(struct.pack("<I", len(got))))[0].data)
        if len(got) == 10000:
            assert frame == hashlib.md5(got).digest()
            break
        got += frame
    assert got == flash.read(0x2000, 10000)


def test_stub_reports_a_write_failure_on_the_next_command():
    mode, _ = rom()
    start_stub(mode)
    mode.feed(request(Op.FLASH_DEFL_BEGIN, struct.pack("<IIIII", 4096, 1, 0x4000, 0x1000, 0)))
    assert one(mode.feed(data_block(Op.FLASH_DEFL_DATA, 0, b"not zlib"))).data == b"\x00\x00"
    assert one(mode.feed(request(Op.READ_REG, struct.pack("<I", 0)))).data == b"\xc7\x00"


def test_flash_end_run_user_code_leaves_download_mode():
    mode, _ = rom()
    actions = mode.feed(request(Op.FLASH_END, struct.pack("<I", 1)))
    assert isinstance(actions[0], Send) and actions[1:] == [RunApp()]
    assert mode.state == "left" and mode.feed(request(Op.SYNC, SYNC_PAYLOAD)) == []
    mode.reset()
    assert mode.state == "rom" and len(responses(mode.feed(request(Op.SYNC, SYNC_PAYLOAD)))) == 8


# ---- the real esptool ----------------------------------------------------------------------

class Uart0Server:
    """DownloadMode on a TCP port for pyserial's socket://, one host connection at a time."""

    def __init__(self, mode: DownloadMode) -> None:
        self.mode = mode
        self.actions: list = []       # everything but Send, in order
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with conn:
                while data := conn.recv(65536):
                    for action in self.mode.feed(data):
                        if isinstance(action, Send):
                            conn.sendall(action.data)
                        else:
                            self.actions.append(action)

    def close(self) -> None:
        self._listener.close()


@dataclass
class Board:
    flash: Flash
    mode: DownloadMode
    server: Uart0Server

    def esptool(self, *args: str, chip: str = "esp32c2", after: str = "no-reset") -> str:
        """Run esptool in-process; its output (a FatalError propagates)."""
        out = io.StringIO()
        argv = ["--port", self.server.url, "--chip", chip, "--before", "no-reset", "--after", after,
                *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            esptool.main(argv)
        return out.getvalue()


def make_board(flash: Flash | None = None, **kw) -> Board:
    flash = flash or Flash()
    mode = DownloadMode(flash, mac=MAC, **kw)
    return Board(flash, mode, Uart0Server(mode))


@pytest.fixture
def board() -> Iterator[Board]:
    b = make_board()
    yield b
    b.server.close()


def image(size: int, seed: int = 1) -> bytes:
    """Compressible (esptool writes what does not compress uncompressed), with SLIP's special
    bytes, and not starting with 0xE9 (esptool would take it for an app image)."""
    rng = random.Random(seed)
    return bytes(rng.choice(b"\x00\x01\xffesp32\xc0\xdb") for _ in range(size))


@pytest.fixture
def image_file(tmp_path) -> tuple[Path, bytes]:
    data = image(64 * KIB)
    path = tmp_path / "image.bin"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("chip", ["esp32c2", "auto"])
@pytest.mark.parametrize("stub", [True, False])
def test_esptool_detects_the_c2_and_reads_the_mac(board, chip, stub):
    no_stub = () if stub else ("--no-stub",)
    out = board.esptool(*no_stub, "read-mac", chip=chip)
    assert "Connected to ESP32-C2" in out and "Chip type:          ESP32-C2 (revision v1.0)" in out
    assert "Crystal frequency:  40MHz" in out
    assert out.count("MAC:                7c:df:a1:12:34:56") == 2
    assert ("Stub flasher running." in out) == stub
    assert board.mode.state == ("stub" if stub else "rom")


def test_esptool_chip_id_falls_back_to_the_mac_and_sees_a_26mhz_crystal():
    b = make_board(crystal_mhz=26)
    out = b.esptool("--no-stub", "chip-id")
    assert "Crystal frequency:  26MHz" in out and "has no chip ID. Reading MAC address" in out
    assert "7c:df:a1:12:34:56" in out
    b.server.close()


def test_esptool_flash_id(board):
    out = board.esptool("flash-id")
    assert "Manufacturer: 20" in out and "Device: 4016" in out and "Detected flash size: 4MB" in out


@pytest.mark.parametrize("options", [(), ("--no-compress",), ("--no-stub",),
                                     ("--no-stub", "--compress")])
def test_esptool_write_flash_and_its_md5_check(board, image_file, options):
    path, data = image_file
    board.flash.write(0x3000, b"\x00" * 16)        # stale data inside: must be erased first
    no_stub = ("--no-stub",) if "--no-stub" in options else ()
    write = [o for o in options if o != "--no-stub"]
    out = board.esptool(*no_stub, "write-flash", *write, "0x0", str(path))
    assert "Hash of data verified." in out
    assert ("compressed)" in out) == (write != ["--no-compress"] and (not no_stub or write == ["--compress"]))
    assert board.flash.read(0, len(data)) == data
    assert board.flash.read(len(data), 16) == b"\xff" * 16
    assert "Verification successful (digest matched)." in board.esptool(*no_stub, "verify-flash", "0x0",
                                                                         str(path))


def test_esptool_verify_flash_fails_on_a_different_image(board, image_file):
    path, _ = image_file
    with pytest.raises(esptool.FatalError, match="Verification failed"):
        board.esptool("--no-stub", "verify-flash", "0x0", str(path))


@pytest.mark.parametrize("stub, size", [(True, 64 * KIB), (False, 4 * KIB)])
def test_esptool_read_flash_back_byte_identical(board, tmp_path, stub, size):
    data = image(size, seed=3)
    board.flash.write(0x40000, data)
    out_path = tmp_path / "read.bin"
    board.esptool(*(() if stub else ("--no-stub",)), "read-flash", "0x40000", str(size), str(out_path))
    assert out_path.read_bytes() == data


@pytest.mark.parametrize("stub", [True, False])
def test_esptool_erase_region(board, stub):
    board.flash.write(0, b"\x00" * 0x4000)
    board.esptool(*(() if stub else ("--no-stub",)), "erase-region", "0x1000", "0x2000")
    assert board.flash.read(0x1000, 0x2000) == b"\xff" * 0x2000
    assert board.flash.read(0, 0x1000) == bytes(0x1000) and board.flash.read(0x3000, 0x1000) == bytes(0x1000)


def test_esptool_erase_flash_with_the_stub_and_its_refusal_without(board):
    board.flash.write(0x3FF000, b"\x00" * 16)
    with pytest.raises(esptool.util.NotImplementedInROMError, match="ROM does not support function erase_flash"):
        board.esptool("--no-stub", "erase-flash")
    assert board.flash.read(0x3FF000, 1) == b"\x00"
    assert "Flash memory erased successfully" in board.esptool("erase-flash")
    assert board.flash.read(0x3FF000, 16) == b"\xff" * 16


@pytest.mark.parametrize("stub", [True, False])
def test_esptool_baud_460800_changes_the_rate_after_the_answer(board, stub):
    out = board.esptool(*(() if stub else ("--no-stub",)), "--baud", "460800", "flash-id")
    assert "Changing baud rate to 460800" in out and "Device: 4016" in out
    assert board.server.actions == [SetBaud(460800)]


def test_esptool_writes_a_whole_4mb_image_compressed(board, tmp_path):
    data = bytearray(b"\xff" * (4 << 20))
    data[0:0x1000] = image(0x1000, seed=5)
    data[0x3FF000:0x400000] = image(0x1000, seed=6)
    path = tmp_path / "whole.bin"
    path.write_bytes(data)
    out = board.esptool("write-flash", "0x0", str(path))
    assert "Wrote 4194304 bytes" in out and "Hash of data verified." in out
    assert board.flash.md5(0, 4 << 20) == hashlib.md5(data).digest()


def test_esptool_to_a_file_backed_flash_and_a_second_session_finds_the_stub(tmp_path, image_file):
    path, data = image_file
    flash_path = tmp_path / "flash.bin"
    b = make_board(Flash(flash_path))
    b.esptool("write-flash", "0x10000", str(path))
    out = b.esptool("verify-flash", "0x10000", str(path))    # the stub stayed: --after no-reset
    assert "Stub flasher is already running. No upload is necessary." in out
    assert "Verification successful" in out
    b.server.close()
    b.flash.close()
    with Flash(flash_path) as again:
        assert again.read(0x10000, len(data)) == data


def test_esptool_after_soft_reset_runs_the_app_and_watchdog_reset_resets(board):
    board.esptool("--no-stub", "chip-id", after="soft-reset")
    assert board.server.actions == [RunApp()] and board.mode.state == "left"
    board.mode.reset()
    out = board.esptool("chip-id", after="watchdog-reset")
    assert "Hard resetting with a watchdog" in out
    assert board.server.actions[1:] == [Reset(straps_latched=True)] and board.mode.state == "rom"


def test_esptool_cli_in_its_own_process(board):
    result = subprocess.run([sys.executable, "-m", "esptool", "--port", board.server.url, "--chip",
                             "auto", "--before", "no-reset", "--after", "no-reset", "--no-stub",
                             "flash-id"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Detecting chip type... ESP32-C2" in result.stdout and "Device: 4016" in result.stdout



def test_rom_flash_end_reboot_is_a_software_reset_back_into_download_mode():
    mode, _ = rom()
    mode.feed(request(Op.CHANGE_BAUDRATE, struct.pack("<II", 921600, 0)))
    start_stub(mode)
    mode.reset()                                       # EN: the stub is gone
    mode.feed(request(Op.CHANGE_BAUDRATE, struct.pack("<II", 921600, 0)))
    actions = mode.feed(request(Op.FLASH_END, struct.pack("<I", 0)) + request(Op.SYNC, SYNC_PAYLOAD))
    assert one(actions[:1]).data == bytes(4)
    assert actions[1:] == [SetBaud(115200), Reset(straps_latched=False)]   # the SYNC was lost
    assert mode.state == "rom" and mode.baud == 115200


def test_every_op_of_each_dialect_has_its_method():
    from sim.rom.loader import RomLoader, StubLoader
    for dialect in (RomLoader, StubLoader):
        assert all(callable(getattr(dialect, name, None)) for name in dialect.COMMANDS.values())
