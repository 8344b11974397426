"""AT+WSCFG, AT+WSOPEN, AT+WSSEND, AT+WSCLOSE: parameter parsing, range checks (the seed's), and
the hand-off to Link. Ranges come from the seed; where it is silent, spec/AMBIGUITIES.md says why."""
from __future__ import annotations

from typing import TYPE_CHECKING

from wire.frames import OP_CLOSE, OP_PING, OP_PONG

from sim.link import MAX_CONTROL_PAYLOAD, Link, LinkConfig, LinkState, parse_uri
from sim.params import ParamError, Params
from sim.replies import ERROR, OK, SEND_OK, DataRequest, Reply, info

if TYPE_CHECKING:
    from sim.device import Device

MAX_LINK_ID = 2
PING_INTV_RANGE = (1, 7200)
PING_TIMEOUT_RANGE = (1, 7200)
WSOPEN_TIMEOUT_MAX_MS = 180000
WSOPEN_TIMEOUT_DEFAULT_MS = 15000
WSSEND_OPCODE_DEFAULT = 1
WSSEND_TIMEOUT_MAX_MS = 60000
WSSEND_TIMEOUT_DEFAULT_MS = 10000
# RFC 6455 §5.5 refusal applies to the control opcodes the seed names (close, ping, pong);
# reserved control opcodes 0xB-0xF are sent as given (BEHAVIOUR.md "Sending").
SIZE_CHECKED_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)


def wscfg_set(dev: "Device", args: str) -> Reply:
    p = Params(args, min_count=3, max_count=4)
    link_id = p.int(0, 0, MAX_LINK_ID)
    ping_intv_sec = p.int(1, *PING_INTV_RANGE)
    ping_timeout_sec = p.int(2, *PING_TIMEOUT_RANGE)
    buffer_size = p.int(3, 1, dev.profile.buffer_size_max, default=dev.profile.buffer_size_default)
    # Stored for the next AT+WSOPEN of this id; a live link keeps the values it was opened with
    # (seed: "configured before AT+WSOPEN ... otherwise it will not take effect").
    dev.link_configs[link_id] = LinkConfig(ping_intv_sec, ping_timeout_sec, buffer_size)
    return OK


def wsopen_query(dev: "Device", args: str) -> Reply:
    lines = [f'+WSOPEN:{link.link_id},{int(link.state)},"{link.uri}"'
             for _, link in sorted(dev.links.items())]
    return info(*lines)


def wsopen_set(dev: "Device", args: str) -> Reply:
    p = Params(args, min_count=2, max_count=4)
    link_id = p.int(0, 0, MAX_LINK_ID)
    uri = p.str(1)
    subprotocol = p.str(2, default="")
    timeout_lo = 0
    if dev.has("KD-1"):
        timeout_lo = 1  # firmware checks [1,180000]
        if len(p.fields) == 4 and not p.is_present(3):
            raise ParamError("KD-1: empty <timeout_ms> refused")
    timeout_ms = p.int(3, timeout_lo, WSOPEN_TIMEOUT_MAX_MS, default=WSOPEN_TIMEOUT_DEFAULT_MS)
    existing = dev.links.get(link_id)
    if existing is not None and existing.state != LinkState.CLOSED:
        return ERROR  # "ws:%d already established"
    try:
        ws_uri = parse_uri(uri)
    except ValueError:
        return ERROR
    if existing is not None:  # a closed link still listed with state 0 gives way
        dev.remove_link(existing)
        existing.destroy()
    config = dev.link_configs.get(link_id, dev.default_link_config())
    link = Link(dev, link_id, uri, ws_uri, subprotocol, config, timeout_ms)
    dev.add_link(link)
    return _open(dev, link)


async def _open(dev: "Device", link: Link) -> bytes:
    if await link.open():
        return OK  # +WS_CONNECTED was printed by the link, before this OK
    if not link.destroyed:
        dev.emit(f"+WS_DISCONNECTED:{link.link_id}\r\n".encode())
        dev.remove_link(link)
        link.destroy()
    return ERROR


def wssend_set(dev: "Device", args: str) -> Reply:
    p = Params(args, min_count=2, max_count=4)
    link_id = p.int(0, 0, MAX_LINK_ID)
    length = p.int(1, 0, dev.profile.wssend_length_max)
    opcode = p.int(2, 0, 0xF, default=WSSEND_OPCODE_DEFAULT)
    timeout_ms = p.int(3, 0, WSSEND_TIMEOUT_MAX_MS, default=WSSEND_TIMEOUT_DEFAULT_MS)
    if length == 0:
        return ERROR  # released firmware: ERROR, no prompt
    if (opcode in SIZE_CHECKED_CONTROL_OPCODES and length > MAX_CONTROL_PAYLOAD
            and not dev.has("KD-10")):
        return ERROR  # RFC 6455 §5.5: refused before the prompt, nothing sent
    link = dev.links.get(link_id)
    if link is None or not link.can_send:
        return ERROR  # not connected: ERROR before the prompt

    async def on_data(payload: bytes) -> bytes:
        if dev.links.get(link_id) is not link:
            return ERROR
        return SEND_OK if await link.send(payload, opcode, timeout_ms) else ERROR

    return DataRequest(length, on_data)


def wsclose_set(dev: "Device", args: str) -> Reply:
    p = Params(args, min_count=1, max_count=1)
    link_id = p.int(0, 0, MAX_LINK_ID)
    link = dev.links.get(link_id)
    if link is not None:
        dev.remove_link(link)
        link.destroy()  # TCP closed, no close frame, no URC
    dev.link_configs.pop(link_id, None)  # WSCFG settings back to defaults
    return OK
