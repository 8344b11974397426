"""`python -m sim`: serve one simulated board's AT port and print where, until SIGTERM/SIGINT."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys

from sim.defects import DEFECTS, FIRMWARE_PRESETS, resolve
from sim.device import Device
from sim.profiles import PROFILES
from sim.timing import DEFAULT_TIMINGS
from sim.transport import serve_pty, serve_socket


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


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
                   help="'shipping' switches on every implemented known deviation (KD-*)")
    p.add_argument("--boot-noise", action="store_true", help="print boot noise on AT+RST")
    p.add_argument("--reconnect-wait", type=float, default=DEFAULT_TIMINGS.reconnect_wait_s,
                   metavar="SECONDS", help="wait in state 3 before reconnecting (default %(default)s)")
    p.add_argument("--list-defects", action="store_true",
                   help="print the named defects (name, clause, KD id, description) and exit")
    p.add_argument("--log-level", default="WARNING", help="logging level on stderr")
    return p


async def _main(args: argparse.Namespace) -> int:
    try:
        defects = [d.name for d in resolve(list(FIRMWARE_PRESETS[args.firmware]) + args.defect)]
        timings = dataclasses.replace(DEFAULT_TIMINGS, reconnect_wait_s=args.reconnect_wait)
        device = Device(args.profile, defects, timings=timings, boot_noise=args.boot_noise)
    except ValueError as exc:
        print(f"python -m sim: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before the port line: a caller may stop us at once
        loop.add_signal_handler(sig, stop.set)
    port = await (serve_pty(device) if args.pty else serve_socket(device, *args.listen))
    print(f"AT port: {port.url}", flush=True)
    await stop.wait()
    device.shutdown()
    await port.close()
    return 0


def defect_table() -> str:
    """One row per defect: name, the clause it breaks, the KD id or '-', the description."""
    rows = [("name", "clause", "kd", "description")]
    rows += [(d.name, ",".join(d.clauses), d.kd or "-", d.description) for d in DEFECTS.values()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths))
                     + "  " + row[3] for row in rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_defects:
        print(defect_table())
        return 0
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:  # SIGINT before the loop's own handler was installed
        return 0


if __name__ == "__main__":
    sys.exit(main())
