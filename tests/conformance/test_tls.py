"""AT+WSCFG's TLS authentication (profile tls): <auth_mode> with <pki_number> and <ca_number> as the
command takes them, and what each mode does on a wss:// open against the test PKI's servers (one
the test CA signed, one it signed for another host name, one a stranger CA signed, and one that
requires a client certificate the test CA signed). The PKI partitions: wss_cert.0/wss_key.0 the
client identity, wss_ca.0 the test CA, wss_ca.1 the stranger CA (fixtures/pki.py).

A failed open is ERROR, optionally after +WS_DISCONNECTED:<link_id>, no link left, and no
WebSocket request at the server: a refused TLS handshake never reaches HTTP. The server records
every TLS handshake (servers/tls.py), so a test also sees that the device did reach the server
and that its TLS handshake did not complete, and, where the server refused it, why (OpenSSL's
reason: PEER_DID_NOT_RETURN_A_CERTIFICATE when the device presented no client certificate)."""
import time
from dataclasses import dataclass

import pytest

import spec
from esp_at.client import Response
from esp_at.commands import wscfg, wsclose, wsopen
from servers.tls import NO_CLIENT_CERTIFICATE

from wire.frames import OP_BINARY

from fixtures import margins
from fixtures.links import configure, link_states, send_ok, wsopen_answer_timeout
from fixtures.pki import CLIENT_CN
from fixtures.verdicts import check, deviation
from tests.conformance.observe import ERROR, OK, exact_answer, refused_and_config_kept

SPEC = spec.load()
# The three fields before the TLS ones, at their defaults (WITNESS_BUFFER is none of them).
DEFAULTS = tuple(SPEC.default("AT+WSCFG", name)
                 for name in ("ping_intv_sec", "ping_timeout_sec", "buffer_size"))
NO_AUTH, CLIENT_CERT, VERIFY_SERVER, MUTUAL = range(4)   # VERSIONS.md tls: <auth_mode>
CLIENT_PKI = 0            # wss_cert.0 / wss_key.0: the client identity the test CA signed
TEST_CA, STRANGER_CA = 0, 1
NO_SUCH_ENTRY = 5         # a partition number the test PKI has no entry for (in [0,255])


def tls_cfg(auth_mode: int | None, pki_number: int | None = None, ca_number: int | None = None,
            link_id: int = 0) -> str:
    """AT+WSCFG of `link_id` with the default interval, timeout and buffer, then the TLS fields
    (a field given as None is left empty, or off the end)."""
    return wscfg(link_id, *DEFAULTS, auth_mode=auth_mode, pki_number=pki_number,
                 ca_number=ca_number)


def set_tls(at, auth_mode: int, pki_number: int | None = None, ca_number: int | None = None,
            link_id: int = 0) -> None:
    """AT+WSCFG with TLS fields that must be accepted (modes 1-3 with both numbers; mode 0
    alone)."""
    if auth_mode != NO_AUTH:
        pki_number = CLIENT_PKI if pki_number is None else pki_number
        ca_number = TEST_CA if ca_number is None else ca_number
        configure(at, link_id, *DEFAULTS, auth_mode, pki_number, ca_number)
    else:
        configure(at, link_id, *DEFAULTS, NO_AUTH)


@dataclass(frozen=True)
class Attempt:
    """One AT+WSOPEN, OK or not: its response, the URCs it printed, and where the server's
    records stood before it."""
    link_id: int
    endpoint: object
    response: Response
    urcs: list
    connections_before: int
    started: float

    @property
    def ok(self) -> bool:
        return self.response.final == b"OK"

    def tls_handshakes(self) -> list:
        """The TLS handshakes the server ran (and ended) since this open began."""
        return [hs for hs in self.endpoint.tls_handshakes if hs.started >= self.started]


def try_open(at, link_id: int, endpoint) -> Attempt:
    connections, urcs, started = len(endpoint.connections), len(at.urc_history), time.monotonic()
    response = at.cmd(wsopen(link_id, endpoint.url), timeout=wsopen_answer_timeout(None))
    return Attempt(link_id, endpoint, response, at.urc_history[urcs:], connections, started)


def describe(attempt: Attempt) -> str:
    """The exchange, and what the server's TLS side recorded since the open began."""
    handshakes = attempt.tls_handshakes()
    tls = ("; ".join(hs.words() for hs in handshakes) if handshakes
           else "no TLS handshake ended at the server")
    return (f"sent {attempt.response.command!r}; received {attempt.response.received!r}; "
            f"server: {tls}")


def assert_open_failed(at, attempt: Attempt, clause: str, why: str, at_tls: bool = True):
    """ERROR, optionally after +WS_DISCONNECTED:<link_id>; nothing else printed; no link left;
    the server saw no new WebSocket request. With `at_tls`: the device did reach the server, and
    no TLS handshake it made completed (it, or the server, refused the other's certificate).
    Returns the first TLS handshake (None without `at_tls`)."""
    link_id, response = attempt.link_id, attempt.response
    with check(clause):
        assert response.final == b"ERROR", (
            f"{why}: the open must fail (ERROR, optionally after +WS_DISCONNECTED:{link_id}); "
            f"{describe(attempt)}")
    with check("WSOPEN.set.connected"):      # how a failed open ends (BEHAVIOUR.md)
        for event in attempt.urcs:
            assert (getattr(event, "name", None) == b"+WS_DISCONNECTED"
                    and getattr(event, "link_id", None) == link_id), (
                f"{why}: the failed open printed {event!r}; only +WS_DISCONNECTED:{link_id} may "
                f"come before ERROR; {describe(attempt)}")
        listed = link_states(at)
        assert link_id not in listed, f"{why}: the failed open left link {link_id} behind: {listed}"
    with check(clause):
        new = attempt.endpoint.connections[attempt.connections_before:]
        assert not new, (f"{why}: the open answered ERROR, yet the server saw a WebSocket "
                         f"request: {[c.handshake for c in new]}")
        if not at_tls:
            return None
        try:
            first = attempt.endpoint.wait_tls_handshake(since=attempt.started,
                                                        timeout=margins.SERVER_SEES_IT_S)
        except AssertionError:
            raise AssertionError(
                f"{why}: the open failed without a TLS handshake at the server, so the device "
                f"refused nothing it was shown; {describe(attempt)}") from None
        completed = [hs for hs in attempt.tls_handshakes() if hs.completed]
        assert not completed, (f"{why}: the open answered ERROR, yet a TLS handshake with the "
                               f"server completed; {describe(attempt)}")
    return first


def assert_opened(attempt: Attempt, clause: str, why: str) -> None:
    """The open succeeded (filed under `clause`: the TLS mode let it through), +WS_CONNECTED came
    before its OK, and the server saw the WebSocket request."""
    endpoint = attempt.endpoint
    with check(clause):
        assert attempt.ok, f"{why}: the open must succeed; {describe(attempt)}"
    with check("WSOPEN.set.connected"):
        connected = [e for e in attempt.urcs if getattr(e, "name", None) == b"+WS_CONNECTED"
                     and getattr(e, "link_id", None) == attempt.link_id]
        assert connected, (f"AT+WSOPEN answered OK without +WS_CONNECTED:{attempt.link_id} before "
                           f"it; {describe(attempt)}")
        endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S,
                                 count=attempt.connections_before + 1)


def assert_data_both_ways(at, link_id: int, endpoint, payload: bytes) -> None:
    """A binary message to the server arrives as sent, and its echo comes back as +WS_DATA."""
    send_ok(at, link_id, payload, 2)
    with check("WSSEND.send_ok"):
        seen = endpoint.wait_frame(lambda rf: rf.frame.opcode == OP_BINARY,
                                   timeout=margins.SERVER_SEES_IT_S).frame.payload
        assert seen == payload, f"sent {payload!r} over TLS; the server received {seen!r}"
    with check("URC.WS_DATA"):
        echoed = b"".join(at.wait_ws_data(link_id, len(payload), timeout=margins.SERVER_SEES_IT_S))
        assert echoed == payload, f"the server echoed {payload!r}; +WS_DATA gave {echoed!r}"


def close_link(at, link_id: int, endpoint) -> None:
    with check("WSCLOSE.set"):
        at.cmd(wsclose(link_id), timeout=margins.WSCLOSE_ANSWER_S).expect(b"OK")
        endpoint.wait_disconnect(timeout=margins.TCP_GONE_S)


# ---- the client certificate as the client-auth server saw it ---------------------------------

def open_with_cert(at, link_id: int, endpoint, clause: str, what: str) -> None:
    """AT+WSOPEN to the server that requires a client certificate the test CA signed: it must
    open (a refusal is the certificate's failure: the server's record says why), and the
    certificate the server saw is the client identity's."""
    attempt = try_open(at, link_id, endpoint)
    assert_opened(attempt, clause,
                  f"{what}, against a server that requires a client certificate the test CA signed")
    with check(clause):
        cn = endpoint.connections[-1].client_cert_cn
        assert cn == CLIENT_CN, (
            f"{what}: the server saw client certificate CN {cn!r}; expected {CLIENT_CN!r}, the "
            f"certificate of wss_cert.{CLIENT_PKI}; {describe(attempt)}")


def assert_no_certificate(at, link_id: int, endpoint, clause: str, why: str) -> None:
    """AT+WSOPEN to the server that requires a client certificate fails, and the server refused
    the TLS handshake because the device presented none."""
    attempt = try_open(at, link_id, endpoint)
    first = assert_open_failed(at, attempt, clause, why)
    with check(clause):
        reasons = [hs.reason for hs in attempt.tls_handshakes()]
        assert first.reason == NO_CLIENT_CERTIFICATE, (
            f"{why}: the server's TLS handshake must fail with {NO_CLIENT_CERTIFICATE} (the "
            f"device presented no certificate); it recorded {reasons}; {describe(attempt)}")


# ---- the command: the range, mode 0 takes no numbers, modes 1-3 take both --------------------

@pytest.mark.clause("WSCFG.auth_mode.range")
@pytest.mark.parametrize("side", ["below", "above"])
def test_auth_mode_out_of_range_is_refused_and_changes_nothing(at, profile, wss_stranger_endpoint,
                                                               side):
    """<auth_mode> one below or one above its range, with both numbers (as modes 1-3 take them,
    the CA number the stranger's): ERROR and nothing else, and link 0 keeps auth_mode 2 with the
    test CA set before it, so the server a stranger CA signed still fails the open. Had the line
    changed link 0 in any way (a mode that verifies nothing, or one that verifies with the
    stranger CA), that server would open. That the witness works (the stranger fails under the
    mode set) is checked first, under its own clause."""
    low, high = SPEC.bounds("AT+WSCFG", "auth_mode", profile.name)
    value = low - 1 if side == "below" else high + 1
    mode = f"auth_mode 2 with wss_ca.{TEST_CA}"
    set_tls(at, VERIFY_SERVER, ca_number=TEST_CA)
    assert_open_failed(at, try_open(at, 0, wss_stranger_endpoint), "WSCFG.auth_mode.verify_ca",
                       f"{mode} against a server a stranger CA signed (the witness of this test)")
    # Set again: the spec does not say whether a failed open keeps the link's configuration.
    set_tls(at, VERIFY_SERVER, ca_number=TEST_CA)
    line = tls_cfg(value, CLIENT_PKI, STRANGER_CA)
    exact_answer(at.cmd(line), ERROR, "WSCFG.auth_mode.range")
    assert_open_failed(at, try_open(at, 0, wss_stranger_endpoint), "WSCFG.auth_mode.range",
                       f"after {mode} and the refused {line!r} (auth_mode outside "
                       f"[{low},{high}]), link 0 against a server a stranger CA signed")


@pytest.mark.clause("WSCFG.auth_mode.no_pki")
@pytest.mark.parametrize("numbers", [(CLIENT_PKI, None), (None, TEST_CA), (CLIENT_PKI, TEST_CA)],
                         ids=["with-pki-number", "with-ca-number", "with-both"])
def test_mode_0_with_a_number_is_refused(at, ws_endpoint, numbers):
    """auth_mode 0 with a PKI or CA number: ERROR, and link 0 keeps its configuration."""
    refused_and_config_kept(at, ws_endpoint, tls_cfg(NO_AUTH, *numbers))


@pytest.mark.clause("WSCFG.auth_mode.no_pki")
@pytest.mark.parametrize("auth_mode", [CLIENT_CERT, VERIFY_SERVER, MUTUAL])
def test_modes_1_to_3_with_both_numbers_are_accepted(at, auth_mode):
    exact_answer(at.cmd(tls_cfg(auth_mode, CLIENT_PKI, TEST_CA)), OK, "WSCFG.auth_mode.no_pki")


@pytest.mark.clause("WSCFG.auth_mode.no_pki")
def test_mode_0_alone_is_accepted(at):
    exact_answer(at.cmd(tls_cfg(NO_AUTH)), OK, "WSCFG.auth_mode.no_pki")


# ---- server verification with a CA ----------------------------------------------------------

@pytest.mark.clause("WSCFG.auth_mode.verify_ca")
def test_mode_2_opens_to_a_server_the_ca_signed(at, wss_verified_endpoint):
    set_tls(at, VERIFY_SERVER, ca_number=TEST_CA)
    assert_opened(try_open(at, 0, wss_verified_endpoint), "WSCFG.auth_mode.verify_ca",
                  f"auth_mode 2 with wss_ca.{TEST_CA} against a server the test CA signed")
    assert_data_both_ways(at, 0, wss_verified_endpoint, b"verified \x00\xff")


@pytest.mark.clause("WSCFG.auth_mode.verify_ca")
def test_mode_2_refuses_a_server_the_ca_did_not_sign(at, wss_stranger_endpoint):
    set_tls(at, VERIFY_SERVER, ca_number=TEST_CA)
    assert_open_failed(at, try_open(at, 0, wss_stranger_endpoint), "WSCFG.auth_mode.verify_ca",
                       f"auth_mode 2 with wss_ca.{TEST_CA} against a server a stranger CA signed")


@pytest.mark.clause("WSCFG.auth_mode.verify_ca")
def test_mode_2_with_another_ca_refuses_the_server(at, wss_verified_endpoint):
    """ca_number picks the CA: the stranger CA (wss_ca.1) did not sign the verified server."""
    set_tls(at, VERIFY_SERVER, ca_number=STRANGER_CA)
    assert_open_failed(at, try_open(at, 0, wss_verified_endpoint), "WSCFG.auth_mode.verify_ca",
                       f"auth_mode 2 with wss_ca.{STRANGER_CA} (the stranger CA) against a "
                       f"server the test CA signed")


@pytest.mark.clause("WSCFG.auth_mode.verify_ca")
def test_mode_2_with_a_ca_number_without_entry_fails_the_open(at, wss_verified_endpoint):
    """A CA partition entry that does not exist fails the open; the same link with the test CA
    then opens to the same server (the entry, nothing else, failed it)."""
    set_tls(at, VERIFY_SERVER, ca_number=NO_SUCH_ENTRY)
    assert_open_failed(at, try_open(at, 0, wss_verified_endpoint), "WSCFG.auth_mode.verify_ca",
                       f"auth_mode 2 with wss_ca.{NO_SUCH_ENTRY}, a partition entry that does "
                       f"not exist, against a server the test CA signed", at_tls=False)
    set_tls(at, VERIFY_SERVER, ca_number=TEST_CA)
    assert_opened(try_open(at, 0, wss_verified_endpoint), "WSCFG.auth_mode.verify_ca",
                  f"auth_mode 2 with wss_ca.{TEST_CA} against a server the test CA signed (after "
                  f"wss_ca.{NO_SUCH_ENTRY} failed)")


@pytest.mark.clause("WSCFG.auth_mode.verify_ca")
def test_mode_3_verifies_the_server_too(at, wss_client_auth_endpoint):
    """Mutual authentication verifies the server as mode 2 does: with the stranger CA the
    client-auth server (the test CA signed it) is refused, client certificate or not."""
    set_tls(at, MUTUAL, CLIENT_PKI, STRANGER_CA)
    assert_open_failed(at, try_open(at, 0, wss_client_auth_endpoint), "WSCFG.auth_mode.verify_ca",
                       f"auth_mode 3 with wss_ca.{STRANGER_CA} (the stranger CA) against a "
                       f"server the test CA signed")


@pytest.mark.clause("WSCFG.auth_mode.verify_ca")
@pytest.mark.parametrize("explicit", [True, False], ids=["auth-mode-0", "auth-mode-left-off"])
def test_mode_0_opens_to_any_server(at, wss_stranger_endpoint, explicit):
    """No verification (as the seed): a server a stranger CA signed opens."""
    if explicit:
        set_tls(at, NO_AUTH)
    assert_opened(try_open(at, 0, wss_stranger_endpoint), "WSCFG.auth_mode.verify_ca",
                  f"auth_mode 0 ({'set' if explicit else 'the default'}) against a server a "
                  f"stranger CA signed (no verification, as the seed)")
    assert_data_both_ways(at, 0, wss_stranger_endpoint, b"unverified \x00\xff")


@pytest.mark.clause("WSCFG.auth_mode.verify_ca")
def test_mode_1_verifies_nothing(at, wss_stranger_endpoint):
    """Client certificate only: the server is not verified, so one a stranger CA signed opens
    (it asks for no certificate)."""
    set_tls(at, CLIENT_CERT, CLIENT_PKI, TEST_CA)
    assert_opened(try_open(at, 0, wss_stranger_endpoint), "WSCFG.auth_mode.verify_ca",
                  f"auth_mode 1 with wss_ca.{TEST_CA} against a server a stranger CA signed "
                  f"(mode 1 does not verify the server)")


# ---- the host name (KD-8) -------------------------------------------------------------------

@pytest.mark.clause("WSCFG.auth_mode.verify_host")
def test_mode_2_refuses_a_certificate_for_another_host(at, wss_verified_endpoint,
                                                       wss_wrong_host_endpoint,
                                                       wss_stranger_endpoint):
    """The wrong-host server's chain is the test CA's, the name in it another host's: auth_mode 2
    with the test CA must fail the open. First the same configuration opens to the server whose
    certificate names the host the device dials (so only the name differs). KD-8 (the chain is
    checked, the host name is not) is filed only when the device shows that signature: it opened
    to the wrong host, and a server whose chain is wrong (the stranger's) still fails with the
    same configuration on another link."""
    set_tls(at, VERIFY_SERVER, ca_number=TEST_CA)
    assert_opened(try_open(at, 0, wss_verified_endpoint), "WSCFG.auth_mode.verify_ca",
                  f"auth_mode 2 with wss_ca.{TEST_CA} against a server the test CA signed for "
                  f"the host the device dials")
    close_link(at, 0, wss_verified_endpoint)
    set_tls(at, VERIFY_SERVER, ca_number=TEST_CA)   # AT+WSCLOSE released it (WSCFG.reset_on_close)
    why = (f"auth_mode 2 with wss_ca.{TEST_CA} against a server whose certificate the test CA "
           f"signed for another host name")
    attempt = try_open(at, 0, wss_wrong_host_endpoint)
    if not attempt.ok:
        assert_open_failed(at, attempt, "WSCFG.auth_mode.verify_host", why)
        return
    with check("WSCFG.auth_mode.verify_ca"):     # is the chain checked at all? else not KD-8
        set_tls(at, VERIFY_SERVER, ca_number=TEST_CA, link_id=1)
        assert_open_failed(at, try_open(at, 1, wss_stranger_endpoint), "WSCFG.auth_mode.verify_ca",
                           f"auth_mode 2 with wss_ca.{TEST_CA} against a server a stranger CA "
                           f"signed (is the chain verified at all? asked after {why} opened)")
    with deviation("WSCFG.auth_mode.verify_host"):
        raise AssertionError(f"{why}: the open succeeded (the chain was checked, the host name "
                             f"was not); expected it to fail; {describe(attempt)}")


# ---- the client certificate -----------------------------------------------------------------

@pytest.mark.clause("WSCFG.auth_mode.client_cert")
def test_mode_1_presents_the_client_certificate(at, wss_client_auth_endpoint):
    set_tls(at, CLIENT_CERT, CLIENT_PKI, TEST_CA)
    open_with_cert(at, 0, wss_client_auth_endpoint, "WSCFG.auth_mode.client_cert",
                   f"auth_mode 1 with wss_cert.{CLIENT_PKI}")
    assert_data_both_ways(at, 0, wss_client_auth_endpoint, b"client cert \x00\xff")


@pytest.mark.clause("WSCFG.auth_mode.client_cert")
def test_mode_3_presents_the_certificate_and_verifies_the_server(at, wss_client_auth_endpoint):
    """Both checks hold: the server (the test CA signed it) passed wss_ca.0, and the server saw
    the client certificate wss_cert.0."""
    set_tls(at, MUTUAL, CLIENT_PKI, TEST_CA)
    open_with_cert(at, 0, wss_client_auth_endpoint, "WSCFG.auth_mode.client_cert",
                   f"auth_mode 3 with wss_cert.{CLIENT_PKI} and wss_ca.{TEST_CA}")
    assert_data_both_ways(at, 0, wss_client_auth_endpoint, b"mutual \x00\xff")


@pytest.mark.clause("WSCFG.auth_mode.client_cert")
@pytest.mark.parametrize("explicit", [True, False], ids=["auth-mode-0", "auth-mode-left-off"])
def test_mode_0_presents_no_certificate(at, wss_client_auth_endpoint, explicit):
    """A server that requires a client certificate gets none from auth_mode 0: it refuses the
    handshake for that reason, and the open fails."""
    if explicit:
        set_tls(at, NO_AUTH)
    assert_no_certificate(at, 0, wss_client_auth_endpoint, "WSCFG.auth_mode.client_cert",
                          f"auth_mode 0 ({'set' if explicit else 'the default'}) against a server "
                          f"that requires a client certificate")


@pytest.mark.clause("WSCFG.auth_mode.client_cert")
def test_mode_1_with_a_pki_number_without_entry_fails_the_open(at, wss_client_auth_endpoint):
    """A client certificate entry that does not exist fails the open; the same link with entry
    0 then opens to the same server (the entry, nothing else, failed it)."""
    set_tls(at, CLIENT_CERT, NO_SUCH_ENTRY, TEST_CA)
    assert_open_failed(at, try_open(at, 0, wss_client_auth_endpoint),
                       "WSCFG.auth_mode.client_cert",
                       f"auth_mode 1 with wss_cert.{NO_SUCH_ENTRY}, a partition entry that does "
                       f"not exist, against a server that requires a client certificate",
                       at_tls=False)
    set_tls(at, CLIENT_CERT, CLIENT_PKI, TEST_CA)
    open_with_cert(at, 0, wss_client_auth_endpoint, "WSCFG.auth_mode.client_cert",
                   f"auth_mode 1 with wss_cert.{CLIENT_PKI} (after wss_cert.{NO_SUCH_ENTRY} "
                   f"failed)")


# ---- the mode's lifetime: per link, released by AT+WSCLOSE ----------------------------------

@pytest.mark.clause("WSCFG.per_link", "WSCFG.auth_mode.client_cert")
def test_auth_mode_is_per_link(at, wss_client_auth_endpoint, wss_stranger_endpoint):
    """Link 0 set to mutual authentication; link 1, never configured, neither presents a
    certificate nor verifies the server; link 0 then still presents its certificate."""
    set_tls(at, MUTUAL, CLIENT_PKI, TEST_CA, link_id=0)
    assert_no_certificate(at, 1, wss_client_auth_endpoint, "WSCFG.per_link",
                          "link 1 (never configured), after AT+WSCFG set auth_mode 3 on link 0, "
                          "against a server that requires a client certificate")
    assert_opened(try_open(at, 1, wss_stranger_endpoint), "WSCFG.per_link",
                  "link 1 (never configured), after AT+WSCFG set auth_mode 3 on link 0, against a "
                  "server a stranger CA signed (link 1 verifies nothing)")
    open_with_cert(at, 0, wss_client_auth_endpoint, "WSCFG.auth_mode.client_cert",
                   "link 0 with auth_mode 3, after link 1 opened")


@pytest.mark.clause("WSCFG.reset_on_close", "WSCFG.auth_mode.verify_ca")
def test_wsclose_releases_server_verification(at, wss_verified_endpoint, wss_stranger_endpoint):
    """auth_mode 2 on link 0, an open and AT+WSCLOSE: the next open of link 0 verifies nothing
    (the default auth_mode 0), so a server a stranger CA signed opens."""
    set_tls(at, VERIFY_SERVER, ca_number=TEST_CA)
    assert_opened(try_open(at, 0, wss_verified_endpoint), "WSCFG.auth_mode.verify_ca",
                  f"auth_mode 2 with wss_ca.{TEST_CA} against a server the test CA signed")
    close_link(at, 0, wss_verified_endpoint)
    assert_opened(try_open(at, 0, wss_stranger_endpoint), "WSCFG.reset_on_close",
                  "after auth_mode 2 and AT+WSCLOSE (the configuration released: auth_mode 0 "
                  "again), link 0 against a server a stranger CA signed")


@pytest.mark.clause("WSCFG.reset_on_close", "WSCFG.auth_mode.client_cert")
def test_wsclose_releases_the_client_certificate(at, wss_client_auth_endpoint):
    """auth_mode 1 on link 0, an open that presents the certificate, AT+WSCLOSE: the next open of
    link 0 presents none (the default auth_mode 0)."""
    set_tls(at, CLIENT_CERT, CLIENT_PKI, TEST_CA)
    open_with_cert(at, 0, wss_client_auth_endpoint, "WSCFG.auth_mode.client_cert",
                   f"auth_mode 1 with wss_cert.{CLIENT_PKI}")
    close_link(at, 0, wss_client_auth_endpoint)
    assert_no_certificate(at, 0, wss_client_auth_endpoint, "WSCFG.reset_on_close",
                          "after auth_mode 1 and AT+WSCLOSE (the configuration released: "
                          "auth_mode 0 again), link 0 against the server that requires a client "
                          "certificate")
