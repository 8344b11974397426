"""The model's command line and its defect switches (python -m sim): what it refuses, what it
announces, Wi-Fi access points, logs."""
from __future__ import annotations

import errno
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from sim import SimThread
from tests.unit.test_sim import (ERROR, FAST, OK, ROOT, WAIT_S, AtPort, cli_model, model_at,
                                 open_link, running_ws_server)
from wire.frames import OP_CLOSE, close_payload, encode_frame

# ---- defects and CLI ---------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_kd1_refuses_timeout_zero(raw_ws):
    with model_at("KD-1") as at:
        assert at.cmd(f'AT+WSOPEN=0,"{raw_ws.uri()}",,0') == ERROR
        assert at.cmd(f'AT+WSOPEN=0,"{raw_ws.uri()}",,') == ERROR
        # 1 passes the range check: the open is tried (1 ms may be too short to finish it).
        assert at.cmd(f'AT+WSOPEN=0,"{raw_ws.uri()}",,1') in (b"+WS_CONNECTED:0\r\n" + OK,
                                                            b"+WS_DISCONNECTED:0\r\n" + ERROR)


@pytest.mark.timeout(10)
def test_pty_port():
    with SimThread("seed", timings=FAST, pty=True) as m:
        assert m.url.startswith("/dev/")
        fd = os.open(m.url, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"AT\r\n")
            out = b""
            deadline = time.monotonic() + WAIT_S
            while not out.endswith(OK) and time.monotonic() < deadline:
                if select.select([fd], [], [], 0.1)[0]:
                    out += os.read(fd, 1024)
            assert out == b"AT\r\n" + OK
        finally:
            os.close(fd)


@pytest.mark.timeout(10)
def test_cli_prints_port_and_exits_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "sim", "--firmware", "shipping"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        uart0 = proc.stdout.readline().decode()
        assert re.fullmatch(r"UART0 port: rfc2217://127\.0\.0\.1:\d+\n", uart0), uart0
        line = proc.stdout.readline().decode()
        m = re.fullmatch(r"AT port: (socket://127\.0\.0\.1:\d+)\n", line)
        assert m, line
        at = AtPort(m.group(1))
        assert b"timeout-zero-refused" in at.cmd("AT+GMR")   # KD-1's defect, by name
        at.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(3) == 0
    finally:
        proc.kill()
        proc.wait(3)
    bad = subprocess.run([sys.executable, "-m", "sim", "--defect", "KD-99"], cwd=ROOT,
                         capture_output=True, timeout=5)
    assert bad.returncode != 0 and b"KD-99" in bad.stderr


@pytest.mark.timeout(10)
def test_wifi_aps_refuse_an_unknown_ssid_and_a_wrong_password(tmp_path):
    networks = tmp_path / "networks"
    networks.write_bytes(b"office:0ff1ce-pass\n")
    with cli_model("--wifi-ap", "lab:s3cret-pass", "--wifi-ap-file", str(networks)) as (at, printed):
        assert at.cmd('AT+CWJAP="elsewhere","s3cret-pass"') == b"+CWJAP:3\r\n" + ERROR
        assert at.cmd('AT+CWJAP="lab","wrong-pass"') == b"+CWJAP:2\r\n" + ERROR
        assert at.cmd('AT+CWJAP="lab"') == b"+CWJAP:2\r\n" + ERROR      # no password at all
        assert at.cmd("AT+CWJAP?") == b"No AP\r\n" + OK
        assert at.cmd('AT+CWJAP="lab","s3cret-pass"') == b"WIFI CONNECTED\r\nWIFI GOT IP\r\n" + OK
        # A failed join leaves the joined AP first.
        assert at.cmd('AT+CWJAP="lab","s3cret-pas"') == b"WIFI DISCONNECT\r\n+CWJAP:2\r\n" + ERROR
        assert at.cmd("AT+CIPSTA?").startswith(b'+CIPSTA:ip:"0.0.0.0"')
        assert at.cmd('AT+CWJAP="office","0ff1ce-pass"').endswith(OK)
        assert at.cmd('AT+CWJAP="lab","s3cret-pass",bad"field') == ERROR  # a parse error: no log
    assert not any(b"-pass" in out for out in printed), printed


@pytest.mark.timeout(10)
def test_bad_wifi_ap_is_refused_without_repeating_it(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "sim", "--wifi-ap", "no-colon-s3cret"], cwd=ROOT,
                         capture_output=True, text=True, timeout=8)
    assert bad.returncode == 2 and "--wifi-ap" in bad.stderr and "s3cret" not in bad.stderr
    broken = tmp_path / "networks"
    broken.write_text("lab:fine\nno-colon-s3cret\n")
    bad = subprocess.run([sys.executable, "-m", "sim", "--wifi-ap-file", str(broken)], cwd=ROOT,
                         capture_output=True, text=True, timeout=8)
    assert bad.returncode == 2 and bad.stderr == (
        f"python -m sim: --wifi-ap-file {broken}, line 2: expected SSID:PASSWORD\n")


def test_wifi_state_keeps_no_password_in_the_clear():
    from sim.device import WifiState
    wifi = WifiState()
    wifi.add_access_point(b"lab", b"s3cret")
    assert b"s3cret" not in repr(wifi).encode() + b"".join(wifi.access_points.values())
    assert wifi.join_failure(b"lab", b"s3cret") is None


@pytest.mark.timeout(10)
@pytest.mark.parametrize("listen", ["busy", "192.0.2.7:0"], ids=["busy-port", "foreign-host"])
def test_cli_cannot_listen_says_so_in_one_line(listen):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        if listen == "busy":
            listen = f"127.0.0.1:{taken.getsockname()[1]}"
        result = subprocess.run([sys.executable, "-m", "sim", "--listen", listen], cwd=ROOT,
                                capture_output=True, text=True, timeout=8)
    assert result.returncode == 2 and result.stdout == ""
    reason = os.strerror(errno.EADDRINUSE if listen.startswith("127.") else errno.EADDRNOTAVAIL)
    assert result.stderr == f"python -m sim: cannot listen on {listen}: {reason}\n"


@pytest.mark.timeout(10)
def test_sysram_falls_while_link_open(sim_at, raw_ws):
    def free() -> int:
        return int(re.search(rb"\+SYSRAM:(\d+),", sim_at.cmd("AT+SYSRAM?")).group(1))
    before = free()
    open_link(sim_at, raw_ws)
    assert free() < before
    assert sim_at.cmd("AT+WSCLOSE=0") == OK
    assert free() == before


@pytest.mark.timeout(10)
def test_kd5_second_close_frame():
    with running_ws_server() as srv, model_at("KD-5") as at:
        conn = open_link(at, srv)
        at.write(b"AT+WSSEND=0,2,8\r\n")
        at.expect(b">")
        at.write(b"\x03\xe8")
        at.expect(b"SEND OK\r\n")
        assert b"+WSOPEN:0,2," in at.cmd("AT+WSOPEN?")  # still connected
        conn.send(encode_frame(OP_CLOSE, close_payload(1000)))
        at.expect(b"+WS_CLOSED:0\r\n")
        closes = [conn.next_frame(), conn.next_frame()]
        assert [f.opcode for f in closes] == [OP_CLOSE, OP_CLOSE]
        assert closes[1].payload == b""
