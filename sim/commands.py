"""Basic ESP-AT commands: AT, ATE0/1, AT+RST, AT+GMR, AT+CMD?, AT+SYSRAM?, AT+CWMODE, AT+CWJAP,
AT+CIPSTA?. Each handler takes (device, args) and returns a Reply."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.params import ParamError, Params
from sim.replies import ERROR, OK, READY, Reply, info

if TYPE_CHECKING:
    from sim.device import Device

MODEL_VERSION = "4.1.1.0"
SDK_VERSION = "v5.4.4"  # the ESP-IDF line shipping ESP-AT carries (BEHAVIOUR.md)
# Bytes a board may print on the AT port while rebooting (only with boot_noise on).
BOOT_NOISE = b"\x00\xfe\x1c\x8c\xe0ESP-ROM:esp8684-api2-20220127\r\n\x00"
SIMULATED_BSSID = "02:00:00:00:00:01"
SIMULATED_CHANNEL = 6
SIMULATED_RSSI = -42
STATION_IP = "127.0.0.1"  # the model's network is the host's loopback


Handler = Callable[["Device", str], Reply]


@dataclass(frozen=True)
class Command:
    """One AT command and which of its four forms exist (AT+CMD? prints them as 0/1)."""

    name: str
    test: Handler | None = None      # AT+X=?
    query: Handler | None = None     # AT+X?
    set: Handler | None = None       # AT+X=...
    execute: Handler | None = None   # AT+X


# ---- basic -------------------------------------------------------------------------------

def _at(dev: "Device", args: str) -> Reply:
    return OK


def _echo_off(dev: "Device", args: str) -> Reply:
    dev.echo = False
    return OK


def _echo_on(dev: "Device", args: str) -> Reply:
    dev.echo = True
    return OK


def _rst(dev: "Device", args: str) -> Reply:
    return dev.reboot()


def _gmr(dev: "Device", args: str) -> Reply:
    """ESP-AT prints its app descriptor's version as the Bin version: the image the chip booted.
    The first line names the model's profile; the compile time, as ESP-AT prints it, falls in the
    profile's firmware period (sim/profiles.py), which `--profile auto` reads."""
    defects = "+".join(sorted(dev.defect_names)) or "none"
    return info(
        f"AT version:{MODEL_VERSION}(esp-at-ws reference model - profile {dev.profile.name}"
        f" - defects {defects} - ESP32C2)",
        f"SDK version:{SDK_VERSION}",
        f"compile time(sim):{dev.profile.compile_time()}",
        f"Bin version:{dev.chip.app_version}(ESP32C2-4MB)",
    )


def _cmd_query(dev: "Device", args: str) -> Reply:
    lines = []
    for index, name in enumerate(dev.profile.commands):
        c = COMMANDS[name]
        flags = ",".join("1" if h is not None else "0" for h in (c.test, c.query, c.set, c.execute))
        lines.append(f'+CMD:{index},"{name}",{flags}')
    return info(*lines)


def _sysram_query(dev: "Device", args: str) -> Reply:
    free, min_free = dev.heap.report()
    return info(f"+SYSRAM:{free},{min_free}")


# ---- Wi-Fi (simulated: the model's network is the host's) --------------------------------

def _cwmode_query(dev: "Device", args: str) -> Reply:
    return info(f"+CWMODE:{dev.wifi.mode}")


def _cwmode_set(dev: "Device", args: str) -> Reply:
    p = Params(args, min_count=1, max_count=2)
    mode = p.int(0, 0, 3)
    p.int(1, 0, 1, default=0)  # <auto_connect>: accepted, nothing to model
    dev.wifi.mode = mode
    if mode in (0, 2):
        dev.wifi.ssid = None  # station interface off
    return OK


def _cwjap_query(dev: "Device", args: str) -> Reply:
    w = dev.wifi
    if w.ssid is None:
        return info("No AP")
    # +CWJAP:<ssid>,<bssid>,<channel>,<rssi>,<pci_en>,<reconn_interval>,<listen_interval>,
    # <scan_mode>,<pmf>
    return info(f'+CWJAP:"{w.ssid}","{SIMULATED_BSSID}",{SIMULATED_CHANNEL},{SIMULATED_RSSI},'
                "0,1,3,0,1")


def _cwjap_set(dev: "Device", args: str) -> Reply:
    try:
        p = Params(args, min_count=1, max_count=9)
        ssid = p.str(0)
        password = p.str(1, default="")  # compared, never stored, printed or logged
    except ParamError:
        return ERROR  # here, not in the device's parse-error log: the text holds the password
    if dev.wifi.mode not in (1, 3) or not ssid:
        return ERROR
    # The line was decoded as latin-1: encoding it back gives the bytes as typed.
    code = dev.wifi.join_failure(ssid.encode("latin-1"), password.encode("latin-1"))
    if code is not None:
        left = b"WIFI DISCONNECT\r\n" if dev.wifi.ssid is not None else b""
        dev.wifi.ssid = None  # ESP-AT leaves the old AP before it tries the new one
        return left + f"+CWJAP:{code}\r\n".encode() + ERROR
    dev.wifi.ssid = ssid
    return b"WIFI CONNECTED\r\nWIFI GOT IP\r\n" + OK


def _cipsta_query(dev: "Device", args: str) -> Reply:
    ip = STATION_IP if dev.wifi.ssid is not None else "0.0.0.0"
    return info(f'+CIPSTA:ip:"{ip}"', f'+CIPSTA:gateway:"{ip}"', '+CIPSTA:netmask:"255.0.0.0"')


async def boot_sequence(dev: "Device") -> bytes:
    """From reset to `ready` on the AT port: quiet, optional boot noise, `ready`; Wi-Fi rejoins
    from flash. (AT+RST, a crash, or the board's EN line.)"""
    await asyncio.sleep(dev.timings.rst_quiet_s)
    if dev.boot_noise:
        dev.emit(BOOT_NOISE)
    dev.finish_reboot()
    out = READY
    if dev.wifi.ssid is not None:
        out += b"WIFI CONNECTED\r\nWIFI GOT IP\r\n"
    return out


def _build() -> dict[str, Command]:
    from sim import websocket_commands as ws

    commands = [
        Command("AT", execute=_at),
        Command("ATE0", execute=_echo_off),
        Command("ATE1", execute=_echo_on),
        Command("AT+RST", execute=_rst),
        Command("AT+GMR", execute=_gmr),
        Command("AT+CMD", query=_cmd_query),
        Command("AT+SYSRAM", query=_sysram_query),
        Command("AT+CWMODE", query=_cwmode_query, set=_cwmode_set),
        Command("AT+CWJAP", query=_cwjap_query, set=_cwjap_set),
        Command("AT+CIPSTA", query=_cipsta_query),
        Command("AT+WSCFG", set=ws.wscfg_set),
        Command("AT+WSOPEN", query=ws.wsopen_query, set=ws.wsopen_set),
        Command("AT+WSSEND", set=ws.wssend_set),
        Command("AT+WSCLOSE", set=ws.wsclose_set),
        Command("AT+WSHEAD", query=ws.wshead_query, set=ws.wshead_set),        # wshead on
        Command("AT+WSDATAFMT", set=ws.wsdatafmt_set),                          # current
    ]
    return {c.name: c for c in commands}


COMMANDS: dict[str, Command] = _build()
