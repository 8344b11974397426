"""The opening handshake as the firmware writes and reads it: the upgrade request in its header
order (BEHAVIOUR.md "Opening") and the checks of the response (RFC 6455 §4.1, KD-7)."""
from __future__ import annotations

from sim.behaviour import Behaviour
from sim.uri import WsUri
from wire.handshake import accept_for

USER_AGENT = "ESP32 Websocket Client"
# transport_ws builds the request in a 1024-byte buffer (field-defects A2): longer is refused.
MAX_REQUEST_BYTES = 1023


class HandshakeError(Exception):
    pass


def build_request(uri: WsUri, key: str, subprotocol: str, fw: Behaviour,
                  reconnecting: bool = False, auth: str = "",
                  headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = ()) -> bytes:
    """The upgrade request in the firmware's header order (BEHAVIOUR.md "Opening"): the library's
    headers, Sec-WebSocket-Protocol, Authorization (profile auth), then each AT+WSHEAD header as
    `key: value` in the order set (profile wshead). Encoded as latin-1: the bytes as typed."""
    host = uri.host if fw.host_without_port else f"{uri.host}:{uri.port}"  # always the port (A6)
    lines = [
        f"GET {uri.target(fw, reconnecting)} HTTP/1.1",
        "Connection: Upgrade",
        f"Host: {host}",
        f"User-Agent: {USER_AGENT}",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Key: {key}",
    ]
    if subprotocol and not fw.subprotocol_not_sent:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    authorization = []
    if auth and not fw.auth_header_dropped:
        name = "authorization" if fw.auth_header_lowercase else "Authorization"
        authorization.append(f"{name}: {auth}")
    stored = [f"{name}: {value}" for name, value in headers]
    lines += stored + authorization if fw.auth_after_wshead else authorization + stored
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def check_response(head: bytes, key: str, subprotocol: str, fw: Behaviour) -> None:
    """RFC 6455 §4.1 client checks; KD-7 (`handshake_accept_key_only`) checks the key alone."""
    text = head.decode("latin-1")
    status_line, _, header_block = text.partition("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HandshakeError(f"not an HTTP response: {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_block.split("\r\n"):
        if ":" in line:
            name, _, value = line.partition(":")
            name = name.strip() if fw.header_names_case_sensitive else name.strip().lower()
            headers[name] = value.strip()

    def header(canonical: str) -> str | None:
        return headers.get(canonical if fw.header_names_case_sensitive else canonical.lower())

    if header("Sec-WebSocket-Accept") != accept_for(key):
        raise HandshakeError("missing or wrong Sec-WebSocket-Accept")
    if fw.handshake_accept_key_only:
        return
    if parts[1] != "101":
        raise HandshakeError(f"status {parts[1]}, not 101")
    if (header("Upgrade") or "").lower() != "websocket":
        raise HandshakeError("no Upgrade: websocket")
    if "upgrade" not in [t.strip().lower() for t in (header("Connection") or "").split(",")]:
        raise HandshakeError("no Connection: Upgrade")
    chosen = header("Sec-WebSocket-Protocol")
    if chosen is not None:
        offered = [p.strip() for p in subprotocol.split(",") if p.strip()]
        if chosen not in offered:
            raise HandshakeError(f"server picked subprotocol {chosen!r}, offered {offered}")


