"""A stranger on the test WebSocket server, for tools/robustness.py's `intruder` scenario.

  python -m pytest ... -p tools.robustness_intruder

Wraps servers.server.WsTestServer.endpoint: for each endpoint a test creates, a thread of its own

  (a) at once, opens a WebSocket to the path a stranger would guess, /ep/1-<name>;
  (b) once the device's connection to the endpoint is up, opens one to the endpoint's real path.

Whenever a handshake is accepted it sends a ping and a text frame (INTRUDER_MARK), as a process
on the same host (or, with a board, any host of the lab LAN) could. The HTTP status of each
attempt goes, one JSON line each, to the file named by $ROBUSTNESS_INTRUDER_LOG: {"kind":
"guessed" | "real", "path", "status" (101 when accepted), "error"}. The frame's text is never
written there, so finding it in an artifact means the server took the stranger's frames in.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time

import pytest

INTRUDER_LOG_ENV = "ROBUSTNESS_INTRUDER_LOG"
INTRUDER_MARK = "intruder-frame"
DEVICE_WAIT_S = 15.0            # for the device's connection to an endpoint
OPEN_TIMEOUT_S = 3.0
_lock = threading.Lock()
_original = None


def guessed_path(name: str) -> str:
    """What a stranger who read servers/server.py would try: the first endpoint's path."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    return f"/ep/1-{slug}" if slug else "/ep/1"


def record(kind: str, path: str, status: int | None, error: str = "") -> None:
    line = json.dumps({"kind": kind, "path": path, "status": status, "error": error,
                       "time": time.time()})
    target = os.environ.get(INTRUDER_LOG_ENV)
    with _lock:
        if target:
            with open(target, "a") as out:
                out.write(line + "\n")


def knock(kind: str, host: str, port: int, path: str, scheme: str) -> None:
    """One connection attempt; on a 101, a ping and a text frame, then close."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    uri = f"{scheme}://{host}:{port}{path}"
    ssl_arg = {}
    if scheme == "wss":
        import ssl
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        ssl_arg = {"ssl": context}
    try:
        with connect(uri, open_timeout=OPEN_TIMEOUT_S, close_timeout=1, **ssl_arg) as ws:
            record(kind, path, 101)
            ws.ping(b"intruder")
            ws.send(INTRUDER_MARK)
            time.sleep(0.2)
    except InvalidStatus as exc:
        record(kind, path, exc.response.status_code)
    except Exception as exc:                      # refused, reset, timed out: say which
        record(kind, path, None, f"{type(exc).__name__}: {exc}"[:200])


def intrude(server, endpoint, name: str) -> None:
    host = server.host if server.host not in ("0.0.0.0", "::") else "127.0.0.1"
    knock("guessed", host, server.port, guessed_path(name), server.scheme)
    deadline = time.monotonic() + DEVICE_WAIT_S
    while time.monotonic() < deadline and not endpoint.forgotten:
        if any(getattr(c, "is_open", False) for c in list(endpoint.connections)):
            knock("real", host, server.port, endpoint.path, server.scheme)
            return
        time.sleep(0.05)


def pytest_configure(config: pytest.Config) -> None:
    global _original
    from servers.server import WsTestServer

    if _original is not None:
        return
    _original = WsTestServer.endpoint

    def endpoint(self, name: str = "", path: str | None = None):
        made = _original(self, name, path)
        threading.Thread(target=intrude, args=(self, made, name), name="intruder",
                         daemon=True).start()
        return made

    WsTestServer.endpoint = endpoint


def pytest_unconfigure(config: pytest.Config) -> None:
    global _original
    if _original is not None:
        from servers.server import WsTestServer
        WsTestServer.endpoint = _original
        _original = None
