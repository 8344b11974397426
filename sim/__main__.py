"""`python -m sim`: serve one simulated board's AT port and print where, until SIGTERM/SIGINT."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys

from sim.board import Board, ChipState
from sim.commands import MODEL_VERSION
from sim.defects import DEFECTS, FIRMWARE_PRESETS, firmware_defects, resolve
from sim.device import Device
from sim.flash import Flash
from sim.library import LIBRARIES, SHIPPED, TRACE_HOST_KNOBS, model_library
from sim.image_build import build_factory_image
from sim.rfc2217 import serve_rfc2217
from sim.profiles import PROFILES
from sim.timing import BOARD_TIMINGS, DEFAULT_TIMINGS
from sim.transport import serve_pty, serve_socket


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _wifi_ap(text: str) -> tuple[bytes, bytes]:
    """SSID:PASSWORD, split at the first ':' (an empty password: an open network). As bytes:
    what AT+CWJAP is compared with is the bytes typed on the AT port."""
    ssid, sep, password = os.fsencode(text).partition(b":")
    if not sep or not ssid:
        # The value is not repeated: it may hold a password.
        raise argparse.ArgumentTypeError("expected SSID:PASSWORD (the value is not shown)")
    return ssid, password


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    p.add_argument("--listen", type=_listen, default=("127.0.0.1", 0), metavar="HOST:PORT",
                   help="serve the AT port on TCP (default 127.0.0.1:0, a free port)")
    p.add_argument("--pty", action="store_true", help="serve the AT port on a pseudo-terminal")
    p.add_argument("--profile", default="seed", help=f"firmware profile ({', '.join(PROFILES)})")
    p.add_argument("--defect", action="extend", nargs="+", default=[], metavar="NAME",
                   help="switch a named firmware defect on (a name or a KD id; --list-defects "
                        "lists them)")
    p.add_argument("--firmware", choices=sorted(FIRMWARE_PRESETS), default="seed",
                   help="'shipping' switches on every known deviation (KD-*) of the --profile: on "
                        "seed all but KD-8 (tls on) and KD-12 (current)")
    p.add_argument("--library", choices=sorted(LIBRARIES), default=None,
                   help="the esp_websocket_client version the shipping firmware carries (with "
                        "--firmware shipping; default %s, what ESP-AT pins): 1.8.0 is the "
                        "firmware once ESP-AT moves its pin (KD-4 fixed)" % SHIPPED)
    p.add_argument("--pki", default=None, metavar="DIR",
                   help="the PKI partitions (profile tls): wss_cert.<n>.pem, wss_key.<n>.pem and "
                        "wss_ca.<n>.pem in DIR. Default: empty partitions")
    p.add_argument("--boot-noise", action="store_true", help="print boot noise on AT+RST")
    p.add_argument("--reconnect-wait", type=float, default=DEFAULT_TIMINGS.reconnect_wait_s,
                   metavar="SECONDS", help="wait in state 3 before reconnecting (default %(default)s)")
    p.add_argument("--network-timeout", type=float, default=DEFAULT_TIMINGS.network_timeout_s,
                   metavar="SECONDS",
                   help="the library's connect and read timeout (default %(default)s)")
    p.add_argument("--signed-char", action="store_true",
                   help="read a 64-bit frame length's last byte as a signed char, as the x86-64 "
                        "host build the golden traces were recorded on does (replays only)")
    p.add_argument("--board-like", action="store_true",
                   help="a board's timing (sim/timing.py BOARD_TIMINGS): the firmware's 1 s timer "
                        "tick, 10-or-15 s reconnect waits, 2-20 ms network delay each way")
    p.add_argument("--flash", default=None, metavar="FILE",
                   help="the board's 4 MB SPI flash, kept in this file across runs (created "
                        "erased: flash it through UART0 with esptool). Default: a flash in "
                        "memory holding the model's own ESP-AT image")
    p.add_argument("--at-rfc2217", action="store_true",
                   help="serve the AT port (UART1) over RFC 2217, as a lab's esp_rfc2217_server")
    p.add_argument("--wifi-ap", type=_wifi_ap, action="append", default=[], metavar="SSID:PASSWORD",
                   help="a Wi-Fi network AT+CWJAP can join (repeatable). With none, any SSID and "
                        "password join; with some, another SSID answers +CWJAP:3 and a wrong "
                        "password +CWJAP:2. On the command line `ps` shows it: prefer "
                        "--wifi-ap-file for a real password")
    p.add_argument("--wifi-ap-file", default=None, metavar="FILE",
                   help="networks as --wifi-ap, one SSID:PASSWORD per line, read at start-up")
    p.add_argument("--list-defects", action="store_true",
                   help="print the named defects (name, clauses, KD id, profile, description) "
                        "and exit")
    p.add_argument("--log-level", default="WARNING", help="logging level on stderr")
    return p


async def _main(args: argparse.Namespace) -> int:
    try:
        if args.profile not in PROFILES:
            raise ValueError(f"unknown profile {args.profile!r}; known: {', '.join(PROFILES)}")
        version = model_library(args.firmware, args.library)
        named = list(firmware_defects(args.firmware, args.profile, version or SHIPPED)) + \
            args.defect
        defects = [d.name for d in resolve(named)]
        preset = BOARD_TIMINGS if args.board_like else DEFAULT_TIMINGS
        timings = dataclasses.replace(preset, reconnect_wait_s=args.reconnect_wait,
                                      network_timeout_s=args.network_timeout)
        device = Device(args.profile, defects, timings=timings, boot_noise=args.boot_noise,
                        pki=args.pki, library_version=version,
                        knobs=TRACE_HOST_KNOBS if args.signed_char else None)
        for ssid, password in args.wifi_ap + _wifi_ap_file(args.wifi_ap_file):
            device.wifi.add_access_point(ssid, password)
        board = Board(device, _flash(args.flash), paced=args.board_like)
    except (ValueError, OSError) as exc:
        print(f"python -m sim: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before the port line: a caller may stop us at once
        loop.add_signal_handler(sig, stop.set)
    host = args.listen[0]
    try:
        uart0 = await serve_rfc2217(board.uart0, host, on_dtr=board.circuit.set_dtr,
                                    on_rts=board.circuit.set_rts)
        if args.pty:
            port = await serve_pty(board.at_port)
        elif args.at_rfc2217:
            port = await serve_rfc2217(board.uart1, *args.listen)
        else:
            port = await serve_socket(board.at_port, *args.listen)
    except OSError as exc:
        print(f"python -m sim: cannot listen on {host}:{args.listen[1]}: {_reason(exc)}",
              file=sys.stderr)
        return 2
    board.power_on()
    # Announced once up (or halted), as a board powered before anyone opens its ports.
    while board.state is ChipState.RUNNING and board.device.starting:
        await asyncio.sleep(0.01)
    print(f"UART0 port: {uart0.url}", flush=True)
    print(f"AT port: {port.url}", flush=True)
    await stop.wait()
    device.shutdown()
    await port.close()
    await uart0.close()
    return 0


def _reason(exc: OSError) -> str:
    """The reason alone: asyncio's bind error repeats the address inside its text."""
    if isinstance(exc, socket.gaierror) or not exc.errno:
        return exc.strerror or str(exc)
    return os.strerror(exc.errno)


def _wifi_ap_file(path: str | None) -> list[tuple[bytes, bytes]]:
    """Raises ValueError naming the file and line, never the line's text."""
    if path is None:
        return []
    with open(path, "rb") as file:
        lines = file.read().splitlines()
    networks = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        ssid, sep, password = line.partition(b":")
        if not sep or not ssid:
            raise ValueError(f"--wifi-ap-file {path}, line {number}: expected SSID:PASSWORD")
        networks.append((ssid, password))
    return networks


def _flash(path: str | None) -> Flash:
    if path is not None:
        return Flash(path)
    flash = Flash()
    flash.write(0, build_factory_image(f"v{MODEL_VERSION}"))
    return flash


def defect_table() -> str:
    """One row per defect: name, the clauses it breaks, the KD id or '-', its profile (the model
    must run that one or a later one: --profile), the description."""
    rows = [("name", "clause", "kd", "profile", "description")]
    rows += [(d.name, ",".join(d.clauses), d.kd or "-", d.profile, d.description)
             for d in DEFECTS.values()]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths))
                     + "  " + row[4] for row in rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_defects:
        print(defect_table())
        return 0
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if logging.getLogger().level > logging.DEBUG:
        # Every RFC 2217 option esptool sets is an INFO line: noise in a test's model log.
        logging.getLogger("sim.rfc2217").setLevel(logging.WARNING)
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:  # SIGINT before the loop's own handler was installed
        return 0


if __name__ == "__main__":
    sys.exit(main())
