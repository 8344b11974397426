"""AT+WSCFG, AT+WSOPEN, AT+WSSEND, AT+WSCLOSE: parameter parsing, range checks, and the hand-off
to Link. Ranges and defaults come from the spec data (spec/websocket_at.toml) through the device;
where the seed is silent, spec/AMBIGUITIES.md says why the model does what it does."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import spec
from wire.frames import OP_CLOSE, OP_PING, OP_PONG

from sim.link import MAX_CONTROL_PAYLOAD, Link, LinkConfig, LinkState, SendResult, parse_uri
from sim.params import ParamError, Params
from sim.replies import ERROR, OK, SEND_OK, DataRequest, Reply, info

if TYPE_CHECKING:
    from sim.device import Device

# RFC 6455 §5.5 refusal applies to the control opcodes the seed names (close, ping, pong);
# reserved control opcodes 0xB-0xF are sent as given (BEHAVIOUR.md "Sending").
SIZE_CHECKED_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)
RESERVED_OPCODES = tuple(range(0x3, 0x8)) + tuple(range(0xB, 0x10))
NUMBER_OF_LINKS = spec.load().bounds("AT+WSOPEN", "link_id")[1] + 1   # ids 0..2: three links


def _int(dev: "Device", p: Params, index: int, command: str, name: str,
         optional: bool = False) -> int:
    """Field `index` as the parameter `name` of `command`: its range, and its default if optional."""
    lo, hi = dev.bounds(command, name)
    return p.int(index, lo, hi, default=dev.default(command, name) if optional else None)


def _link_id(dev: "Device", p: Params, command: str) -> int:
    link_id = _int(dev, p, 0, command, "link_id")
    if command in dev.fw.link_id_wraps:
        link_id %= NUMBER_OF_LINKS               # (defect) an array index past its end
    return link_id


def _params(dev: "Device", args: str, min_count: int, max_count: int) -> Params:
    return Params(args, min_count=min_count, max_count=max_count, fw=dev.fw)


# ---- AT+WSCFG ------------------------------------------------------------------------------

def wscfg_set(dev: "Device", args: str) -> Reply:
    fw = dev.fw
    if fw.wscfg_refusal_clears:
        first = args.split(",", 1)[0]
        if first.isdigit():
            dev.link_configs.pop(int(first), None)   # freed before the checks run
    p = _params(dev, args, 3, 4)
    if fw.wscfg_buffer_required and len(p.fields) < 4:
        raise ParamError("<buffer_size> required")
    link_id = _link_id(dev, p, "AT+WSCFG")
    ping_intv_sec = _int(dev, p, 1, "AT+WSCFG", "ping_intv_sec")
    ping_timeout_sec = _int(dev, p, 2, "AT+WSCFG", "ping_timeout_sec")
    buffer_size = _int(dev, p, 3, "AT+WSCFG", "buffer_size", optional=True)
    if fw.wscfg_fields_swapped:
        ping_intv_sec, ping_timeout_sec = ping_timeout_sec, ping_intv_sec
    config = LinkConfig(ping_intv_sec, ping_timeout_sec, buffer_size)
    live = dev.links.get(link_id)
    if live is not None and fw.wscfg_applies_to_live_link:
        live.config = config
    if fw.wscfg_global:
        for any_id in range(NUMBER_OF_LINKS):
            dev.link_configs[any_id] = config
    else:
        # Stored for the next AT+WSOPEN of this id; a live link keeps the values it was opened
        # with (seed: "configured before AT+WSOPEN ... otherwise it will not take effect").
        dev.link_configs[link_id] = config
    if fw.wscfg_prints_settings:
        return info(f"+WSCFG:{link_id},{ping_intv_sec},{ping_timeout_sec},{buffer_size}")
    return OK


# ---- AT+WSOPEN -----------------------------------------------------------------------------

def wsopen_query(dev: "Device", args: str) -> Reply:
    lines = []
    for link_id in range(NUMBER_OF_LINKS):
        link = dev.links.get(link_id)
        if link is None:
            if dev.fw.query_lists_free_slots:
                lines.append(f'+WSOPEN:{link_id},0,""')
            continue
        uri = link.uri if dev.fw.query_uri_unquoted else f'"{link.uri}"'
        lines.append(f"+WSOPEN:{link_id},{link.shown_state},{uri}")
    return info(*lines)


def wsopen_set(dev: "Device", args: str) -> Reply:
    fw = dev.fw
    p = _params(dev, args, 2, 4)
    link_id = _link_id(dev, p, "AT+WSOPEN")
    uri = p.str(1)
    subprotocol = p.str(2, default="")
    if fw.empty_timeout_refused and len(p.fields) == 4 and not p.is_present(3):
        raise ParamError("KD-1: an empty <timeout_ms> is refused")
    timeout_ms = _int(dev, p, 3, "AT+WSOPEN", "timeout_ms", optional=True)
    if dev.id_busy(link_id):
        return ERROR                             # (defect) the last close is still running
    existing = dev.links.get(link_id)
    if existing is not None and existing.state != LinkState.CLOSED:
        if not fw.open_replaces_live_link:
            return ERROR                         # "ws:%d already established"
    if fw.max_links is not None and existing is None and len(dev.links) >= fw.max_links:
        return ERROR
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
        if dev.fw.connected_after_ok:
            return OK + f"+WS_CONNECTED:{link.link_id}\r\n".encode()
        return OK  # +WS_CONNECTED was printed by the link, before this OK
    if link.destroyed:
        return ERROR
    dev.heap.leak(dev.fw.heap_leak_per_failed_open)
    if dev.fw.failed_open_keeps_link:
        link.start_retrying()                    # still listed, retrying
        return ERROR
    dev.remove_link(link)
    if dev.fw.failed_open_retries:
        link.start_retrying()                    # gone from the table, not from the task list
    else:
        link.destroy()
    return ERROR


# ---- AT+WSSEND -----------------------------------------------------------------------------

def wssend_set(dev: "Device", args: str) -> Reply:
    fw = dev.fw
    p = _params(dev, args, 2, 4)
    link_id = _link_id(dev, p, "AT+WSSEND")
    lo, hi = dev.bounds("AT+WSSEND", "length")
    length = p.int(1, 0, hi)                     # 0 parses; it is refused below
    opcode = _int(dev, p, 2, "AT+WSSEND", "opcode", optional=True)
    timeout_ms = _int(dev, p, 3, "AT+WSSEND", "timeout_ms", optional=True)
    if length < lo and not fw.length_zero_prompts:
        return ERROR  # released firmware: ERROR, no prompt
    if fw.reserved_opcodes_refused and opcode in RESERVED_OPCODES:
        return ERROR
    if (opcode in SIZE_CHECKED_CONTROL_OPCODES and length > MAX_CONTROL_PAYLOAD
            and not fw.control_frame_size_unchecked):
        return ERROR  # RFC 6455 §5.5: refused before the prompt, nothing sent
    link = dev.links.get(link_id)
    waiting = link is not None and link.reconnecting
    if link is None or not (link.can_send or (waiting and fw.send_ok_when_waiting)):
        return ERROR  # not connected: ERROR before the prompt

    async def on_data(payload: bytes) -> bytes:
        if dev.links.get(link_id) is not link:
            return ERROR
        if waiting:
            return SEND_OK                       # (defect) nothing was sent
        result = await link.send(payload, opcode, timeout_ms)
        if result is SendResult.DISRUPTED:
            if fw.reboot_on_send_disrupted:
                dev.crash("connection lost during a send")
                return b""
            return SEND_OK if fw.send_ok_when_disrupted else ERROR
        return SEND_OK if result is SendResult.SENT else ERROR

    return DataRequest(max(0, length - fw.data_mode_short_by), on_data, prompt=fw.prompt)


# ---- AT+WSCLOSE ----------------------------------------------------------------------------

def wsclose_set(dev: "Device", args: str) -> Reply:
    fw = dev.fw
    p = _params(dev, args, 1, 1)
    link_id = _link_id(dev, p, "AT+WSCLOSE")
    link = dev.links.get(link_id)
    if link is None:
        if fw.wsclose_unused_resets_all:
            dev.link_configs.clear()
        else:
            dev.link_configs.pop(link_id, None)  # WSCFG settings back to defaults
        return OK
    return _close(dev, link)


async def _close(dev: "Device", link: Link) -> bytes:
    fw = dev.fw
    waiting = link.reconnecting
    if waiting and fw.wsclose_waits_reconnect and link.wait_ends_at is not None:
        await asyncio.sleep(max(0.0, link.wait_ends_at - asyncio.get_running_loop().time()))
    elif not waiting and fw.wsclose_answer_delay_s:
        await asyncio.sleep(fw.wsclose_answer_delay_s)
    dev.remove_link(link)
    if waiting and fw.wsclose_leaves_reconnect:
        pass                                     # the client task lives on
    else:
        if fw.wsclose_sends_close_frame:
            link.send_close_frame(1000)
        link.destroy(keep_tcp=fw.wsclose_keeps_tcp)  # TCP closed, no close frame, no URC
        if fw.wsclose_keeps_tcp:
            dev.abandoned.append(link)           # its socket stays open, as a leak does
    if not fw.wscfg_survives_wsclose:
        dev.link_configs.pop(link.link_id, None)  # WSCFG settings back to defaults
    dev.mark_id_busy(link.link_id, fw.wsclose_id_busy_s)
    if fw.wsclose_prints_closed:
        dev.emit(f"+WS_CLOSED:{link.link_id}\r\n".encode())
    return OK
