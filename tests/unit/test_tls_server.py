"""The wss:// test server (servers/tls.py): every TLS handshake recorded, completed (with the
client certificate's CN) or failed (with OpenSSL's reason, or the client closing during it); only
a completed one reaches HTTP and an endpoint; a request that arrives with the client's last
handshake bytes is not lost; a plain server records none."""
from __future__ import annotations

import socket
import ssl
import time

import pytest

from wire.handshake import accept_for, new_key
from fixtures.pki import CLIENT_CN, TestPki, fresh_pki
from servers import WsTestServer
from servers.tls import NO_CLIENT_CERTIFICATE

HOST = "127.0.0.1"
WAIT_S = 2.0           # a loopback handshake ends in milliseconds: this bounds a hang


@pytest.fixture(scope="module")
def the_pki(tmp_path_factory) -> TestPki:
    return fresh_pki(tmp_path_factory.mktemp("pki"), HOST)


@pytest.fixture(scope="module")
def client_auth(the_pki):
    with WsTestServer(ssl=the_pki.server_context("verified", require_client_cert=True)) as srv:
        yield srv


def client_context(the_pki: TestPki, with_cert: bool, ca: str = "test-ca") -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(the_pki.certificate(ca))
    if with_cert:
        context.load_cert_chain(the_pki.certificate("client"), the_pki.directory / "client.key")
    return context


def upgrade_request(path: str, key: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def read_head(sock) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_a_client_certificate_the_test_ca_signed_is_recorded_and_reaches_http(the_pki,
                                                                             client_auth):
    ep = client_auth.endpoint("with-cert")
    key = new_key()
    with socket.create_connection((HOST, client_auth.port), timeout=WAIT_S) as raw, \
            client_context(the_pki, True).wrap_socket(raw, server_hostname=HOST) as tls:
        tls.sendall(upgrade_request(ep.path, key))
        head = read_head(tls)
    assert head.startswith(b"HTTP/1.1 101 ") and accept_for(key).encode() in head, head
    handshake = ep.wait_tls_handshake(timeout=WAIT_S)
    assert (handshake.completed, handshake.client_cert_cn, handshake.reason) == (True, CLIENT_CN,
                                                                                 None)
    assert ep.connections[0].client_cert_cn == CLIENT_CN
    assert "completed" in handshake.words() and CLIENT_CN in handshake.words()


def test_no_client_certificate_fails_the_handshake_with_its_reason(the_pki, client_auth):
    ep = client_auth.endpoint("no-cert")
    with socket.create_connection((HOST, client_auth.port), timeout=WAIT_S) as raw, \
            client_context(the_pki, False).wrap_socket(raw, server_hostname=HOST) as tls:
        # TLS 1.3: the client's handshake ends before the server checks for its certificate.
        try:
            tls.sendall(upgrade_request(ep.path, new_key()))
            answer = read_head(tls)
        except (ssl.SSLError, ConnectionError):
            answer = b""
    assert answer == b""
    handshake = ep.wait_tls_handshake(timeout=WAIT_S)
    assert (handshake.completed, handshake.reason) == (False, NO_CLIENT_CERTIFICATE)
    assert handshake.failed and "peer did not return a certificate" in handshake.error
    assert ep.connections == [] and client_auth.unmatched_handshakes() == []
    assert NO_CLIENT_CERTIFICATE in ep.describe()


def test_a_client_that_refuses_the_server_and_closes_is_recorded(the_pki, client_auth):
    ep = client_auth.endpoint("refuses")
    with socket.create_connection((HOST, client_auth.port), timeout=WAIT_S) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            client_context(the_pki, True, ca="stranger-ca").wrap_socket(raw, server_hostname=HOST)
    handshake = ep.wait_tls_handshake(timeout=WAIT_S)
    assert handshake.failed and handshake.peer.startswith(f"{HOST}:")
    # A blocking client sends its alert before it closes (asyncio's client just closes: that
    # shows as ConnectionResetError, as in the next test).
    assert handshake.reason == "TLSV1_ALERT_UNKNOWN_CA", handshake
    assert ep.connections == []


def test_a_client_that_closes_before_hello_is_recorded(client_auth):
    ep = client_auth.endpoint("silent")
    started = time.monotonic()
    socket.create_connection((HOST, client_auth.port), timeout=WAIT_S).close()
    handshake = ep.wait_tls_handshake(since=started, timeout=WAIT_S)
    assert (handshake.failed, handshake.reason) == (True, "ConnectionResetError")
    assert started <= handshake.started <= handshake.ended


def test_a_request_sent_with_the_last_handshake_bytes_is_not_lost(the_pki, client_auth):
    """The client's Finished and its upgrade request in one segment: the server decrypts the
    request as the handshake ends, before it hands the connection to HTTP."""
    ep = client_auth.endpoint("same-segment")
    key = new_key()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context(the_pki, True).wrap_bio(incoming, outgoing, server_hostname=HOST)
    with socket.create_connection((HOST, client_auth.port), timeout=WAIT_S) as sock:
        while True:
            try:
                client.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        client.write(upgrade_request(ep.path, key))
        sock.sendall(outgoing.read())                  # Finished (and more), then the request
        answer = b""
        while b"\r\n\r\n" not in answer:
            try:
                answer += client.read(65536)
            except ssl.SSLWantReadError:
                incoming.write(sock.recv(65536))
    assert b"HTTP/1.1 101 " in answer and accept_for(key).encode() in answer, answer
    assert ep.wait_connection(timeout=WAIT_S).handshake.path == ep.path


def test_handshakes_are_the_servers_since_a_time_and_an_endpoints_since_it_was_made(client_auth):
    before = client_auth.tls_handshakes()
    ep = client_auth.endpoint("later")
    assert ep.tls_handshakes == [] and len(before) >= 1
    assert client_auth.tls_handshakes(since=time.monotonic()) == []
    with pytest.raises(AssertionError, match="a TLS handshake to end"):
        ep.wait_tls_handshake(timeout=0.1)


def test_a_plain_server_records_no_handshake():
    with WsTestServer() as srv:
        ep = srv.endpoint()
        socket.create_connection((HOST, srv.port), timeout=WAIT_S).close()
        assert srv.tls_handshakes() == [] and ep.tls_handshakes == []
