"""Manual use with a board: `python -m servers --host 0.0.0.0 --port 8765`. Every path echoes;
every handshake, received frame, write and close is printed as it happens."""
from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m servers", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="port (default %(default)s; 0 picks one)")
    parser.add_argument("--advertised-host", help="address the board uses to reach this machine")
    args = parser.parse_args()
    server = WsTestServer(args.host, args.port, args.advertised_host, accept_any_path=True,
                          observer=print_event)
    server.start()
    host = server.advertised_host
    print(f"serving echo on ws://{host}:{server.port}/<any path>  (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
