"""Manual use with a board: `python -m servers --host 192.168.1.20 --port 8765` (this machine's
address on the lab network). Every path echoes; every handshake, received frame, write and close
is printed as it happens."""
from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import threading
import time

from .connection import Connection
from .server import WsTestServer


def print_event(conn: Connection, kind: str, detail: object) -> None:
    peer = conn.handshake.path if conn.handshake else "?"
    stamp = f"{time.monotonic():.3f}"
    if kind == "handshake":
        print(f"{stamp} {peer} <- handshake", flush=True)
        for line in detail.raw.decode("latin-1").rstrip().split("\r\n"):  # type: ignore[attr-defined]
            print(f"    {line}", flush=True)
    else:
        arrow = "->" if kind == "sent" else "<-"
        print(f"{stamp} {peer} {arrow} {kind}: {detail!r}", flush=True)


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is this machine's loopback ('' is every interface)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False  # cannot tell: warn
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def listen_error(exc: OSError) -> str:
    """The reason alone: asyncio's bind error repeats the address inside its text."""
    if isinstance(exc, socket.gaierror) or not exc.errno:
        return exc.strerror or str(exc)
    return os.strerror(exc.errno)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="port (default %(default)s; 0 picks one)")
    parser.add_argument("--advertised-host", help="address the board uses to reach this machine")
    args = parser.parse_args(argv)
    server = WsTestServer(args.host, args.port, args.advertised_host, accept_any_path=True,
                          observer=print_event)
    try:
        server.start()
    except OSError as exc:
        print(f"python -m servers: cannot listen on {args.host}:{args.port}: {listen_error(exc)}",
              file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(f"python -m servers: warning: listening on {args.host or 'every interface'}: any "
              f"host that can reach this machine can connect, and what it sends is echoed; bind "
              f"to this machine's address on a lab network only", file=sys.stderr, flush=True)
    host = server.advertised_host
    print(f"serving echo on ws://{host}:{server.port}/<any path>  (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
