"""Every point where the modelled firmware can behave differently, as one record of typed knobs.

The defaults are the seed-conforming model. A named defect (sim/defects.py) is a set of overrides
of these fields; the model reads the field where the behaviour lives (`self.fw.connected_after_ok`),
so a defect is data, and an unknown knob fails at import, never silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sim.replies import DATA_PROMPT


@dataclass(frozen=True)
class Behaviour:
    # ---- AT parameter syntax (sim/params.py, sim/device.py) -----------------------------------
    # (command, param, added to the spec's min, added to its max): an off-by-one range check.
    range_skew: tuple[tuple[str, str, int, int], ...] = ()
    # Commands that take a link id past the last one modulo the number of links (an array index).
    link_id_wraps: tuple[str, ...] = ()
    hex_numbers: bool = False             # "0x10" read as 16
    numbers_wrap_32bit: bool = False      # a number past 2**32 wraps around (atoi into uint32)
    extra_fields_ignored: bool = False    # fields past the last one are dropped, not refused
    unquoted_strings: bool = False        # a bare token is taken where a quoted string belongs
    empty_optional_is_zero: bool = False  # an empty optional field reads as 0, not the default
    escapes_kept: bool = False            # "\," stays backslash-comma inside a quoted string
    command_line_max: int | None = None   # None: the spec's 256 bytes
    long_line_truncated: bool = False     # a longer line runs cut to the limit instead of ERROR
    # (command, param, value): a default that differs from the spec's.
    default_overrides: tuple[tuple[str, str, int], ...] = ()

    # ---- AT+WSCFG -------------------------------------------------------------------------------
    buffer_size_cap: int | None = None    # <buffer_size> refused above this (current: 8192)
    wscfg_mode0_numbers_accepted: bool = False  # tls: auth_mode 0 with PKI/CA numbers is OK
    wscfg_buffer_required: bool = False   # the optional <buffer_size> is required
    wscfg_prints_settings: bool = False   # an info line +WSCFG:... before OK
    wscfg_fields_swapped: bool = False    # ping interval and pong timeout stored swapped
    wscfg_applies_to_live_link: bool = False
    wscfg_global: bool = False            # one configuration shared by every link id
    wscfg_refusal_clears: bool = False    # the old configuration is freed before the checks
    wscfg_survives_wsclose: bool = False
    wscfg_survives_server_close: bool = False

    # ---- AT+WSHEAD (wshead) ------------------------------------------------------------------------
    wshead_clear_ignored: bool = False    # AT+WSHEAD=0 answers OK and keeps every header
    wshead_crlf_accepted: bool = False    # a header holding CR or LF is stored
    wshead_not_on_reconnect: bool = False  # a reconnect's handshake leaves the headers off
    wshead_query_space: bool = False      # AT+WSHEAD? prints "key: value", not "key:value"
    wshead_short_by: int = 0              # data mode takes <req_header_len> minus this many bytes

    # ---- AT+WSOPEN? ---------------------------------------------------------------------------
    query_lists_free_slots: bool = False  # +WSOPEN:<id>,0,"" for every id with no link
    query_uri_unquoted: bool = False
    # (actual state, state printed): the query reports a stale or wrong state.
    state_shown_as: tuple[tuple[int, int], ...] = ()

    # ---- AT+WSOPEN ------------------------------------------------------------------------------
    connected_after_ok: bool = False
    connected_urc_twice: bool = False
    failed_open_keeps_link: bool = False  # the link stays listed (state 3) and retries
    failed_open_retries: bool = False     # not listed, but a client retries in the background
    open_replaces_live_link: bool = False
    max_links: int | None = None          # None: three
    request_drops_query: bool = False
    empty_path_target: bool = False       # ws://h:p?x=1 requests "?x=1", not "/?x=1"
    host_without_port: bool = False
    wss_without_tls: bool = False
    subprotocol_not_sent: bool = False
    open_timeout_ignored: bool = False    # the default applies whatever <timeout_ms> says
    header_names_case_sensitive: bool = False
    empty_timeout_refused: bool = False   # KD-1's second half: an empty <timeout_ms> is ERROR
    teardown_blocks: bool = False         # KD-2: a stop waits for the library's loop pass to end
    handshake_accept_key_only: bool = False  # KD-7
    handshake_buffer: int | None = None   # KD-9: response bytes the first reads may hold (1023)
    data_after_handshake_held: bool = False  # KD-6
    auth_header_dropped: bool = False     # auth: <auth> parsed, no Authorization header sent
    auth_header_lowercase: bool = False   # the header goes out as "authorization: ..."
    auth_after_wshead: bool = False       # Authorization after the AT+WSHEAD headers
    tls_host_not_checked: bool = False    # KD-8: with a CA the chain is checked, the name is not
    tls_ca_not_checked: bool = False      # auth_mode 2/3 accept any server chain
    tls_client_cert_not_sent: bool = False  # auth_mode 1/3 present no client certificate

    # ---- AT+WSSEND -------------------------------------------------------------------------------
    prompt: bytes = DATA_PROMPT
    data_mode_short_by: int = 0           # takes <length> minus this many bytes
    sent_payload_cut: int = 0             # the frame loses this many bytes off the end
    overrun_executed: bool = False        # bytes past <length> run as commands after the send
    length_zero_prompts: bool = False     # length 0 shows the prompt and waits for data
    send_ok_when_waiting: bool = False    # state 1/3: prompt, data taken, SEND OK, nothing sent
    send_ok_when_disrupted: bool = False  # SEND OK although the connection broke during the send
    reboot_on_send_disrupted: bool = False
    send_timeout_ignored: bool = False    # the send waits as long as the default allows
    reserved_opcodes_refused: bool = False
    control_frame_size_unchecked: bool = False  # KD-10
    close_frame_keeps_link: bool = False  # KD-5
    mask_key_fixed: bool = False          # one masking key for every frame
    fragments_all_fin: bool = False       # every fragment has FIN and the message's opcode
    length_form_64_from: int | None = None  # payloads this long and longer use the 64-bit form
    fin_ignored: bool = False             # current: <fin> parsed, every frame has FIN set
    continuation_fin_drops_data: bool = False  # KD-12: opcode 0 with fin 1 sends nothing, ERROR
    length_zero_refused: bool = False     # current: <length> 0 answers ERROR as released firmware

    # ---- receiving -------------------------------------------------------------------------------
    chunk_cap: int | None = None          # reads never larger than this, whatever buffer_size
    chunk_extra: int = 0                  # reads of buffer_size plus this
    ws_data_len_extra: int = 0            # the <len> printed is this much more than the data
    ws_data_link_map: tuple[tuple[int, int], ...] = ()  # (link, id printed) in +WS_DATA
    ws_data_separator: str = ","          # between +WS_DATA's header fields
    empty_frames_dropped: bool = False
    ping_ends_fragmented_message: bool = False  # the rest of a message after a ping is dropped
    reserved_opcodes_printed: bool = False
    pongs_printed: bool = False           # a pong from the server prints +WS_DATA:<id>,0,
    text_utf8_replaced: bool = False      # invalid UTF-8 in text becomes U+FFFD
    text_bom_stripped: bool = False       # a leading U+FEFF is dropped from a text message
    server_ping_urc: bool = False         # +WS_PING:<id>,<len> for every server ping
    pong_payload_cut: bool = False        # a ping longer than buffer_size gets a pong cut to it
    pong_payload_overread: bool = False   # KD-11: that pong is the receive buffer read past its end
    # RFC 6455 rules the library does not enforce on what the server sends (traces, SUMMARY.md):
    rsv_ignored: bool = False             # KD-13: RSV bits with no extension
    reserved_opcodes_accepted: bool = False  # KD-14: reserved opcodes 3-7, 0xB-0xF
    masked_server_frames_accepted: bool = False  # KD-15: unmasked per read from the key's start
    masked_empty_frame_desync: bool = False  # KD-15: a masked empty frame's key is read as a frame
    control_frame_checks_skipped: bool = False  # KD-16: fragmented or oversized control frames
    orphan_continuation_accepted: bool = False  # KD-17: continuations with no message, and
    #                                             new messages inside a fragmented one
    invalid_utf8_accepted: bool = False   # KD-18: text messages that are not UTF-8
    close_body_unchecked: bool = False    # KD-19: 1-byte close bodies, codes 1005/1006/...,
    #                                       reasons that are not UTF-8
    # The x86-64 host build of the traces reads the 64-bit length's last byte as a signed char
    # (TWS:553); an ESP32 build does not. Set by the replay of those traces only.
    length64_sign_extended: bool = False
    pong_empty: bool = False
    pong_unmasked: bool = False
    stale_fragment_after_reconnect: bool = False
    wsdatafmt_reset_by_wsclose: bool = False  # current: AT+WSCLOSE resets the link's data format
    wsdatafmt_kept_on_reset: bool = False  # the formats survive a restart (kept as if in flash)
    wsdatafmt_offset_from_message: bool = False  # level 0 payload_offset counts from the message
    wsdatafmt_crlf_always: bool = False   # mask bit 5 ignored: every +WS_DATA ends in CR-LF

    # ---- the library's task loop (sim/client.py; esp_websocket_client 1.2.3 vs 1.8.0) -----------
    reconnect_waits_in_halves: bool = False  # 1.2.3: sleeps half the wait per pass, reconnects
    #                                          when MORE than the wait passed (1.5 x, mostly)

    # ---- keepalive --------------------------------------------------------------------------------
    ping_clock_restarts_on_data: bool = False  # KD-4
    pong_clock_restarts_each_ping: bool = False
    pong_timeout_sends_close: bool = False
    pong_timeout_urc: str = "+WS_DISCONNECTED"
    pings_off_after_reconnect: bool = False

    # ---- closing -------------------------------------------------------------------------------------
    wsclose_keeps_tcp: bool = False       # the link is forgotten but its TCP stays open
    wsclose_sends_close_frame: bool = False
    wsclose_prints_closed: bool = False
    wsclose_answer_delay_s: float = 0.0
    wsclose_waits_reconnect: bool = False  # in state 3 OK comes when the reconnect wait ends
    wsclose_leaves_reconnect: bool = False  # in state 3 the client keeps going after OK
    wsclose_unused_resets_all: bool = False  # WSCLOSE of an id with no link frees every WSCFG
    wsclose_id_busy_s: float = 0.0        # the id refuses AT+WSOPEN this long after WSCLOSE
    close_reply_payload: bytes | None = b""  # None: the server's close frame gets no reply
    close_waits_forever: bool = False     # after a server close, TCP only ends when the server ends it
    closed_link_removed_at_once: bool = False  # KD-3
    reconnect_after_server_close: bool = False
    disconnected_after_closed: bool = False

    # ---- lost connections ----------------------------------------------------------------------------
    lost_connection_silent: bool = False
    disconnected_urc_twice: bool = False
    reconnect_drops_query: bool = False

    # ---- heap (AT+SYSRAM?) -----------------------------------------------------------------------------
    heap_leak_per_close: int = 0          # bytes lost each time an established link ends
    heap_leak_per_failed_open: int = 0

    # Timing values (sim/timing.py field: value) a defect changes.
    timing: tuple[tuple[str, float], ...] = field(default=())

    def shown_state(self, state: int) -> int:
        return dict(self.state_shown_as).get(state, state)

    def printed_link_id(self, link_id: int) -> int:
        return dict(self.ws_data_link_map).get(link_id, link_id)


CONFORMING = Behaviour()
