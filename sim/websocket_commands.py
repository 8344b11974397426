"""AT+WSCFG, AT+WSOPEN, AT+WSSEND, AT+WSCLOSE, and the later profiles' AT+WSHEAD and AT+WSDATAFMT:
parameter parsing, range checks, and the hand-off to Link. Ranges and defaults come from the spec
data (spec/websocket_at.toml) through the device, and so do the fields each command takes under
the device's profile (`spec.load().form`): a field past the profile's form is ERROR. Where the seed
is silent, spec/AMBIGUITIES.md says why the model does what it does; the later profiles follow
VERSIONS.md and the contract of issue 14."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import spec
from wire.frames import OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, RESERVED_OPCODES

from sim.link import (MAX_CONTROL_PAYLOAD, MAX_REQUEST_BYTES,
                      Link, LinkConfig, LinkState, SendResult, parse_uri)
from sim.params import ParamError, Params
from sim.replies import DATA_PROMPT, ERROR, OK, SEND_OK, DataRequest, Reply, info
from sim.ws_data import DataFormat

if TYPE_CHECKING:
    from sim.device import Device

# RFC 6455 §5.5 refusal applies to the control opcodes the seed names (close, ping, pong);
# reserved control opcodes 0xB-0xF are sent as given (BEHAVIOUR.md "Sending").
SIZE_CHECKED_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)
NUMBER_OF_LINKS = spec.load().bounds("AT+WSOPEN", "link_id")[1] + 1   # ids 0..2: three links
# AT+WSHEAD <req_header_len>: at most what the request buffer holds (the contract of issue 14).
WSHEAD_MAX_BYTES = MAX_REQUEST_BYTES


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


def _params(dev: "Device", args: str, command: str) -> Params:
    """The fields of `command` as its form under the device's profile allows: every required one,
    none past the last."""
    form = dev.profile.form(command)
    return Params(args, min_count=sum(not f.optional for f in form), max_count=len(form),
                  fw=dev.fw)


def _index(dev: "Device", command: str, name: str) -> int | None:
    """Where field `name` sits in `command`'s form under the profile; None: the profile lacks it."""
    names = dev.profile.field_names(command)
    return names.index(name) if name in names else None


# ---- AT+WSCFG ------------------------------------------------------------------------------

def wscfg_set(dev: "Device", args: str) -> Reply:
    fw = dev.fw
    if fw.wscfg_refusal_clears:
        first = args.split(",", 1)[0]
        if first.isdigit():
            dev.link_configs.pop(int(first), None)   # freed before the checks run
    p = _params(dev, args, "AT+WSCFG")
    if fw.wscfg_buffer_required and len(p.fields) < 4:
        raise ParamError("<buffer_size> required")
    link_id = _link_id(dev, p, "AT+WSCFG")
    ping_intv_sec = _int(dev, p, 1, "AT+WSCFG", "ping_intv_sec")
    ping_timeout_sec = _int(dev, p, 2, "AT+WSCFG", "ping_timeout_sec")
    buffer_size = _int(dev, p, 3, "AT+WSCFG", "buffer_size", optional=True)
    if fw.wscfg_fields_swapped:
        ping_intv_sec, ping_timeout_sec = ping_timeout_sec, ping_intv_sec
    config = LinkConfig(ping_intv_sec, ping_timeout_sec, buffer_size,
                        **_tls_fields(dev, p))
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


def _tls_fields(dev: "Device", p: Params) -> dict:
    """tls: [,<auth_mode>,<pki_number>,<ca_number>]. auth_mode 0 (or left off): no PKI or CA
    number may follow (five fields at most); 1..3: both numbers, decimal in [0,255]."""
    at = _index(dev, "AT+WSCFG", "auth_mode")
    if at is None:
        return {}
    auth_mode = _int(dev, p, at, "AT+WSCFG", "auth_mode", optional=True)
    pki_at, ca_at = _index(dev, "AT+WSCFG", "pki_number"), _index(dev, "AT+WSCFG", "ca_number")
    # 0 (or left off): no authentication. Any other mode that passed the range check takes both
    # numbers, also one that authenticates nothing (a skewed range's 4).
    if not auth_mode:
        if len(p.fields) > at + 1 and not dev.fw.wscfg_mode0_numbers_accepted:
            raise ParamError("auth_mode 0 takes no <pki_number> or <ca_number>")
        return {"auth_mode": auth_mode}
    return {"auth_mode": auth_mode,
            "pki_number": _int(dev, p, pki_at, "AT+WSCFG", "pki_number"),
            "ca_number": _int(dev, p, ca_at, "AT+WSCFG", "ca_number")}


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
    p = _params(dev, args, "AT+WSOPEN")
    link_id = _link_id(dev, p, "AT+WSOPEN")
    uri = p.str(1)
    subprotocol = p.str(2, default="")
    auth_at = _index(dev, "AT+WSOPEN", "auth")
    auth = "" if auth_at is None else p.str(auth_at, default="")    # auth: a quoted string
    if fw.empty_timeout_refused and len(p.fields) > 3 and not p.is_present(3):
        raise ParamError("KD-1: an empty <timeout_ms> is refused")
    timeout_ms = _int(dev, p, 3, "AT+WSOPEN", "timeout_ms", optional=True)
    if dev.id_busy(link_id):
        return ERROR                             # (defect) the last close is still running
    existing = dev.links.get(link_id)
    if existing is not None and existing.state != LinkState.UNKNOWN:
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
    link = Link(dev, link_id, uri, ws_uri, subprotocol, config, timeout_ms, auth=auth)
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
        return ERROR                             # still listed, its client retrying
    dev.remove_link(link)
    if dev.fw.failed_open_retries:               # (defect) gone from the table, still retrying
        dev.orphans.append(link)
    else:
        await link.stop_after_failed_open()
    return ERROR


# ---- AT+WSSEND -----------------------------------------------------------------------------

def wssend_set(dev: "Device", args: str) -> Reply:
    fw = dev.fw
    p = _params(dev, args, "AT+WSSEND")
    link_id = _link_id(dev, p, "AT+WSSEND")
    lo, hi = dev.bounds("AT+WSSEND", "length")
    length = p.int(1, 0, hi)                     # 0 parses; it is refused below
    opcode = _int(dev, p, 2, "AT+WSSEND", "opcode", optional=True)
    timeout_ms = _int(dev, p, 3, "AT+WSSEND", "timeout_ms", optional=True)
    fin_at = _index(dev, "AT+WSSEND", "fin")
    fin = bool(dev.default("AT+WSSEND", "fin") if fin_at is None
               else _int(dev, p, fin_at, "AT+WSSEND", "fin", optional=True))
    empty_frame = (length == 0 and dev.profile.wssend_length0_sends_empty
                   and not fw.length_zero_refused and not fw.length_zero_prompts)
    if length < lo and not fw.length_zero_prompts and not empty_frame:
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
        if fw.continuation_fin_drops_data and opcode == OP_CONTINUATION and fin:
            return ERROR                         # KD-12: the data is dropped
        result = await link.send(payload, opcode, timeout_ms, fin)
        if result is SendResult.DISRUPTED:
            if fw.reboot_on_send_disrupted:
                dev.crash("connection lost during a send")
                return b""
            return SEND_OK if fw.send_ok_when_disrupted else ERROR
        return SEND_OK if result is SendResult.SENT else ERROR

    if empty_frame:
        return on_data(b"")                      # current: no prompt, one empty frame, SEND OK
    return DataRequest(max(0, length - fw.data_mode_short_by), on_data, prompt=fw.prompt)


# ---- AT+WSCLOSE ----------------------------------------------------------------------------

def wsclose_set(dev: "Device", args: str) -> Reply:
    fw = dev.fw
    p = _params(dev, args, "AT+WSCLOSE")
    link_id = _link_id(dev, p, "AT+WSCLOSE")
    if fw.wsdatafmt_reset_by_wsclose:
        dev.data_formats.pop(link_id, None)      # (defect) AT+WSCLOSE leaves it alone
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
        await link.close(keep_tcp=fw.wsclose_keeps_tcp)  # TCP closed, no close frame, no URC
        if fw.wsclose_keeps_tcp:
            dev.abandoned.append(link)           # its socket stays open, as a leak does
    if not fw.wscfg_survives_wsclose:
        dev.link_configs.pop(link.link_id, None)  # WSCFG settings back to defaults
    dev.mark_id_busy(link.link_id, fw.wsclose_id_busy_s)
    if fw.wsclose_prints_closed:
        dev.emit(f"+WS_CLOSED:{link.link_id}\r\n".encode())
    return OK


# ---- AT+WSHEAD (profile wshead) ----------------------------------------------------------------

def wshead_query(dev: "Device", args: str) -> Reply:
    """One `+WSHEAD:<index>,"<key>:<value>"` per stored header, in the order set, then OK."""
    joiner = ": " if dev.fw.wshead_query_space else ":"
    return info(*(f'+WSHEAD:{index},"{key}{joiner}{value}"'
                  for index, (key, value) in enumerate(dev.ws_headers)))


def wshead_set(dev: "Device", args: str) -> Reply:
    """=0: every header cleared, OK, no prompt. =n (1..1023): the data prompt, exactly n bytes of
    `key: value`, then OK, or ERROR (nothing stored) for CR or LF, no colon, or an empty key."""
    fw = dev.fw
    p = _params(dev, args, "AT+WSHEAD")
    length = p.int(0, 0, WSHEAD_MAX_BYTES)
    if length == 0:
        if not fw.wshead_clear_ignored:
            dev.ws_headers.clear()
        return OK

    async def on_data(data: bytes) -> bytes:
        header = _header(data, fw.wshead_crlf_accepted)
        if header is None:
            return ERROR
        dev.ws_headers.append(header)
        return OK

    return DataRequest(max(0, length - fw.wshead_short_by), on_data, prompt=DATA_PROMPT)


def _header(data: bytes, crlf_accepted: bool) -> tuple[str, str] | None:
    """(key, value) of `key: value` (the spaces after the colon dropped); None when refused."""
    if (b"\r" in data or b"\n" in data) and not crlf_accepted:
        return None
    key, colon, value = data.decode("latin-1").partition(":")
    if not colon or not key:
        return None
    return key, value.lstrip(" ")


# ---- AT+WSDATAFMT (profile current) ------------------------------------------------------------

def wsdatafmt_set(dev: "Device", args: str) -> Reply:
    """AT+WSDATAFMT=<link_id>,<meta_data_level>,<meta_data_mask>: all three, per link id."""
    p = _params(dev, args, "AT+WSDATAFMT")
    link_id = _link_id(dev, p, "AT+WSDATAFMT")
    level = _int(dev, p, 1, "AT+WSDATAFMT", "meta_data_level")
    mask = _int(dev, p, 2, "AT+WSDATAFMT", "meta_data_mask")
    dev.data_formats[link_id] = DataFormat(level=level, mask=mask)
    return OK
