"""AT+WSCFG: the set command and its example to the byte, every range (a refusal changes nothing),
and the lifetime of a configuration: refused, per link, on a live link, after a close."""
import pytest

import spec
from esp_at.commands import wscfg

from fixtures import margins
from fixtures.links import (DEFAULT_KEEPALIVE, configure, open_link, wait_link_closed,
                            with_buffer)
from fixtures.verdicts import check
from tests.conformance.observe import (OK, WITNESS_BUFFER, WITNESS_LENGTH, buffer_size_in_force,
                                       exact_answer, refused_and_config_kept, witness_config)
from tests.conformance.ranges import range_cases

SPEC = spec.load()
DEFAULTS = {name: SPEC.default("AT+WSCFG", name)
            for name in ("ping_intv_sec", "ping_timeout_sec", "buffer_size")}
DEFAULT_BUFFER = DEFAULTS["buffer_size"]


# An <auth_mode> that uses both numbers (profile tls), for a test of their ranges.
USES_BOTH_NUMBERS = SPEC.bounds("AT+WSCFG", "auth_mode", "tls")[1]


def wscfg_with(**values) -> str:
    """AT+WSCFG of link 0 with the defaults, but `values`. An <auth_mode> other than 0 (profile
    tls) comes with PKI and CA number 0, which it requires; 0 comes alone, as it must. A
    <pki_number> or <ca_number> comes with the auth_mode that uses both, the other number 0."""
    line = dict(link_id=0, **DEFAULTS)
    line.update(values)
    if "pki_number" in line or "ca_number" in line:
        line.setdefault("auth_mode", USES_BOTH_NUMBERS)
    auth_mode = line.get("auth_mode")
    numbers = (None, None) if auth_mode in (None, 0) else (line.get("pki_number", 0),
                                                          line.get("ca_number", 0))
    return wscfg(line["link_id"], line["ping_intv_sec"], line["ping_timeout_sec"],
                 line["buffer_size"], auth_mode, *numbers)


@pytest.mark.clause("WSCFG.example")
def test_doc_example_is_accepted_to_the_byte(at):
    exact_answer(at.cmd("AT+WSCFG=0,30,60,4096"), OK, "WSCFG.example")


def at_their_maximum(profile) -> str:
    return wscfg(2, *(SPEC.bounds("AT+WSCFG", name, profile.name)[1]
                      for name in ("ping_intv_sec", "ping_timeout_sec", "buffer_size")))


@pytest.mark.clause("WSCFG.set")
@pytest.mark.parametrize("line", [lambda profile: wscfg(1, *DEFAULT_KEEPALIVE), at_their_maximum],
                         ids=["buffer-size-left-off", "all-four-at-their-maximum"])
def test_set_answers_ok_and_nothing_else(at, profile, line):
    exact_answer(at.cmd(line(profile)), OK, "WSCFG.set")


@pytest.mark.parametrize("case", range_cases(SPEC, "AT+WSCFG"))
def test_parameter_range(at, ws_endpoint, profile, case):
    """In range: OK. Out of range: ERROR, and link 0's configuration is still the one before."""
    line = wscfg_with(**{case.param: case.value(profile)})
    if case.in_range:
        exact_answer(at.cmd(line), OK, case.clause)
        return
    refused_and_config_kept(at, ws_endpoint, line)


@pytest.mark.clause("WSCFG.refused_keeps")
@pytest.mark.parametrize("refused", [
    lambda profile: wscfg_with(buffer_size=profile.buffer_size_max + 1),
    lambda profile: wscfg_with(ping_intv_sec=0, buffer_size=512),
], ids=["buffer-too-large", "interval-zero"])
def test_refused_wscfg_keeps_the_last_good_one(at, ws_endpoint, profile, refused):
    refused_and_config_kept(at, ws_endpoint, refused(profile))


@pytest.mark.clause("WSCFG.buffer_size.default")
def test_buffer_size_left_off_is_the_default(at, ws_endpoint):
    witness_config(at)
    configure(at, 0, DEFAULTS["ping_intv_sec"], DEFAULTS["ping_timeout_sec"])  # no buffer_size
    in_force = buffer_size_in_force(at, ws_endpoint, 0)
    assert in_force == min(DEFAULT_BUFFER, WITNESS_LENGTH), (
        f"AT+WSCFG without <buffer_size> left link 0 with buffer {in_force}; the default is "
        f"{DEFAULT_BUFFER}")


@pytest.mark.clause("WSCFG.per_link")
def test_each_link_keeps_its_own_configuration(at, new_endpoint):
    sizes = {0: WITNESS_BUFFER, 1: 2 * WITNESS_BUFFER}
    for link_id, size in sizes.items():
        configure(at, link_id, DEFAULTS["ping_intv_sec"], DEFAULTS["ping_timeout_sec"], size)
    sizes[2] = min(DEFAULT_BUFFER, WITNESS_LENGTH)           # never configured
    seen = {link_id: buffer_size_in_force(at, new_endpoint(f"link{link_id}"), link_id)
            for link_id in sizes}
    assert seen == sizes, f"buffer sizes in force per link {seen}; configured {sizes}"


@pytest.mark.clause("WSCFG.before_open")
def test_wscfg_on_a_live_link_does_not_change_it(at, connected, ws_endpoint):
    connected(0, cfg=with_buffer(1000))
    at.cmd(wscfg(0, *with_buffer(10)))                # OK or ERROR: either way, no effect now
    message = bytes(range(200)) * 5
    ws_endpoint.send_binary(message)
    with check("URC.WS_DATA"):
        chunks = at.wait_ws_data(0, len(message), timeout=margins.SERVER_SEES_IT_S)
    assert b"".join(chunks) == message
    assert max(len(c) for c in chunks) == len(message), (
        f"AT+WSCFG on an open link took effect at once (chunks {[len(c) for c in chunks]}); the "
        f"seed says it must be set before AT+WSOPEN")


@pytest.mark.clause("WSCFG.reset_on_close")
def test_wsclose_releases_the_configuration(at, ws_endpoint):
    witness_config(at)
    assert buffer_size_in_force(at, ws_endpoint, 0) == WITNESS_BUFFER   # opened, then WSCLOSE
    in_force = buffer_size_in_force(at, ws_endpoint, 0)
    assert in_force == min(DEFAULT_BUFFER, WITNESS_LENGTH), (
        f"after AT+WSCLOSE link 0 opened again with buffer {in_force}; BEHAVIOUR.md: the close "
        f"releases the link's AT+WSCFG settings, the next open uses the default {DEFAULT_BUFFER}")


@pytest.mark.clause("WSCFG.reset_on_close")
def test_server_close_releases_the_configuration(at, ws_endpoint, new_endpoint):
    witness_config(at)
    open_link(at, 0, ws_endpoint.url)
    ws_endpoint.close(code=1000, drop_tcp=True)
    with check("URC.WS_CLOSED"):
        at.wait_urc(b"+WS_CLOSED", 0, timeout=margins.SERVER_SEES_IT_S)
    wait_link_closed(at, 0, margins.TCP_GONE_S)
    in_force = buffer_size_in_force(at, new_endpoint("again"), 0)
    assert in_force == min(DEFAULT_BUFFER, WITNESS_LENGTH), (
        f"after a close frame from the server link 0 opened again with buffer {in_force}; "
        f"BEHAVIOUR.md: the close releases its AT+WSCFG settings (default {DEFAULT_BUFFER})")
