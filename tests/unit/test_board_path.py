"""The board path end to end, against the model as a board: flashing through EspSerial and the
real esptool over RFC 2217 (DTR/RTS into the model's auto-reset circuit), the reset line
recovering a device stuck in data mode, a panic on UART0 failing its test, and pytest-embedded's
board options refused with one line."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.model_process import ModelProcess
from sim.image_build import build_factory_image, write_build_dir

ROOT = Path(__file__).resolve().parents[2]
VERSION = "v4.1.0.0-suite-flash-test"
ONE_TEST = "tests/conformance/test_wscfg.py::test_doc_example_is_accepted_to_the_byte"
pytestmark = pytest.mark.timeout(240)


def run_suite(*args: str, timeout: float = 200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def esptool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32c2", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture
def blank_board(tmp_path):
    """A model board whose flash file starts erased: it boots nothing until flashed."""
    model = ModelProcess(log_path=tmp_path / "model.log", flash=tmp_path / "flash.bin")
    model.start()
    yield model
    model.stop()


def board_args(model: ModelProcess) -> list[str]:
    return ["--at-port", model.url, "--port", model.uart0_url, "--target", "esp32c2"]


def test_flash_image_is_written_verified_booted_and_skipped_the_second_time(tmp_path, blank_board):
    image = tmp_path / "factory_ESP32C2-4MB.bin"
    image.write_bytes(build_factory_image(VERSION))
    first = run_suite(ONE_TEST, *board_args(blank_board), "--flash-image", str(image))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert f"flashed {image}" in first.stdout and VERSION in first.stdout, first.stdout[-2000:]

    second = run_suite(ONE_TEST, *board_args(blank_board), "--flash-image", str(image))
    assert second.returncode == 0, second.stdout[-3000:]
    assert "the chip already holds it" in second.stdout, second.stdout[-2000:]

    # Read back through the ROM loader, by esptool on its own: byte-identical.
    blank_board.stop()
    model = ModelProcess(log_path=tmp_path / "model2.log", flash=tmp_path / "flash.bin")
    model.start()
    try:
        back = tmp_path / "back.bin"
        read = esptool("--port", model.uart0_url, "read-flash", "0", str(image.stat().st_size),
                       str(back))
        assert read.returncode == 0, read.stdout + read.stderr
        assert back.read_bytes() == image.read_bytes()
    finally:
        model.stop()


def test_app_path_flashes_a_build_directory(tmp_path, blank_board):
    build = write_build_dir(tmp_path / "esp-at" / "build", VERSION)
    result = run_suite(ONE_TEST, *board_args(blank_board), "--app-path", str(build.parent))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert VERSION in result.stdout


def test_reset_line_recovers_a_device_stuck_in_data_mode():
    result = run_suite("tests/unit/probes/probe_board.py")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout


def test_a_panic_on_uart0_fails_the_test_with_the_excerpt():
    result = run_suite("tests/conformance/test_wssend.py", "-k", "lost_during_a_send",
                       "--model-defect", "reboot-on-send-disrupted")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "DEVICE FAULT on UART0" in result.stdout, result.stdout[-3000:]
    assert "Guru Meditation Error" in result.stdout


@pytest.mark.parametrize("problem", ["wrong-chip image", "missing image", "unreachable AT port",
                                     "unreachable UART0"])
def test_board_problems_stop_the_session_with_one_line(tmp_path, problem):
    import socket
    image = tmp_path / "factory.bin"
    unreachable = ["--at-port", "socket://127.0.0.1:9", "--port", "rfc2217://127.0.0.1:9"]
    listening = socket.create_server(("127.0.0.1", 0))     # an AT port that is there
    if problem == "wrong-chip image":
        image.write_bytes(build_factory_image(VERSION, chip_id=0))
        args, says = [*unreachable, "--flash-image", str(image)], "is built for ESP32, not ESP32-C2"
    elif problem == "missing image":
        args, says = [*unreachable, "--flash-image", str(image)], "no such file"
    elif problem == "unreachable AT port":
        args, says = unreachable, "--at-port socket://127.0.0.1:9: nothing answers there"
    else:
        args = ["--at-port", f"socket://127.0.0.1:{listening.getsockname()[1]}",
                "--port", "rfc2217://127.0.0.1:9"]
        says = "--port (UART0) rfc2217://127.0.0.1:9: nothing answers there"
    try:
        result = run_suite("tests/conformance", *args, timeout=60)
    finally:
        listening.close()
    output = result.stdout + result.stderr
    assert result.returncode in (2, 4), output[-2000:]   # interrupted / usage error: not "failed"
    assert output.count(says) == 1, f"{says!r} should be said once:\n{output[-3000:]}"
    assert " passed" not in result.stdout and " failed" not in result.stdout, output[-2000:]


def test_a_chip_that_is_not_an_esp32c2_stops_the_session(tmp_path, blank_board):
    image = tmp_path / "factory.bin"
    image.write_bytes(build_factory_image(VERSION))
    result = run_suite(ONE_TEST, "--at-port", blank_board.url, "--port", blank_board.uart0_url,
                       "--target", "esp32c3", "--flash-image", str(image))
    assert result.returncode == 4
    assert "use --target esp32c2" in result.stderr + result.stdout
