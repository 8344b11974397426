"""The catalog of firmware defects the model can show, to measure the suite's detection power.

Each defect is data: a name, the clause(s) of spec/websocket_at.toml it breaks (the first is the one
the suite should catch it under), the known deviation of BEHAVIOUR.md when it is one, one line of
description, and the Behaviour knobs (sim/behaviour.py) it changes. `behaviour_for` turns a set of
names into the Behaviour a Device runs on; an unknown name is a ValueError, never a silent no-op.
A known deviation's id (KD-4) also names its defect.

A defect belongs to the profile of its first clause (`Defect.profile`): its knobs act on what that
profile brought (AT+WSHEAD, <auth>, TLS modes, <fin>, AT+WSDATAFMT), so a model of an earlier
profile refuses it (`check_profile`) instead of running it as a no-op. `--firmware shipping` is
the known deviations of the model's profile (`firmware_defects`): on the seed KD-1..KD-11 but
KD-8 (tls) and KD-12 (current).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import spec
from sim.behaviour import CONFORMING, Behaviour
from sim.library import SHIPPED, library

_KNOBS = {f.name: f for f in dataclasses.fields(Behaviour)}


@dataclass(frozen=True, eq=False)
class Defect:
    name: str
    clauses: tuple[str, ...]
    description: str
    changes: dict[str, Any] = field(default_factory=dict)
    kd: str | None = None            # the BEHAVIOUR.md known-deviation id, when it is one
    # Its effect shows only after a spec timer of 10 s or more (a reconnect wait): the fast part
    # of the mutation run leaves it to the full one.
    needs_slow_test: bool = False

    @property
    def clause(self) -> str:
        return self.clauses[0]

    @property
    def profile(self) -> str:
        """The profile it belongs to: that of its first clause (the model must have it)."""
        return spec.load().clauses[self.clause].profile

    def __post_init__(self) -> None:
        unknown = [k for k in self.changes if k not in _KNOBS]
        if unknown:
            raise ValueError(f"defect {self.name}: unknown Behaviour knob(s) {unknown}")


def _d(name: str, clauses: str | tuple[str, ...], description: str, kd: str | None = None,
       needs_slow_test: bool = False, **changes: Any) -> Defect:
    return Defect(name, (clauses,) if isinstance(clauses, str) else clauses, description,
                  changes, kd, needs_slow_test)


_CATALOG = (
    # ---- known deviations of shipping ESP-AT (BEHAVIOUR.md), with the firmware's bytes and timing
    _d("timeout-zero-refused", "WSOPEN.timeout_ms.range",
       "AT+WSOPEN <timeout_ms> checked as [1,180000]: 0 or an empty field answers ERROR", "KD-1",
       range_skew=(("AT+WSOPEN", "timeout_ms", 1, 0),), empty_timeout_refused=True),
    _d("teardown-blocks", ("WSOPEN.timeout_ms.effect", "WSOPEN.timeout_ms.default"),
       "a failed or timed-out open answers ERROR only once the library's current pass has ended: "
       "its attempt (10 s), then on 1.2.3 half its reconnect wait (5 s)", "KD-2",
       teardown_blocks=True),
    _d("closed-link-removed-at-once", "WSOPEN.state.closing",
       "AT+WSOPEN? never shows states 0 and 4: a link is removed as soon as a close frame arrives",
       "KD-3", closed_link_removed_at_once=True),
    _d("ping-clock-restarts-on-data", "WSCFG.ping_intv_sec.under_traffic",
       "the ping clock restarts whenever data is readable: no pings while the server talks",
       "KD-4", ping_clock_restarts_on_data=True),
    _d("close-frame-keeps-link", "WSSEND.close_frame",
       "after AT+WSSEND opcode 8 the link stays up (pings go on) and the server's close reply is "
       "answered with a second, empty close frame", "KD-5", close_frame_keeps_link=True),
    _d("data-after-101-held", "WSOPEN.handshake.data_after",
       "a message in the same TCP segment as the 101 is held back until new bytes arrive", "KD-6",
       data_after_handshake_held=True),
    _d("accept-key-only", ("WSOPEN.handshake.status", "WSOPEN.handshake.subprotocol_check"),
       "the handshake accepts any HTTP status with the right Sec-WebSocket-Accept and never checks "
       "Upgrade/Connection or the subprotocol the server picked", "KD-7",
       handshake_accept_key_only=True),
    _d("handshake-buffer-1023", "WSOPEN.handshake.large_response",
       "the 101 is read into a 1024-byte buffer: a response that, with the frames behind it, fills "
       "1023 bytes fails the handshake", "KD-9", handshake_buffer=1023),
    _d("control-frames-unchecked", "WSSEND.control_frame_size",
       "AT+WSSEND with opcode 8/9/10 and more than 125 bytes sends it as given (oversized), and "
       "any control frame longer than buffer_size fragmented", "KD-10",
       control_frame_size_unchecked=True),
    _d("pong-from-receive-buffer", "PING.server.large",
       "a server ping longer than buffer_size is answered with its full length built from the "
       "receive buffer: the last read over the earlier ones, then bytes past the buffer's end",
       "KD-11", pong_payload_overread=True),
    _d("rsv-bits-ignored", "RECV.rsv",
       "a server frame with RSV bits set (no extension) is delivered, the connection kept",
       "KD-13", rsv_ignored=True),
    _d("reserved-opcodes-accepted", "RECV.reserved_opcode",
       "a server frame with a reserved opcode is passed on (and not printed), the connection "
       "kept", "KD-14", reserved_opcodes_accepted=True),
    _d("masked-server-frames-accepted", "RECV.masked",
       "a masked server frame is unmasked and delivered (each read from the key's first byte); "
       "a masked empty frame's key is read as the next frame", "KD-15",
       masked_server_frames_accepted=True, masked_empty_frame_desync=True),
    _d("control-frame-checks-skipped", "RECV.control_frame",
       "a fragmented or oversized (over 125 bytes) control frame from the server is taken: a ping "
       "answered, its continuation delivered as data", "KD-16",
       control_frame_checks_skipped=True),
    _d("orphan-continuation-accepted", "RECV.continuation",
       "a continuation frame with no message to continue (or a new message inside a fragmented "
       "one) is delivered as data", "KD-17", orphan_continuation_accepted=True),
    _d("invalid-utf8-accepted", "RECV.utf8",
       "a text message that is not UTF-8 is delivered, the connection kept", "KD-18",
       invalid_utf8_accepted=True),
    _d("close-body-unchecked", "CLOSE.server.body",
       "a server close frame with a 1-byte body, a status code no endpoint may send (1005, 1006, "
       "1015, below 1000) or a reason that is not UTF-8 is answered as a good one", "KD-19",
       close_body_unchecked=True),
    _d("wsclose-blocks-during-reconnect", "WSCLOSE.waiting",
       "AT+WSCLOSE of a link whose reconnect attempt hangs answers only once the attempt (10 s) "
       "and, on 1.2.3, half a reconnect wait (5 s) have ended", "KD-20", needs_slow_test=True,
       teardown_blocks=True),

    # ---- AT+WSCFG
    _d("wscfg-buffer-size-required", "WSCFG.set",
       "AT+WSCFG without the optional <buffer_size> answers ERROR", wscfg_buffer_required=True),
    _d("wscfg-prints-settings", "WSCFG.set",
       "AT+WSCFG prints +WSCFG:<id>,<intv>,<timeout>,<buffer> before its OK",
       wscfg_prints_settings=True),
    _d("buffer-capped-at-1024", ("WSCFG.example", "WSCFG.buffer_size.effect"),
       "reads are never larger than 1024 bytes whatever buffer_size says", chunk_cap=1024),
    _d("wscfg-link-id-accepts-3", "WSCFG.link_id.range",
       "AT+WSCFG checks <link_id> as [0,3]", range_skew=(("AT+WSCFG", "link_id", 0, 1),)),
    _d("wscfg-ping-interval-accepts-0", "WSCFG.ping_intv_sec.range",
       "AT+WSCFG checks <ping_intv_sec> as [0,7200]",
       range_skew=(("AT+WSCFG", "ping_intv_sec", -1, 0),)),
    _d("wscfg-ping-fields-swapped", "WSCFG.ping_intv_sec.effect",
       "AT+WSCFG stores <ping_intv_sec> and <ping_timeout_sec> swapped", wscfg_fields_swapped=True),
    _d("default-ping-interval-5", "WSCFG.ping_intv_sec.default",
       "with no AT+WSCFG a link pings every 5 s", default_overrides=(("AT+WSCFG", "ping_intv_sec", 5),)),
    _d("wscfg-ping-timeout-accepts-7201", "WSCFG.ping_timeout_sec.range",
       "AT+WSCFG checks <ping_timeout_sec> as [1,7201]",
       range_skew=(("AT+WSCFG", "ping_timeout_sec", 0, 1),)),
    _d("pong-clock-restarts-each-ping", "WSCFG.ping_timeout_sec.effect",
       "every ping restarts the pong clock: with pings more often than the timeout it never fires",
       pong_clock_restarts_each_ping=True),
    _d("pong-timeout-sends-close", "WSCFG.ping_timeout_sec.effect",
       "a pong timeout sends a close frame (1001) before dropping TCP", pong_timeout_sends_close=True),
    _d("default-pong-timeout-60", "WSCFG.ping_timeout_sec.default",
       "with no AT+WSCFG the pong timeout is 60 s",
       default_overrides=(("AT+WSCFG", "ping_timeout_sec", 60),)),
    _d("wscfg-buffer-size-refuses-max", "WSCFG.buffer_size.range",
       "AT+WSCFG checks <buffer_size> as [1,8191]",
       range_skew=(("AT+WSCFG", "buffer_size", 0, -1),)),
    _d("chunk-one-past-buffer-size", "WSCFG.buffer_size.effect",
       "reads take buffer_size + 1 bytes (the terminator's byte counted as data)", chunk_extra=1),
    _d("default-buffer-size-512", "WSCFG.buffer_size.default",
       "with no AT+WSCFG (or <buffer_size> left off) the buffer is 512 bytes",
       default_overrides=(("AT+WSCFG", "buffer_size", 512),)),
    _d("wscfg-applies-to-live-link", "WSCFG.before_open",
       "AT+WSCFG on an open link changes its buffer at once", wscfg_applies_to_live_link=True),
    _d("wscfg-shared-by-all-links", "WSCFG.per_link",
       "one configuration for all links: AT+WSCFG of any id sets every id", wscfg_global=True),
    _d("wscfg-refusal-clears-config", "WSCFG.refused_keeps",
       "a refused AT+WSCFG has already freed the link's configuration: defaults apply",
       wscfg_refusal_clears=True),
    _d("wscfg-survives-wsclose", "WSCFG.reset_on_close",
       "AT+WSCLOSE keeps the link's AT+WSCFG settings for the next open", wscfg_survives_wsclose=True),
    _d("wscfg-survives-server-close", "WSCFG.reset_on_close",
       "a close frame from the server keeps the link's AT+WSCFG settings",
       wscfg_survives_server_close=True),

    # ---- AT+WSOPEN? and states
    _d("query-lists-free-slots", "WSOPEN.query.none",
       'AT+WSOPEN? prints +WSOPEN:<id>,0,"" for every id with no link', query_lists_free_slots=True),
    _d("query-uri-unquoted", "WSOPEN.query.format",
       "AT+WSOPEN? prints the URI without its quotes", query_uri_unquoted=True),
    _d("state-established-shown-as-1", "WSOPEN.state.established",
       "AT+WSOPEN? shows an established link as state 1", state_shown_as=((2, 1),)),
    _d("state-waiting-shown-as-2", "WSOPEN.state.wait_reconnect",
       "AT+WSOPEN? shows a link waiting to reconnect as state 2", state_shown_as=((3, 2),)),
    _d("state-reconnecting-shown-as-3", "WSOPEN.state.reconnecting",
       "AT+WSOPEN? shows a reconnecting link as state 3", state_shown_as=((1, 3),)),
    _d("state-closing-shown-as-2", "WSOPEN.state.closing",
       "AT+WSOPEN? shows a closing link as state 2", state_shown_as=((4, 2),)),
    _d("state-closed-shown-as-2", "WSOPEN.state.closed",
       "AT+WSOPEN? shows a closed link as state 2 until it is removed", state_shown_as=((0, 2),)),

    # ---- AT+WSOPEN
    _d("connected-after-ok", "WSOPEN.set.connected",
       "+WS_CONNECTED:<id> is printed after AT+WSOPEN's OK", connected_after_ok=True),
    _d("connected-urc-twice", "WSOPEN.set.connected",
       "+WS_CONNECTED:<id> is printed twice", connected_urc_twice=True),
    _d("failed-open-keeps-link", "WSOPEN.set.error",
       "a failed AT+WSOPEN leaves the link listed in state 3, retrying", failed_open_keeps_link=True),
    _d("failed-open-retries-in-background", "WSOPEN.failed.quiet",
       "after a failed AT+WSOPEN a client keeps retrying every reconnect wait, printing "
       "+WS_DISCONNECTED", failed_open_retries=True),
    _d("open-replaces-live-link", "WSOPEN.set.already_open",
       "AT+WSOPEN on an open id drops its connection and opens the new one",
       open_replaces_live_link=True),
    _d("wsopen-link-id-3-opens-link-0", "WSOPEN.link_id.range",
       "AT+WSOPEN takes <link_id> 3 and opens link 0 (the index wraps)",
       range_skew=(("AT+WSOPEN", "link_id", 0, 1),), link_id_wraps=("AT+WSOPEN",)),
    _d("links-max-two", "WSOPEN.links.three",
       "a third link answers ERROR: the client pool holds two", max_links=2),
    _d("ws-data-link-ids-crossed", "WSOPEN.links.three",
       "+WS_DATA of link 2 is printed with link id 1", ws_data_link_map=((2, 1),)),
    _d("request-drops-query", "WSOPEN.uri.request",
       "the request target loses the URI's query", request_drops_query=True),
    _d("empty-path-target", "WSOPEN.uri.request",
       "a URI with no path requests an empty path (GET ?x=1)", empty_path_target=True),
    _d("host-without-port", "WSOPEN.uri.request",
       "the Host header leaves the port off", host_without_port=True),
    _d("wss-without-tls", "WSOPEN.uri.wss",
       "a wss:// URI is connected without TLS", wss_without_tls=True),
    _d("subprotocol-not-sent", "WSOPEN.subprotocol",
       "<subprotocol> is parsed but never sent", subprotocol_not_sent=True),
    _d("wsopen-timeout-refuses-max", "WSOPEN.timeout_ms.range",
       "AT+WSOPEN checks <timeout_ms> as [0,179999]",
       range_skew=(("AT+WSOPEN", "timeout_ms", 0, -1),)),
    _d("open-timeout-ignored", "WSOPEN.timeout_ms.effect",
       "<timeout_ms> is parsed but the open always waits the default 15 s",
       open_timeout_ignored=True),
    _d("default-open-timeout-5000", "WSOPEN.timeout_ms.default",
       "with no <timeout_ms> the open gives up after 5 s",
       default_overrides=(("AT+WSOPEN", "timeout_ms", 5000),)),
    _d("header-names-case-sensitive", "WSOPEN.handshake.header_case",
       "the 101's header names are matched case-sensitively", header_names_case_sensitive=True),

    # ---- reconnection
    _d("reconnect-immediately", "WSOPEN.reconnect",
       "after an abort the link reconnects after 1 s instead of about 10 s",
       timing=(("reconnect_wait_s", 1.0),)),
    _d("reconnect-drops-query", "WSOPEN.reconnect",
       "the reconnect handshake loses the URI's query", reconnect_drops_query=True),
    _d("pings-off-after-reconnect", "WSOPEN.reconnect",
       "a stale flag keeps pings off after a reconnect", pings_off_after_reconnect=True),
    _d("stale-fragment-after-reconnect", "WSOPEN.reconnect.clean",
       "the rest of a frame cut by a lost connection is taken from the next connection's bytes",
       stale_fragment_after_reconnect=True),

    # ---- AT+WSSEND
    _d("prompt-trailing-space", "WSSEND.prompt",
       "the data prompt is '> ' with a trailing space", prompt=b"\r\nOK\r\n\r\n> "),
    # The command cycle's order (esp_at/exchange.py): OK, then '>'.
    _d("prompt-before-ok", "WSSEND.prompt",
       "AT+WSSEND prints '>' before its OK", prompt=b"\r\n>\r\nOK\r\n"),
    _d("data-mode-one-byte-short", "WSSEND.prompt",
       "data mode takes <length> - 1 bytes", data_mode_short_by=1),
    _d("send-drops-last-byte", "WSSEND.send_ok",
       "the frame sent carries all but the last of the bytes taken", sent_payload_cut=1),
    _d("overrun-bytes-executed", "WSSEND.overrun",
       "bytes sent after <length> run as a command once the send ends", overrun_executed=True),
    _d("send-ok-while-waiting", "WSSEND.not_connected",
       "AT+WSSEND on a link waiting to reconnect shows the prompt and answers SEND OK, sending "
       "nothing", send_ok_when_waiting=True),
    _d("send-ok-when-disrupted", "WSSEND.disrupted",
       "a send cut by a lost connection answers SEND OK", send_ok_when_disrupted=True),
    _d("reboot-on-send-disrupted", "WSSEND.disrupted",
       "a connection lost during a send crashes the device (it reboots and prints ready)",
       reboot_on_send_disrupted=True),
    _d("wssend-link-id-3-sends-on-link-0", "WSSEND.link_id.range",
       "AT+WSSEND takes <link_id> 3 and sends on link 0 (the index wraps)",
       range_skew=(("AT+WSSEND", "link_id", 0, 1),), link_id_wraps=("AT+WSSEND",)),
    _d("wssend-length-accepts-8193", "WSSEND.length.range",
       "AT+WSSEND checks <length> against 8193", range_skew=(("AT+WSSEND", "length", 0, 1),)),
    _d("length-zero-prompts", "WSSEND.length.range",
       "AT+WSSEND with <length> 0 shows the prompt and waits for data", length_zero_prompts=True),
    _d("wssend-opcode-16-sent-as-0", "WSSEND.opcode.range",
       "AT+WSSEND checks <opcode> as [0,16]; 16 goes out as a continuation frame",
       range_skew=(("AT+WSSEND", "opcode", 0, 1),)),
    _d("default-opcode-binary", "WSSEND.opcode.default",
       "with no <opcode> the frame is binary", default_overrides=(("AT+WSSEND", "opcode", 2),)),
    _d("reserved-opcodes-refused", "WSSEND.opcode.sent",
       "AT+WSSEND refuses the reserved opcodes 3-7 and 0xB-0xF", reserved_opcodes_refused=True),
    _d("wssend-timeout-accepts-60001", "WSSEND.timeout_ms.range",
       "AT+WSSEND checks <timeout_ms> as [0,60001]",
       range_skew=(("AT+WSSEND", "timeout_ms", 0, 1),)),
    _d("send-timeout-ignored", "WSSEND.timeout_ms.effect",
       "<timeout_ms> is parsed but a stalled send waits the default 10 s", send_timeout_ignored=True),
    _d("default-send-timeout-5000", "WSSEND.timeout_ms.default",
       "with no <timeout_ms> a stalled send gives up after 5 s",
       default_overrides=(("AT+WSSEND", "timeout_ms", 5000),)),
    _d("mask-key-fixed", "WSSEND.masked",
       "every frame is masked with the same key", mask_key_fixed=True),
    _d("length-64bit-from-126", "WSSEND.length_encoding",
       "payloads of 126 bytes and more carry a 64-bit length", length_form_64_from=126),
    _d("fragments-all-fin", "WSSEND.fragmentation",
       "a send longer than buffer_size goes out as frames that each carry the opcode and FIN",
       fragments_all_fin=True),

    # ---- AT+WSCLOSE
    _d("wsclose-link-id-3-closes-link-0", "WSCLOSE.link_id.range",
       "AT+WSCLOSE takes <link_id> 3 and closes link 0 (the index wraps)",
       range_skew=(("AT+WSCLOSE", "link_id", 0, 1),), link_id_wraps=("AT+WSCLOSE",)),
    _d("wsclose-keeps-tcp", "WSCLOSE.set",
       "AT+WSCLOSE answers OK and forgets the link but leaves its TCP connection open",
       wsclose_keeps_tcp=True),
    _d("wsclose-sends-close-frame", "WSCLOSE.teardown",
       "AT+WSCLOSE sends a close frame (1000) before dropping TCP", wsclose_sends_close_frame=True),
    _d("wsclose-prints-closed", "WSCLOSE.teardown",
       "AT+WSCLOSE prints +WS_CLOSED:<id>", wsclose_prints_closed=True),
    _d("wsclose-answers-after-3s", "WSCLOSE.teardown",
       "AT+WSCLOSE of an established link answers OK after 3 s", wsclose_answer_delay_s=3.0),
    _d("wsclose-id-busy-2s", "WSCLOSE.teardown",
       "for 2 s after AT+WSCLOSE the id answers AT+WSOPEN with ERROR (destroy is asynchronous)",
       wsclose_id_busy_s=2.0),
    _d("wsclose-waits-reconnect-wait", "WSCLOSE.waiting",
       "AT+WSCLOSE of a link in state 3 answers only when its reconnect wait ends",
       wsclose_waits_reconnect=True),
    _d("wsclose-leaves-reconnect-running", "WSCLOSE.waiting",
       "AT+WSCLOSE of a link in state 3 answers OK but the client still reconnects",
       needs_slow_test=True, wsclose_leaves_reconnect=True),
    _d("wsclose-unused-id-resets-every-config", "WSCLOSE.no_link",
       "AT+WSCLOSE of an id with no link frees the configuration of every link",
       wsclose_unused_resets_all=True),

    # ---- parameter syntax
    _d("hex-numbers-accepted", "PARAMS.malformed",
       "numeric fields accept 0x-prefixed hex", hex_numbers=True),
    _d("numbers-wrap-32bit", "PARAMS.malformed",
       "numbers past 2**32 wrap around (4294967296 reads as 0)", numbers_wrap_32bit=True),
    _d("extra-fields-ignored", "PARAMS.malformed",
       "fields past a command's last parameter are dropped instead of refused",
       extra_fields_ignored=True),
    _d("unquoted-strings-accepted", "PARAMS.malformed",
       "a bare token is taken where a quoted string belongs", unquoted_strings=True),
    _d("empty-optional-is-zero", "PARAMS.empty_optional",
       "an optional field written empty reads as 0 instead of its default",
       empty_optional_is_zero=True),
    _d("escapes-kept", "PARAMS.escapes",
       "escapes in quoted strings are kept (\\, stays backslash-comma)", escapes_kept=True),
    _d("line-limit-128", ("PARAMS.line_length", "WSOPEN.auth.line_limit"),
       "command lines longer than 128 bytes answer ERROR", command_line_max=128),
    _d("long-line-truncated", "PARAMS.line_length",
       "a command line longer than 256 bytes runs cut to 256 bytes", long_line_truncated=True),

    # ---- URCs and the close handshake
    _d("ws-data-length-counts-crlf", "URC.WS_DATA",
       "the <len> of +WS_DATA counts the trailing CR-LF", ws_data_len_extra=2),
    # A documented URC in a broken form is one rule wherever it comes (esp_at/exchange.py).
    _d("ws-data-header-space", "URC.WS_DATA",
       "+WS_DATA's header fields are separated by ', ' (a stray space)", ws_data_separator=", "),
    _d("reconnect-after-server-close", "URC.WS_CLOSED",
       "after a server close frame the link reconnects like after an abort",
       reconnect_after_server_close=True),
    _d("disconnected-after-closed", "URC.WS_CLOSED",
       "+WS_DISCONNECTED:<id> follows +WS_CLOSED:<id> when TCP goes",
       disconnected_after_closed=True),
    _d("close-not-answered", "CLOSE.server.handshake",
       "a close frame from the server gets no close frame back", close_reply_payload=None),
    _d("close-reply-one-byte", "CLOSE.server.handshake",
       "the close frame sent back carries one byte (half a status code)",
       close_reply_payload=b"\x03"),
    _d("close-waits-forever", "CLOSE.server.handshake",
       "after a server close the device never drops TCP itself and stays closing",
       close_waits_forever=True),
    _d("lost-connection-silent", "URC.WS_DISCONNECTED",
       "a lost connection prints no URC", lost_connection_silent=True),
    _d("disconnected-urc-twice", "URC.WS_DISCONNECTED",
       "a lost connection prints +WS_DISCONNECTED twice", disconnected_urc_twice=True),
    _d("pong-timeout-prints-closed", ("URC.WS_DISCONNECTED", "WSCFG.ping_timeout_sec.effect"),
       "a pong timeout prints +WS_CLOSED instead of +WS_DISCONNECTED",
       pong_timeout_urc="+WS_CLOSED"),

    # ---- data from the server
    _d("empty-frames-dropped", "RECV.empty",
       "an empty text or binary message prints nothing", empty_frames_dropped=True),
    _d("ping-ends-fragmented-message", "RECV.fragmented",
       "a ping between fragments ends the message: the fragments after it are dropped",
       ping_ends_fragmented_message=True),
    _d("reserved-opcodes-printed", "RECV.reserved_opcode",
       "frames with reserved opcodes are taken and print +WS_DATA", reserved_opcodes_printed=True,
       reserved_opcodes_accepted=True),
    _d("pongs-printed", "RECV.control_silent",
       "a pong from the server prints +WS_DATA:<id>,0,", pongs_printed=True),
    _d("text-utf8-replaced", "RECV.utf8",
       "a text message that is not UTF-8 is taken, its bad bytes replaced by U+FFFD",
       text_utf8_replaced=True, invalid_utf8_accepted=True),
    _d("text-bom-stripped", "RECV.raw_text",
       "a byte order mark (U+FEFF) that starts a text message is dropped", text_bom_stripped=True),
    _d("server-ping-urc", "PING.server",
       "every server ping prints +WS_PING:<id>,<len>", server_ping_urc=True),
    _d("pong-empty", "PING.server", "pongs carry no payload", pong_empty=True),
    _d("pong-unmasked", "PING.server", "pongs are sent unmasked", pong_unmasked=True),
    _d("pong-payload-cut", "PING.server.large",
       "a server ping longer than buffer_size is answered with a pong cut to buffer_size",
       pong_payload_cut=True),

    # ---- heap
    _d("heap-leak-per-close", "HEAP.no_leak",
       "256 bytes of heap are lost each time an established link ends", heap_leak_per_close=256),
    _d("heap-leak-per-failed-open", "HEAP.no_leak",
       "200 bytes of heap are lost per failed AT+WSOPEN (the error buffer)",
       heap_leak_per_failed_open=200),

    # ---- AT+WSHEAD (profile wshead)
    _d("wshead-clear-ignored", "WSHEAD.clear",
       "AT+WSHEAD=0 answers OK but keeps every stored header", wshead_clear_ignored=True),
    _d("wshead-crlf-accepted", "WSHEAD.crlf_refused",
       "AT+WSHEAD stores a header that holds CR or LF (and sends it)", wshead_crlf_accepted=True),
    _d("wshead-not-on-reconnect", "WSHEAD.reconnect",
       "a reconnect's handshake leaves the AT+WSHEAD headers off", needs_slow_test=True,
       wshead_not_on_reconnect=True),
    _d("wshead-query-space", "WSHEAD.query",
       'AT+WSHEAD? prints +WSHEAD:<index>,"<key>: <value>" (a space after the colon)',
       wshead_query_space=True),
    _d("wshead-takes-one-byte-less", ("WSHEAD.set", "WSHEAD.sent"),
       "AT+WSHEAD data mode takes <req_header_len> - 1 bytes", wshead_short_by=1),

    # ---- AT+WSOPEN <auth> (profile auth)
    _d("auth-header-dropped", "WSOPEN.auth",
       "AT+WSOPEN's <auth> is parsed but no Authorization header is sent", auth_header_dropped=True),
    _d("auth-header-lowercase", "WSOPEN.auth",
       "the Authorization header goes out as `authorization: <auth>`", auth_header_lowercase=True),
    _d("auth-after-wshead", "WSOPEN.auth",
       "the Authorization header comes after the AT+WSHEAD headers", auth_after_wshead=True),

    # ---- AT+WSCFG TLS authentication (profile tls)
    _d("tls-host-not-checked", "WSCFG.auth_mode.verify_host",
       "with a CA set the server's chain is checked, its host name is not", "KD-8",
       tls_host_not_checked=True),
    _d("tls-mode0-numbers-accepted", "WSCFG.auth_mode.no_pki",
       "AT+WSCFG with auth_mode 0 and a PKI or CA number answers OK", wscfg_mode0_numbers_accepted=True),
    _d("tls-ca-not-checked", "WSCFG.auth_mode.verify_ca",
       "auth_mode 2 and 3 accept any server chain (the CA is loaded, never used)",
       tls_ca_not_checked=True),
    _d("tls-client-cert-not-sent", "WSCFG.auth_mode.client_cert",
       "auth_mode 1 and 3 present no client certificate", tls_client_cert_not_sent=True),
    _d("wscfg-pki-number-accepts-256", "WSCFG.pki_number.range",
       "AT+WSCFG checks <pki_number> as [0,256]",
       range_skew=(("AT+WSCFG", "pki_number", 0, 1),)),
    _d("wscfg-auth-mode-accepts-4", "WSCFG.auth_mode.range",
       "AT+WSCFG checks <auth_mode> as [0,4] (4 authenticates nothing)",
       range_skew=(("AT+WSCFG", "auth_mode", 0, 1),)),

    # ---- the development line (profile current)
    _d("continuation-fin-drops-data", "WSSEND.fin.effect",
       "AT+WSSEND with opcode 0 and fin 1 takes the data, sends nothing and answers ERROR",
       "KD-12", continuation_fin_drops_data=True),
    _d("fin-ignored", "WSSEND.fin.effect",
       "AT+WSSEND's <fin> is parsed but every frame goes out with FIN set", fin_ignored=True),
    _d("wssend-fin-accepts-2", "WSSEND.fin.range",
       "AT+WSSEND checks <fin> as [0,2] (2 sends FIN)", range_skew=(("AT+WSSEND", "fin", 0, 1),)),
    _d("length-zero-refused", "WSSEND.length.zero",
       "AT+WSSEND with <length> 0 answers ERROR, as released firmware", length_zero_refused=True),
    _d("buffer-size-8192", ("WSSEND.length.large", "WSCFG.buffer_size.range"),
       "AT+WSCFG refuses a <buffer_size> above 8192, the released limit",
       buffer_size_cap=spec.load().profiles[spec.DEFAULT_PROFILE].buffer_size_max),
    _d("wsdatafmt-reset-by-wsclose", "WSDATAFMT.kept_on_close",
       "AT+WSCLOSE resets the link's data format to level 0, mask 48",
       wsdatafmt_reset_by_wsclose=True),
    _d("wsdatafmt-kept-on-reset", "WSDATAFMT.default",
       "AT+RST and a reboot keep every link's data format (stored as if in flash)",
       wsdatafmt_kept_on_reset=True),
    _d("wsdatafmt-offset-from-message", ("WSDATAFMT.level", "WSDATAFMT.form"),
       "at level 0 <payload_offset> counts from the start of the message, not of the frame",
       wsdatafmt_offset_from_message=True),
    _d("wsdatafmt-no-crlf", "WSDATAFMT.form",
       "mask bit 5 is ignored: every +WS_DATA ends in CR-LF", wsdatafmt_crlf_always=True),
    _d("wsdatafmt-mask-accepts-0", "WSDATAFMT.set",
       "AT+WSDATAFMT checks <meta_data_mask> as [0,63]",
       range_skew=(("AT+WSDATAFMT", "meta_data_mask", -1, 0),)),
    _d("wsdatafmt-default-mask-63", "WSDATAFMT.default",
       "before any AT+WSDATAFMT a link prints every +WS_DATA field (mask 63, not 48)",
       default_overrides=(("AT+WSDATAFMT", "meta_data_mask", 63),)),
)

DEFECTS: dict[str, Defect] = {d.name: d for d in _CATALOG}
if len(DEFECTS) != len(_CATALOG):
    raise ValueError("sim/defects.py: two defects share a name")
KD_DEFECTS: dict[str, Defect] = {d.kd: d for d in _CATALOG if d.kd}


def firmware_defects(preset: str, profile: str = spec.DEFAULT_PROFILE,
                     library_version: str = SHIPPED) -> tuple[str, ...]:
    """`--firmware PRESET` on a model of `profile`: 'seed' none, 'shipping' every known deviation
    of shipping ESP-AT that the profile has (KD-8 from tls on, KD-12 on current only) and its
    library has not fixed (sim/library.py: 1.8.0 fixed KD-4)."""
    if preset not in ("seed", "shipping"):
        raise ValueError(f"unknown firmware {preset!r}; known: seed, shipping")
    if preset == "seed":
        return ()
    under = spec.load().profiles[profile]
    fixed = library(library_version).fixed
    return tuple(d.name for d in _CATALOG if d.kd is not None and under.includes(d.profile)
                 and d.kd not in fixed)


# `--firmware shipping` on the seed model (the default): every KD but KD-8, which needs TLS
# verification (profile tls), and KD-12 (current). Other profiles: firmware_defects(preset, profile).
FIRMWARE_PRESETS: dict[str, tuple[str, ...]] = {
    preset: firmware_defects(preset) for preset in ("seed", "shipping")}


def check_profile(defects: Iterable[Defect], profile: str) -> None:
    """ValueError when a defect belongs to a profile the model's `profile` does not include: its
    knobs would act on commands or fields the model does not have, a silent no-op."""
    under = spec.load().profiles[profile]
    later = [d for d in defects if not under.includes(d.profile)]
    if later:
        names = ", ".join(f"{d.name} (profile {d.profile}, clause {d.clause})" for d in later)
        raise ValueError(f"defect(s) {names} need a later profile than the model's {profile}: "
                         f"start the model with --profile {later[0].profile} (or later)")


def resolve(names: Iterable[str]) -> tuple[Defect, ...]:
    """The defects named (a name or a KD id each); ValueError naming the unknown ones."""
    names = list(names)
    unknown = [n for n in names if n not in DEFECTS and n not in KD_DEFECTS]
    if unknown:
        raise ValueError(f"unknown defect(s) {', '.join(unknown)}; `python -m sim --list-defects` "
                         f"lists the {len(DEFECTS)} known ones")
    found: dict[str, Defect] = {}
    for n in names:
        defect = DEFECTS.get(n) or KD_DEFECTS[n]
        found.setdefault(defect.name, defect)
    return tuple(found.values())


def behaviour_for(defects: Iterable[Defect]) -> Behaviour:
    """The conforming behaviour with every defect's changes applied. Tuple knobs add up; two
    defects setting one other knob to different values cannot run together."""
    changes: dict[str, Any] = {}
    for defect in defects:
        for knob, value in defect.changes.items():
            if isinstance(value, tuple) and knob in changes:
                changes[knob] = changes[knob] + value
            elif knob in changes and changes[knob] != value:
                raise ValueError(f"defect {defect.name} sets {knob} differently from another "
                                 f"defect in the same run")
            else:
                changes[knob] = value
    return dataclasses.replace(CONFORMING, **changes)
