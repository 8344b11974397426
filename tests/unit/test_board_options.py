"""pytest-embedded's board options and the suite's own: honoured, or refused with one line
before any port is touched; the lab's board map."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.board import load_lab

ROOT = Path(__file__).resolve().parents[2]


def collect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q",
                           "tests/conformance", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize("args, says", [
    (["--target", "esp32"], "--target esp32: this suite tests ESP-AT on the ESP32-C2"),
    (["--embedded-services", "esp"], "--embedded-services is not honoured here"),
    (["--erase-all", "y"], "--erase-all is not honoured here"),
    (["--flash-port", "/dev/ttyUSB0"], "--flash-port is not honoured here"),
    (["--port", "/dev/ttyUSB0"], "give that port with --at-port"),
    (["--flash-image", "x.bin"], "flashes through the board's UART0: give it with --port"),
    (["--flash-image", "/no/such.bin", "--port", "a", "--at-port", "b"], "no such file"),
    (["--app-path", "/no/such", "--port", "a", "--at-port", "b"], "no flasher_args.json"),
    (["--lab", "lab.toml", "--at-port", "x"], "leave out --at-port and --port"),
    (["--lab", "lab.toml", "--lab-board", "nope"], "--lab-board nope: not in lab.toml"),
    (["--lab-board", "c2-desk"], "--lab-board needs --lab"),
])
def test_refused_with_one_line(args, says):
    result = collect(*args)
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stderr.count(says) == 1, result.stderr


def test_target_marker_selects_every_conformance_test():
    everything = collect()
    selected = collect("-m", "esp32c2")
    assert everything.returncode == selected.returncode == 0
    count = lambda result: result.stdout.splitlines()[-1].split(" tests collected")[0]  # noqa: E731
    assert count(everything) == count(selected) and int(count(selected)) > 0


def test_the_checked_in_lab_map_loads():
    boards = load_lab(str(ROOT / "lab.toml"))
    assert [b.name for b in boards] == ["c2-desk", "c2-rack-3"]
    assert boards[1].uart0_port.startswith("rfc2217://")


def test_a_lab_board_for_another_chip_is_refused(tmp_path):
    lab = tmp_path / "lab.toml"
    lab.write_text('[[board]]\nname = "x"\nat_port = "/dev/a"\ntarget = "esp32c3"\n')
    with pytest.raises(pytest.UsageError, match="is an esp32c3"):
        load_lab(str(lab))
