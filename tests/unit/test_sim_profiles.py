"""Unit tests of the reference model's later profiles (VERSIONS.md, the contract of issue 14):
wshead (AT+WSHEAD), auth (AT+WSOPEN <auth>), tls (AT+WSCFG <auth_mode>,<pki_number>,<ca_number>
against real TLS servers and a temporary PKI), current (AT+WSSEND <fin> and length 0, the 16 KiB
limits, AT+WSDATAFMT and every +WS_DATA form), and one test per defect of those profiles that shows
its knob changing what the model does. The model runs in a thread (sim.SimThread), the server is the
raw recorder of tests/unit/test_sim.py, so every byte on the AT port and on the wire is checked."""
from __future__ import annotations

import contextlib
import datetime
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import spec
from fixtures import profile as profile_rules
from sim import Device, PROFILES, get_profile
from sim.commands import COMMANDS
from sim.profiles import BASIC_COMMANDS
from tests.unit.test_sim import (DEFAULT_INTERVALS, ERROR, OK, AtPort, ServerConn, WsServer,
                                 cli_model, model_at, running_ws_server)
from wire.frames import (OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT, close_payload,
                         encode_frame)

pytestmark = pytest.mark.timeout(15)

SPEC = spec.load()
ROOT = Path(__file__).resolve().parents[2]
PROMPT = b"\r\nOK\r\n\r\n>"
SEND_OK = b"\r\nSEND OK\r\n"
LATER = SPEC.profile_order[1:]                     # wshead, auth, tls, current


# ---- helpers -------------------------------------------------------------------------------

def data_mode(at: AtPort, line: str, data: bytes) -> tuple[bytes, bytes]:
    """A command that prompts: (what came up to the prompt, what came after the data up to the
    final OK, ERROR or SEND OK)."""
    at.write(line.encode() + b"\r\n")
    prompt = at.expect(b">")
    at.write(data)
    m = at.expect_re(rb"\r\n(SEND OK|OK|ERROR)\r\n")
    return prompt, m.string[:m.end()]


def wshead(at: AtPort, header: bytes) -> bytes:
    prompt, after = data_mode(at, f"AT+WSHEAD={len(header)}", header)
    assert prompt == PROMPT, prompt
    return after


def opened(at: AtPort, server: WsServer, link_id: int = 0, extra: str = "") -> ServerConn:
    resp = at.cmd(f'AT+WSOPEN={link_id},"{server.uri()}"{extra}')
    assert resp == f"+WS_CONNECTED:{link_id}\r\n".encode() + OK, resp
    return server.accept()


def header_lines(conn: ServerConn) -> list[str]:
    """The request's header lines after the Sec-WebSocket-Key, as sent."""
    lines = conn.request_lines()
    key_at = next(i for i, line in enumerate(lines) if line.startswith("Sec-WebSocket-Key: "))
    return lines[key_at + 1:]


def exactly(at: AtPort, expected: bytes, settle: float = 0.2) -> None:
    """The AT port prints `expected` and nothing else (before it, or within `settle` after)."""
    got = at.expect(expected)
    assert got == expected, got
    assert at.quiet_for(settle) == b""


def gone(at: AtPort, timeout: float = 3.0) -> None:
    """Until AT+WSOPEN? lists no link."""
    deadline = time.monotonic() + timeout
    while at.cmd("AT+WSOPEN?") != OK:
        assert time.monotonic() < deadline, "a link is still listed"
        time.sleep(0.05)


def send_ok(at: AtPort, line: str, data: bytes) -> None:
    prompt, after = data_mode(at, line, data)
    assert (prompt, after) == (PROMPT, SEND_OK), (prompt, after)


# ---- every profile is modelled ---------------------------------------------------------------

def test_every_spec_profile_is_modelled_from_the_spec_data():
    assert list(PROFILES) == list(SPEC.profile_order)
    for name, model in PROFILES.items():
        data = SPEC.profiles[name]
        assert model.spec is data and get_profile(name) is model and get_profile(data) is model
        assert model.commands == BASIC_COMMANDS + data.commands
        assert (model.buffer_size_max, model.wssend_length_max) == (data.buffer_size_max,
                                                                    data.wssend_length_max)
        assert all(c in COMMANDS for c in model.commands)
    with pytest.raises(ValueError, match="unknown profile 'nightly'; known: seed, wshead"):
        Device("nightly")
    bad = subprocess.run([sys.executable, "-m", "sim", "--profile", "nightly"], cwd=ROOT,
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "unknown profile 'nightly'" in bad.stderr


@pytest.mark.parametrize("name", SPEC.profile_order)
def test_cmd_and_gmr_tell_the_profile(name):
    with model_at(profile=name) as at:
        listing = at.cmd("AT+CMD?")
        names = re.findall(rb'\+CMD:\d+,"([^"]+)"', listing)
        assert [n.decode() for n in names] == list(BASIC_COMMANDS + SPEC.profiles[name].commands)
        assert (b'"AT+WSHEAD",0,1,1,0' in listing) == SPEC.profiles[name].includes("wshead")
        assert (b'"AT+WSDATAFMT",0,0,1,0' in listing) == (name == "current")
        gmr = at.cmd("AT+GMR").split(b"\r\n")
        assert re.fullmatch(rb"AT version:.*\(esp-at-ws reference model - profile "
                            + name.encode() + rb" - defects none - ESP32C2\)", gmr[0]), gmr
        assert re.fullmatch(rb"compile time\(sim\):[A-Z][a-z]{2} 15 \d{4} 10:20:30", gmr[2]), gmr
        built = profile_rules.compile_date([gmr[2]])
        since = SPEC.profiles[name].firmware_from or SPEC.profiles[name].doc_date
        assert (built.year, built.month) <= tuple(map(int, since.split("-")))
        if SPEC.profiles[name].firmware_from:
            assert f"{built.year}-{built.month:02d}" == SPEC.profiles[name].firmware_from
        # Without the model's own line, AT+CMD? and the compile time alone give the profile.
        commands = frozenset(n.decode() for n in names)
        assert profile_rules.detect(commands, gmr[1:]).name == name
        # The commands of later profiles are not there.
        if not SPEC.profiles[name].includes("wshead"):
            assert at.cmd("AT+WSHEAD?") == ERROR and at.cmd("AT+WSHEAD=0") == ERROR
        if name != "current":
            assert at.cmd("AT+WSDATAFMT=0,0,48") == ERROR


def test_tls_model_is_compiled_in_its_firmware_month():
    assert PROFILES["tls"].compile_time() == "Sep 15 2024 10:20:30"
    assert PROFILES["wshead"].compile_time() == "Jun 15 2023 10:20:30"   # before auth's 2023-07


# ---- field counts come from the profile's form -------------------------------------------------

FIELD_VALUES = {"link_id": "1", "ping_intv_sec": "10", "ping_timeout_sec": "120",
                "buffer_size": "1024", "auth_mode": "1", "pki_number": "0", "ca_number": "0",
                "subprotocol": '"chat"', "timeout_ms": "5000", "auth": '"Bearer x"',
                "length": "3", "opcode": "2", "fin": "1", "req_header_len": "0",
                "meta_data_level": "0", "meta_data_mask": "48"}


@pytest.mark.parametrize("name", SPEC.profile_order)
def test_a_field_past_the_profiles_form_is_error(name):
    """Each command with every field of its form under the profile is taken; one more is ERROR."""
    with running_ws_server() as srv, model_at(profile=name) as at:
        values = dict(FIELD_VALUES, uri=f'"{srv.uri()}"')
        commands = [c for c in ("AT+WSCFG", "AT+WSHEAD", "AT+WSDATAFMT", "AT+WSOPEN",
                                "AT+WSSEND", "AT+WSCLOSE") if c in SPEC.profiles[name].commands]
        conns: list[ServerConn] = []
        for command in commands:
            full = ",".join(values[f.name] for f in SPEC.form(command, name))
            assert at.cmd(f"{command}={full},1") == ERROR, (command, full)
            if command == "AT+WSSEND":
                send_ok(at, f"{command}={full}", b"abc")
                frame = conns[0].next_frame()
                assert (frame.opcode, frame.fin, frame.payload) == (OP_BINARY, True, b"abc")
            elif command == "AT+WSOPEN":
                assert at.cmd(f"{command}={full}") == b"+WS_CONNECTED:1\r\n" + OK
                conns.append(srv.accept())
            else:
                assert at.cmd(f"{command}={full}") == OK, (command, full)
        assert srv.conns.empty()          # the refused AT+WSOPEN connected nowhere


def test_wssend_fin_field_is_error_before_current_and_sends_fin_under_current():
    for name in SPEC.profile_order:
        with running_ws_server() as srv, model_at(profile=name) as at:
            conn = opened(at, srv)
            if name != "current":
                assert at.cmd("AT+WSSEND=0,5,2,1000,1") == ERROR
                continue
            send_ok(at, "AT+WSSEND=0,5,2,1000,1", b"12345")
            frame = conn.next_frame()
            assert (frame.opcode, frame.fin, frame.payload) == (OP_BINARY, True, b"12345")


# ---- AT+WSHEAD (wshead) -------------------------------------------------------------------------

def test_wshead_query_set_and_clear_to_the_byte():
    with model_at(profile="wshead") as at:
        assert at.cmd("AT+WSHEAD?") == OK                         # none stored: only OK
        assert wshead(at, b"X-One:   one") == OK
        assert wshead(at, b"X-Two:two: 2") == OK                   # a colon in the value stays
        assert at.cmd("AT+WSHEAD?") == (b'+WSHEAD:0,"X-One:one"\r\n'
                                        b'+WSHEAD:1,"X-Two:two: 2"\r\n' + OK)
        at.write(b"AT+WSHEAD=0\r\n")
        exactly(at, OK)                                            # no prompt
        assert at.cmd("AT+WSHEAD?") == OK


@pytest.mark.parametrize("header", [b"X-A: b\r\n", b"X-A: b\rc", b"X-A:\nb", b"no colon here",
                                    b": empty key"])
def test_wshead_refuses_after_the_bytes_and_stores_nothing(header):
    with model_at(profile="wshead") as at:
        assert wshead(at, b"X-Kept: yes") == OK
        assert wshead(at, header) == ERROR
        assert at.cmd("AT") == OK                                  # every byte was taken
        assert at.cmd("AT+WSHEAD?") == b'+WSHEAD:0,"X-Kept:yes"\r\n' + OK


def test_wshead_length_checks():
    with model_at(profile="wshead") as at:
        for args in ("1024", "-1", "", "1,1", '"5"', "0x5"):
            at.write(f"AT+WSHEAD={args}\r\n".encode())
            exactly(at, ERROR)                                     # no prompt
        header = b"X-Long: " + b"v" * (1023 - 8)
        assert wshead(at, header) == OK
        assert at.cmd("AT+WSHEAD?") == b'+WSHEAD:0,"X-Long:' + b"v" * 1015 + b'"\r\n' + OK


def test_wshead_headers_are_global_sent_on_reconnect_kept_over_wsclose_lost_on_rst():
    with running_ws_server() as srv, model_at(profile="wshead") as at:
        assert wshead(at, b"X-Trace: abc") == OK
        assert wshead(at, b"X-Env:lab") == OK
        for link_id in (0, 1):
            conn = opened(at, srv, link_id)
            assert header_lines(conn) == ["X-Trace: abc", "X-Env: lab"]
        conn.close()                                               # link 1 loses TCP
        at.expect(b"+WS_DISCONNECTED:1\r\n")
        at.expect(b"+WS_CONNECTED:1\r\n", timeout=3)
        assert header_lines(srv.accept()) == ["X-Trace: abc", "X-Env: lab"]
        assert at.cmd("AT+WSCLOSE=0") == OK
        assert header_lines(opened(at, srv, 0)) == ["X-Trace: abc", "X-Env: lab"]
        at.write(b"AT+RST\r\n")
        at.expect(b"\r\nready\r\n")
        at.cmd("ATE0")
        assert at.cmd("AT+WSHEAD?") == OK
        assert header_lines(opened(at, srv, 2)) == []


# ---- AT+WSOPEN <auth> (auth) -------------------------------------------------------------------

def test_handshake_header_order_with_subprotocol_auth_and_two_wshead_headers():
    with running_ws_server() as srv, model_at(profile="auth") as at:
        assert wshead(at, b"X-Trace: abc") == OK
        assert wshead(at, b"X-Env:  lab") == OK
        conn = opened(at, srv, 0, ',"chat",5000,"Bearer t0k\\,en"')
        lines = conn.request_lines()
        key = lines[6].removeprefix("Sec-WebSocket-Key: ")
        assert lines == ["GET / HTTP/1.1", "Connection: Upgrade", f"Host: 127.0.0.1:{srv.port}",
                         "User-Agent: ESP32 Websocket Client", "Upgrade: websocket",
                         "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Key: {key}",
                         "Sec-WebSocket-Protocol: chat", "Authorization: Bearer t0k,en",
                         "X-Trace: abc", "X-Env: lab"]
        assert conn.request.endswith(b"X-Env: lab\r\n\r\n")
        # No subprotocol: right after the key. Empty fields are allowed.
        conn = opened(at, srv, 1, ',,,"Basic dXNlcg=="')
        assert header_lines(conn) == ["Authorization: Basic dXNlcg==", "X-Trace: abc",
                                      "X-Env: lab"]
        # No auth, or an empty one: no Authorization header.
        assert header_lines(opened(at, srv, 2, ',"chat",,""')) == [
            "Sec-WebSocket-Protocol: chat", "X-Trace: abc", "X-Env: lab"]
        # A reconnect carries it again.
        conn.close()
        at.expect(b"+WS_CONNECTED:1\r\n", timeout=3)
        assert header_lines(srv.accept())[0] == "Authorization: Basic dXNlcg=="


def test_auth_must_be_quoted_and_bounded_by_the_line_limit():
    with running_ws_server() as srv, model_at(profile="auth") as at:
        assert at.cmd(f'AT+WSOPEN=0,"{srv.uri()}",,,Bearer') == ERROR
        assert at.cmd(f'AT+WSOPEN=0,"{srv.uri()}",,,"Bearer') == ERROR
        head = f'AT+WSOPEN=0,"{srv.uri()}",,,"Bearer '
        limit = SPEC.at.command_line_max_bytes
        fill = "x" * (limit - len(head) - 1)
        assert at.cmd(head + fill + "x" + '"') == ERROR               # 257 bytes
        assert srv.conns.empty()
        assert at.cmd(head + fill + '"') == b"+WS_CONNECTED:0\r\n" + OK   # 256 bytes
        assert header_lines(srv.accept()) == [f"Authorization: Bearer {fill}"]
    with running_ws_server() as srv, model_at(profile="wshead") as at:      # before auth
        assert at.cmd(f'AT+WSOPEN=0,"{srv.uri()}",,,"Bearer x"') == ERROR


def test_kd1_refuses_an_empty_timeout_before_an_auth_field_too():
    with running_ws_server() as srv, model_at("KD-1", profile="auth") as at:
        assert at.cmd(f'AT+WSOPEN=0,"{srv.uri()}",,,"Bearer x"') == ERROR
        assert at.cmd(f'AT+WSOPEN=0,"{srv.uri()}",,5000,"Bearer x"') == b"+WS_CONNECTED:0\r\n" + OK


def test_auth_value_is_never_logged():
    secret = "s3cr3t-t0ken"
    with running_ws_server() as srv, \
            cli_model("--profile", "auth", "--reconnect-wait", "0.3") as (at, printed):
        conn = opened(at, srv, 0, f',,,"Bearer {secret}"')
        conn.close()                                               # a reconnect is logged too
        at.expect(b"+WS_CONNECTED:0\r\n", timeout=3)
        for line in (f'AT+WSOPEN=1,"{srv.uri()}",,,"Bearer {secret}',        # unterminated
                     f'AT+WSOPEN=1,"{srv.uri()}",,,Bearer-{secret}',          # unquoted
                     f'AT+WSOPEN=1,"{srv.uri()}",,99999999,"Bearer {secret}"',
                     f'AT+WSOPEN=1,"ws://127.0.0.1:1/",,,"Bearer {secret}"'):  # refused port
            assert at.cmd(line).endswith(ERROR)
    log = b"".join(printed)
    assert b"AT+WSOPEN: refused" in log and b"connect failed" in log, log   # the log is on
    assert secret.encode() not in log, log


# ---- AT+WSCFG TLS (tls) ------------------------------------------------------------------------

@pytest.mark.parametrize("args, ok", [
    ("0,10,120", True), ("0,10,120,1024,0", True), ("0,10,120,,0", True), ("0,10,120,1024,", True),
    ("0,10,120,1024,1,0,0", True), ("0,10,120,,2,255,255", True), ("0,10,120,1024,3,7,1", True),
    ("0,10,120,1024,0,1,1", False), ("0,10,120,1024,0,,", False), ("0,10,120,1024,0,1", False),
    ("0,10,120,1024,1", False), ("0,10,120,1024,1,0", False), ("0,10,120,1024,2,,0", False),
    ("0,10,120,1024,4,0,0", False), ("0,10,120,1024,-1", False), ("0,10,120,1024,2,256,0", False),
    ("0,10,120,1024,2,0,-1", False), ("0,10,120,1024,3,0x1,0", False), ('0,10,120,1024,1,"0",0', False),
    ("0,10,120,1024,1,0,0,0", False),
])
def test_wscfg_auth_mode_fields(args, ok):
    with model_at(profile="tls") as at:
        assert at.cmd(f"AT+WSCFG={args}") == (OK if ok else ERROR)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(cn: str, issuer: tuple | None, *, ca: bool = False, san: list | None = None):
    """(certificate, key); issuer (certificate, key) or None for a self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (x509.CertificateBuilder().subject_name(_name(cn))
               .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=7))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False))
    if issuer_cert is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _write(folder: Path, stem: str, cert, key=None) -> tuple[Path, Path | None]:
    cert_file = folder / f"{stem}.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is None:
        return cert_file, None
    key_file = folder / f"{stem}-key.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class LocalPki:
    """The model's partitions (wss_cert.0/wss_key.0 a client identity the test CA signed,
    wss_ca.0 the test CA, wss_ca.1 a stranger CA) and the servers' contexts."""

    CLIENT_CN = "esp-at-ws-client"

    def __init__(self, folder: Path) -> None:
        self.partitions = folder / "pki"
        self.partitions.mkdir()
        servers = folder / "servers"
        servers.mkdir()
        ip = x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))
        ca = _issue("test CA", None, ca=True)
        stranger = _issue("stranger CA", None, ca=True)
        client = _issue(self.CLIENT_CN, ca)
        _write(self.partitions, "wss_ca.0", ca[0])
        _write(self.partitions, "wss_ca.1", stranger[0])
        cert, key = _write(servers, "client", *client)
        cert.rename(self.partitions / "wss_cert.0.pem")
        key.rename(self.partitions / "wss_key.0.pem")
        self.ca_file = self.partitions / "wss_ca.0.pem"
        self.files = {name: _write(servers, name, *_issue(name, issuer, san=san))
                      for name, issuer, san in (
                          ("good", ca, [ip, x509.DNSName("localhost")]),
                          ("other-host", ca, [x509.DNSName("other.example")]),
                          ("stranger", stranger, [ip]))}

    def context(self, name: str, ask_client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.files[name])
        if ask_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=self.ca_file)
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> LocalPki:
    return LocalPki(tmp_path_factory.mktemp("pki"))


@contextlib.contextmanager
def tls_servers(pki: LocalPki):
    """good, other-host, stranger, and mutual (good's certificate, asks for a client one)."""
    servers = {name: WsServer(ssl_context=pki.context(name))
               for name in ("good", "other-host", "stranger")}
    servers["mutual"] = WsServer(ssl_context=pki.context("good", ask_client_cert=True))
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def tls_open(at: AtPort, server: WsServer, wscfg: str, link_id: int = 0) -> bool:
    """AT+WSCFG then AT+WSOPEN of `server`: True when it opened (then closed again), False when
    it failed as a failed open must (ERROR, optionally after +WS_DISCONNECTED, no link, and no
    WebSocket request at the server)."""
    assert at.cmd(f"AT+WSCFG={link_id},{DEFAULT_INTERVALS},1024{wscfg}") == OK
    resp = at.cmd(f'AT+WSOPEN={link_id},"{server.uri()}"', timeout=5)
    if resp.endswith(OK):
        assert resp == f"+WS_CONNECTED:{link_id}\r\n".encode() + OK
        server.conn = server.accept()
        assert at.cmd(f"AT+WSCLOSE={link_id}") == OK
        return True
    assert resp in (ERROR, f"+WS_DISCONNECTED:{link_id}\r\n".encode() + ERROR), resp
    assert at.cmd("AT+WSOPEN?") == OK
    assert server.conns.empty()
    return False


TLS_CASES = [  # (auth fields of AT+WSCFG, server, opens)
    ("", "stranger", True), (",0", "other-host", True), (",0", "mutual", False),
    (",1,0,0", "stranger", True), (",1,0,0", "mutual", True), (",1,5,0", "good", False),
    (",2,0,0", "good", True), (",2,0,0", "other-host", False), (",2,0,0", "stranger", False),
    (",2,0,1", "stranger", True), (",2,0,1", "good", False), (",2,0,5", "good", False),
    (",2,0,0", "mutual", False), (",3,0,0", "mutual", True), (",3,0,1", "mutual", False),
    (",3,5,0", "mutual", False),
]


def test_tls_client_per_auth_mode(pki):
    with tls_servers(pki) as servers, model_at(profile="tls", pki=pki.partitions) as at:
        got = [(fields, name, tls_open(at, servers[name], fields)) for fields, name, _ in TLS_CASES]
        assert got == TLS_CASES
        # mode 3 presented client certificate 0 (mode 1 did too: the mutual server let it in)
        subject = dict(item[0] for item in servers["mutual"].conn.peercert["subject"])
        assert subject["commonName"] == LocalPki.CLIENT_CN


def test_tls_without_pki_partitions_and_ws_ignores_the_mode(pki):
    with tls_servers(pki) as servers, running_ws_server() as plain, \
            model_at(profile="tls") as at:                          # no --pki: empty partitions
        assert not tls_open(at, servers["good"], ",2,0,0")
        assert not tls_open(at, servers["mutual"], ",1,0,0")
        assert tls_open(at, servers["stranger"], ",0")
        assert tls_open(at, plain, ",3,9,9")                        # ws://: the mode is ignored
    with pytest.raises(ValueError, match="--pki .*not a directory"):
        Device("tls", pki=pki.partitions / "missing")


def test_auth_mode_is_reset_with_the_rest_of_the_configuration(pki):
    with tls_servers(pki) as servers, model_at(profile="tls", pki=pki.partitions) as at:
        assert not tls_open(at, servers["stranger"], ",2,0,0")      # a failed open keeps WSCFG
        assert at.cmd(f'AT+WSOPEN=0,"{servers["stranger"].uri()}"').endswith(ERROR)
        assert at.cmd("AT+WSCLOSE=0") == OK                         # resets it
        assert at.cmd(f'AT+WSOPEN=0,"{servers["stranger"].uri()}"') == b"+WS_CONNECTED:0\r\n" + OK


# ---- the development line (current) ------------------------------------------------------------

def test_fin_zero_and_continuations_on_the_wire():
    with running_ws_server() as srv, model_at(profile="current") as at:
        assert at.cmd(f"AT+WSCFG=0,{DEFAULT_INTERVALS},4") == OK
        conn = opened(at, srv)
        send_ok(at, "AT+WSSEND=0,3,1,,0", b"abc")
        send_ok(at, "AT+WSSEND=0,10,0,,0", b"defghijklm")           # past buffer_size, fin 0
        send_ok(at, "AT+WSSEND=0,2,0,,1", b"no")
        send_ok(at, "AT+WSSEND=0,6,2", b"ABCDEF")                   # default fin 1, fragmented
        frames = [conn.next_frame() for _ in range(7)]
        assert [(f.opcode, f.fin, f.payload) for f in frames] == [
            (OP_TEXT, False, b"abc"), (OP_CONTINUATION, False, b"defg"),
            (OP_CONTINUATION, False, b"hijk"), (OP_CONTINUATION, False, b"lm"),
            (OP_CONTINUATION, True, b"no"),
            (OP_BINARY, False, b"ABCD"), (OP_CONTINUATION, True, b"EF")]
        assert all(f.masked for f in frames)
        for args in ("0,2,1,,2", "0,2,1,,-1", "0,2,1,,x", '0,2,1,,"1"'):
            assert at.cmd(f"AT+WSSEND={args}") == ERROR, args


def test_length_zero_sends_an_empty_frame_with_no_prompt():
    with running_ws_server() as srv, model_at(profile="current") as at:
        assert at.cmd("AT+WSSEND=0,0") == ERROR                     # no link
        conn = opened(at, srv)
        at.write(b"AT+WSSEND=0,0\r\n")
        exactly(at, SEND_OK)
        at.write(b"AT+WSSEND=0,0,2,,0\r\n")
        exactly(at, SEND_OK)
        frames = [conn.next_frame(), conn.next_frame()]
        assert [(f.opcode, f.fin, f.payload) for f in frames] == [(OP_TEXT, True, b""),
                                                                  (OP_BINARY, False, b"")]
    for name in SPEC.profile_order[:-1]:
        with running_ws_server() as srv, model_at(profile=name) as at:
            opened(at, srv)
            at.write(b"AT+WSSEND=0,0\r\n")
            exactly(at, ERROR)                                      # released: ERROR, no prompt


def test_16k_limits_one_frame_and_one_ws_data():
    high = SPEC.profiles["current"].buffer_size_max
    assert high == SPEC.profiles["current"].wssend_length_max == 16384
    with running_ws_server() as srv, model_at(profile="current") as at:
        assert at.cmd(f"AT+WSCFG=0,{DEFAULT_INTERVALS},{high + 1}") == ERROR
        assert at.cmd(f"AT+WSCFG=0,{DEFAULT_INTERVALS},{high}") == OK
        conn = opened(at, srv)
        assert at.cmd(f"AT+WSSEND=0,{high + 1}") == ERROR
        payload = bytes(i % 253 for i in range(high))
        send_ok(at, f"AT+WSSEND=0,{high},2", payload)
        frame = conn.next_frame()
        assert (frame.opcode, frame.fin, frame.payload) == (OP_BINARY, True, payload)
        conn.send(encode_frame(OP_BINARY, payload))
        exactly(at, b"+WS_DATA:0,%d," % high + payload + b"\r\n")
    with model_at(profile="tls") as at:
        too_big = SPEC.profiles['tls'].buffer_size_max + 1
        assert at.cmd(f"AT+WSCFG=0,{DEFAULT_INTERVALS},{too_big}") == ERROR


@pytest.mark.parametrize("args, ok", [
    ("0,0,48", True), ("2,2,63", True), ("1,1,1", True), ("0,0,32", True),
    ("3,0,48", False), ("0,3,48", False), ("0,0,0", False), ("0,0,64", False), ("0,0", False),
    ("0", False), ("0,,48", False), ("0,0,", False), ("0,0,48,1", False), ("0,-1,48", False),
])
def test_wsdatafmt_set(args, ok):
    with model_at(profile="current") as at:
        assert at.cmd(f"AT+WSDATAFMT={args}") == (OK if ok else ERROR)


# A text message in two frames with a ping between them, buffer_size 2.
FRAGMENTED = (encode_frame(OP_TEXT, b"abc", fin=False) + encode_frame(OP_PING, b"p")
              + encode_frame(OP_CONTINUATION, b"defg"))
FORMS = [  # (level, mask, the AT port's bytes)
    (0, 63, b"+WS_DATA:0,1,0,3,0,2,ab\r\n+WS_DATA:0,1,0,3,2,1,c\r\n"
            b"+WS_DATA:0,0,1,4,0,2,de\r\n+WS_DATA:0,0,1,4,2,2,fg\r\n"),
    (1, 63, b"+WS_DATA:0,1,0,3,0,3,abc\r\n+WS_DATA:0,0,1,4,0,4,defg\r\n"),
    (2, 63, b"+WS_DATA:0,1,1,7,0,7,abcdefg\r\n"),
    (0, 48, b"+WS_DATA:0,2,ab\r\n+WS_DATA:0,1,c\r\n+WS_DATA:0,2,de\r\n+WS_DATA:0,2,fg\r\n"),
    (1, 48, b"+WS_DATA:0,3,abc\r\n+WS_DATA:0,4,defg\r\n"),
    (2, 48, b"+WS_DATA:0,7,abcdefg\r\n"),
    (1, 3, b"+WS_DATA:0,1,0,abc+WS_DATA:0,0,1,defg"),
    (0, 12, b"+WS_DATA:0,3,0,ab+WS_DATA:0,3,2,c+WS_DATA:0,4,0,de+WS_DATA:0,4,2,fg"),
    (2, 32, b"+WS_DATA:0,abcdefg\r\n"),
    (1, 17, b"+WS_DATA:0,1,3,abc+WS_DATA:0,0,4,defg"),
    (2, 5, b"+WS_DATA:0,1,7,abcdefg"),
]


def receive(at: AtPort, srv: WsServer, frames: bytes, fmt: tuple[int, int] | None,
            buffer_size: int = 2) -> bytes:
    """Open link 0 (buffer_size), set its format, have the server send `frames`; what printed."""
    assert at.cmd(f"AT+WSCFG=0,{DEFAULT_INTERVALS},{buffer_size}") == OK
    if fmt is not None:
        assert at.cmd(f"AT+WSDATAFMT=0,{fmt[0]},{fmt[1]}") == OK
    conn = opened(at, srv)
    conn.send(frames)
    out = at.quiet_for(0.3)
    assert at.cmd("AT+WSCLOSE=0") == OK
    return out


def test_ws_data_forms_per_mask_and_level():
    with running_ws_server() as srv, model_at(profile="current") as at:
        got = [(level, mask, receive(at, srv, FRAGMENTED, (level, mask)))
               for level, mask, _ in FORMS]
        assert got == FORMS


def test_empty_frames_and_messages_print_data_len_0_and_no_data():
    empty_message = encode_frame(OP_BINARY, b"", fin=False) + encode_frame(OP_CONTINUATION, b"")
    with running_ws_server() as srv, model_at(profile="current") as at:
        assert receive(at, srv, empty_message, (0, 63)) == (b"+WS_DATA:0,2,0,0,0,0,\r\n"
                                                            b"+WS_DATA:0,0,1,0,0,0,\r\n")
        assert receive(at, srv, empty_message, (1, 31)) == (b"+WS_DATA:0,2,0,0,0,0,"
                                                            b"+WS_DATA:0,0,1,0,0,0,")
        assert receive(at, srv, empty_message, (2, 63)) == b"+WS_DATA:0,2,1,0,0,0,\r\n"


def test_wsdatafmt_per_link_id_kept_over_closes_reset_by_rst():
    message = encode_frame(OP_BINARY, b"xyz")
    with running_ws_server() as srv, model_at(profile="current") as at:
        assert at.cmd("AT+WSDATAFMT=2,1,31") == OK                 # no link on id 2
        assert receive(at, srv, message, None, 1024) == b"+WS_DATA:0,3,xyz\r\n"  # link 0: default
        conn = opened(at, srv, 2)
        conn.send(message)
        exactly(at, b"+WS_DATA:2,2,1,3,0,3,xyz")
        assert at.cmd("AT+WSCLOSE=2") == OK                        # AT+WSCLOSE leaves it
        conn = opened(at, srv, 2)
        conn.send(encode_frame(OP_CLOSE, close_payload(1000)))     # and so does a server close
        at.expect(b"+WS_CLOSED:2\r\n")
        conn.close()
        gone(at)
        conn = opened(at, srv, 2)
        conn.send(message)
        exactly(at, b"+WS_DATA:2,2,1,3,0,3,xyz")
        at.write(b"AT+RST\r\n")
        at.expect(b"\r\nready\r\n")
        at.cmd("ATE0")
        conn = opened(at, srv, 2)
        conn.send(message)
        exactly(at, b"+WS_DATA:2,3,xyz\r\n")                       # level 0, mask 48 again
