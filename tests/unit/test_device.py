"""fixtures/device.py: the session's device checks and the known-state restore, against a
scripted device."""
import pytest

from esp_at.client import AtClient
from fixtures.board import BOARD_OPTIONS, BoardOptions
from fixtures.device import (DeviceGone, SessionStop, configured_links, default_wscfg, Worker,
                             port_for_this_worker)
from fixtures.device_kinds import (Board, BoardWithUart0, FlashedBoard, Model, device_for,
                                   device_kind)
from tests.unit.test_client import ScriptedDevice

pytestmark = pytest.mark.timeout(10)

CMD_LIST = b"".join(b'+CMD:%d,"%s",0,1,1,0\r\n' % (i, name) for i, name in enumerate(
    [b"AT", b"AT+WSCFG", b"AT+WSOPEN", b"AT+WSSEND", b"AT+WSCLOSE"]))


class Options:
    def __init__(self, **values):
        self.values = {"--at-port": "socket://scripted", "--at-baud": 115200, "--profile": "seed",
                       **values}

    def getoption(self, name, default=None):
        return self.values.get(name, default)


@pytest.fixture
def scripted(tmp_path):
    device = ScriptedDevice()
    dut = device_for(Options(), tmp_path)
    dut.client = AtClient.open(device.url)
    dut.url = device.url
    yield device, dut
    dut.client.close()
    device.listener.close()


def test_profile_commands_present(scripted):
    device, dut = scripted
    device.answers[b"AT+CMD?"] = CMD_LIST + b"\r\nOK\r\n"
    dut.resolve_profile()
    assert (dut.profile, dut.profile_reason) == ("seed", "--profile seed")


def test_missing_websocket_command_stops_the_session_with_a_reason(scripted):
    device, dut = scripted
    device.answers[b"AT+CMD?"] = CMD_LIST.replace(b'"AT+WSSEND"', b'"AT+OTHER"') + b"\r\nOK\r\n"
    with pytest.raises(SessionStop, match=r"lacks AT\+WSSEND .*WebSocket command support"):
        dut.resolve_profile()


def test_firmware_without_cmd_listing_is_not_checked(scripted):
    device, dut = scripted
    device.answers[b"AT+CMD?"] = b"\r\nERROR\r\n"
    dut.resolve_profile()
    assert dut.profile == "seed"


def test_restore_closes_listed_links_and_resets_changed_configuration(scripted):
    device, dut = scripted
    device.answers.update({
        b"AT": b"\r\nOK\r\n",
        b"AT+WSOPEN?": b'+WSOPEN:2,3,"ws://h/p"\r\n\r\nOK\r\n',
        b"AT+WSCLOSE=2": b"\r\nOK\r\n",
        b"AT+WSCFG=1,10,120,1024": b"\r\nOK\r\n",
        b"ATE1": b"\r\nOK\r\n",
    })
    dut.client.commands_sent = [b"AT+WSCFG=1,1,1,1", b"ATE0"]
    dut.restore()
    received = bytes(device.received)
    for line in (b"AT+WSCLOSE=2\r\n", b"AT+WSCFG=1,10,120,1024\r\n", b"ATE1\r\n"):
        assert line in received
    assert b"AT+WSCLOSE=0" not in received and b"AT+RST" not in received


def test_silent_device_is_reset_then_waited_for_then_the_session_stops():
    # restore() on a device that never answers: AT+RST is tried, then a bounded wait for it to
    # answer again; without an answer the board case stops the session with one line (a model
    # would be restarted instead).
    import time
    device = ScriptedDevice()
    dut = device_for(Options(), None)
    dut.client = AtClient.open(device.url)
    try:
        dut.sync_timeout = dut.ready_timeout = 0.2
        dut.revival_window = 1.0
        started = time.monotonic()
        with pytest.raises(DeviceGone, match="does not answer: not to AT, not to AT\\+RST, not "
                                             "within 1 s"):
            dut.restore()
        assert time.monotonic() - started < 8
        assert b"AT+RST\r\n" in bytes(device.received)
    finally:
        dut.client.close()
        device.listener.close()


def test_configured_links_and_defaults():
    assert configured_links([b"AT+WSCFG=2,1,1", b"AT+WSCFG=0,5,5,5", b"AT+WSCFG=9,1,1",
                             b"AT+WSOPEN=1,\"x\""]) == [0, 2]
    assert default_wscfg(1) == "AT+WSCFG=1,10,120,1024"


def test_one_at_port_per_xdist_worker():
    second = Worker("gw1", 1, 2)
    assert port_for_this_worker("/dev/ttyUSB1|rfc2217://lab-2:4000", second) == "rfc2217://lab-2:4000"
    with pytest.raises(pytest.UsageError, match="one AT port per pytest-xdist worker"):
        port_for_this_worker("/dev/ttyUSB1", second)
    assert port_for_this_worker("socket://127.0.0.1:4000", Worker()) == "socket://127.0.0.1:4000"
    assert port_for_this_worker(None, Worker()) is None


RESTORE_ANSWERS = {
    b"AT": b"\r\nOK\r\n",
    b"AT+WSOPEN?": b"\r\nOK\r\n",
    b"AT+CWMODE=1": b"\r\nOK\r\n",
    b'AT+CWJAP="lab","pw-7f3a"': b"\r\nWIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n",
}


def test_after_a_reboot_nobody_asked_for_the_restore_joins_wifi_again(scripted):
    from fixtures.secrets import Secret
    from tests.unit.test_client import wait_until
    device, dut = scripted
    device.answers.update(RESTORE_ANSWERS)
    dut.wifi = ("lab", Secret("pw-7f3a"))
    device.push(b"\r\nready\r\n")
    wait_until(lambda: dut.client.rebooted_at is not None)
    dut.restore()
    assert b'AT+CWJAP="lab","pw-7f3a"\r\n' in bytes(device.received)
    assert "pw-7f3a" not in dut.client.transcript()
    assert dut.client.rebooted_at is None        # the restore is not the test's


def test_a_failed_join_stops_the_session_with_the_code_and_without_the_password(scripted):
    from fixtures.secrets import Secret
    device, dut = scripted
    device.answers.update(RESTORE_ANSWERS)
    device.answers[b'AT+CWJAP="lab","pw-7f3a"'] = b"\r\n+CWJAP:2\r\n\r\nERROR\r\n"
    with pytest.raises(SessionStop) as info:
        dut.join_wifi("lab", Secret("pw-7f3a"))
    assert "+CWJAP:2" in str(info.value) and "pw-7f3a" not in str(info.value)
    assert repr(Secret("pw-7f3a")) == "<secret>"


def test_busy_during_the_restore_is_retried(scripted):
    device, dut = scripted
    device.answers.update(RESTORE_ANSWERS)
    answers = iter([b"\r\nbusy p...\r\n", b"\r\nOK\r\n"])
    device.answers[b"AT+WSOPEN?"] = lambda dev: next(answers, b"\r\nOK\r\n")
    dut.restore()
    assert bytes(device.received).count(b"AT+WSOPEN?\r\n") == 2
    assert b"AT+RST" not in bytes(device.received)


def test_a_port_that_drops_and_comes_back_is_reopened(scripted):
    import socket
    import threading
    from tests.unit.test_client import wait_until
    device, dut = scripted
    device.answers.update(RESTORE_ANSWERS)
    assert dut.client.cmd("AT").ok
    device.conn.shutdown(socket.SHUT_RDWR)
    wait_until(lambda: not dut.client.alive)
    threading.Thread(target=device._serve, daemon=True).start()   # the bridge is back
    dut.restore()
    assert dut.client.alive and "AT port reopened" in dut.client.transcript()


def test_a_port_that_does_not_come_back_stops_the_session(scripted):
    import socket
    from tests.unit.test_client import wait_until
    device, dut = scripted
    device.answers.update(RESTORE_ANSWERS)
    assert dut.client.cmd("AT").ok
    device.conn.shutdown(socket.SHUT_RDWR)
    device.listener.close()
    wait_until(lambda: not dut.client.alive)
    dut.port_return = 0.5
    with pytest.raises(DeviceGone, match="went away and did not come back within 0.5 s"):
        dut.restore()


def test_health_after_a_silent_failure(scripted):
    from esp_at.errors import DeviceStoppedAnswering
    device, dut = scripted
    device.answers[b"AT"] = b"\r\nOK\r\n"
    assert dut.health_after_failure() is None            # it answers: the silence was a verdict
    device.answers.pop(b"AT")
    assert isinstance(dut.health_after_failure(), DeviceStoppedAnswering)


class Stashed(Options):
    """Options whose board options fixtures/board.py already read (as in a session)."""

    def __init__(self, at_ports=None, uart0_ports=None, firmware=None, **values):
        super().__init__(**{"--at-port": at_ports, **values})
        self.stash = {BOARD_OPTIONS: BoardOptions(at_ports, uart0_ports, firmware, None,
                                                  uart0_baud=115200, flash_baud=460800)}


@pytest.mark.parametrize("ports, kind", [
    ({}, Model),
    ({"at_ports": "/dev/ttyUSB1"}, Board),
    ({"at_ports": "rfc2217://lab-2:4001", "uart0_ports": "rfc2217://lab-2:4000"}, BoardWithUart0),
    ({"at_ports": "/dev/ttyUSB1", "uart0_ports": "/dev/ttyUSB0", "firmware": object()},
     FlashedBoard),
])
def test_the_kind_is_chosen_once_from_the_options(ports, kind):
    assert device_kind(Stashed(**ports)) is kind


@pytest.mark.parametrize("kind, hard, steps", [
    (Model, False, ["restart_when_lost", "at_rst", "hard_reset", "fresh_model"]),
    (Model, True, ["restart_when_lost", "hard_reset", "at_rst", "hard_reset", "fresh_model"]),
    (Board, False, ["port_back", "at_rst", "revive"]),
    (Board, True, ["port_back", "at_rst", "revive"]),
    (BoardWithUart0, False, ["port_back", "at_rst", "hard_reset", "revive"]),
    (BoardWithUart0, True, ["port_back", "hard_reset", "at_rst", "hard_reset", "revive"]),
    (FlashedBoard, True, ["port_back", "hard_reset", "at_rst", "hard_reset", "revive"]),
])
def test_each_kind_tries_its_ways_back_in_order(kind, hard, steps):
    ports = {} if kind is Model else {"at_ports": "/dev/ttyUSB1", "uart0_ports": "/dev/ttyUSB0",
                                      "firmware": object()}
    dut = kind(Stashed(**ports), None)
    assert [step.__name__ for step in dut.recovery_steps(hard)] == steps


@pytest.mark.parametrize("option, value", [("--model-defect", ["KD-1"]),
                                           ("--model-timing", "board"),
                                           ("--firmware", "shipping")])
def test_a_board_refuses_the_models_options(option, value):
    config = Stashed("/dev/ttyUSB1", **{"--firmware": "seed", "--model-defect": [], option: value})
    with pytest.raises(pytest.UsageError, match="the device is not the model"):
        device_kind(config).check_options(config)
    model = Stashed(**{"--firmware": "seed", "--model-defect": [], option: value})
    device_kind(model).check_options(model)
