"""Run only by tests/unit/test_board_path.py (its name keeps it out of normal collection): the
first test leaves the device in AT+WSSEND's data mode, where AT+RST is taken as payload; the
second must start clean, after the harness reset the board through UART0's reset line."""
import pytest

from esp_at.errors import DeviceViolation
from fixtures.links import open_link

LENGTH = 1000                    # the device waits for this many bytes that never come


def test_leaves_the_device_in_data_mode(at, ws_endpoint):
    open_link(at, 0, ws_endpoint.url)
    with pytest.raises(DeviceViolation):     # the prompt came, the rest of the data never does
        at.send_data(f"AT+WSSEND=0,{LENGTH}", b"partial", send_timeout=0.5)


def test_next_test_starts_clean(at, device_under_test):
    assert at.cmd("AT", timeout=1.0).ok
    assert at.cmd("AT+WSOPEN?").expect(b"OK").lines == []
    log = device_under_test.uart0.text_since(0)     # read from after the board's power-on boot
    assert log.count("rst:0x1 (POWERON)") == 1, f"expected one boot through EN (reset line):\n{log}"
    assert "RTC_SW_CPU_RST" not in log, f"AT+RST cannot have worked in data mode:\n{log}"
