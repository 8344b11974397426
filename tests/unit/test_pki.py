"""The test PKI (fixtures/pki.py): who signed what for which name, the partition files the model
reads, the session's PKI made once and removed at exit, a fixed one for a board
(`python -m fixtures.pki DIR`, `--test-pki DIR`), and key material never in the repository."""
from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from fixtures import pki
from fixtures.pki import (CLIENT_CN, PARTITIONS, PROJECT_ROOT, SERVER_IDENTITIES, WRONG_HOST,
                          TestPki, fixed_pki_problem, fresh_pki, session_pki, write_pki)

HOST = "127.0.0.1"
ADDRESS = x509.IPAddress(ipaddress.ip_address(HOST))
DNS_HOST = "lab-host.example"


def make(tmp_path: Path, host: str = HOST) -> TestPki:
    return fresh_pki(tmp_path, host)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def server_verifier(the_pki: TestPki, ca: str, name: x509.GeneralName):
    store = Store([cert(the_pki.certificate(ca))])
    return PolicyBuilder().store(store).build_server_verifier(name)


def cn(certificate: x509.Certificate) -> str:
    return certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


@pytest.fixture(scope="module")
def the_pki(tmp_path_factory) -> TestPki:
    return make(tmp_path_factory.mktemp("pki"))


def test_the_verified_server_is_the_test_cas_for_the_host(the_pki):
    leaf = cert(the_pki.certificate("verified"))
    server_verifier(the_pki, "test-ca", ADDRESS).verify(leaf, [])
    with pytest.raises(VerificationError):
        server_verifier(the_pki, "stranger-ca", ADDRESS).verify(leaf, [])
    # An address is named as a dNSName too, for TLS clients that match host names only there.
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [HOST]
    assert cn(leaf) == HOST


def test_the_wrong_host_server_is_the_test_cas_for_another_name(the_pki):
    leaf = cert(the_pki.certificate("wrong_host"))
    server_verifier(the_pki, "test-ca", x509.DNSName(WRONG_HOST)).verify(leaf, [])
    with pytest.raises(VerificationError, match="(?i)name|san|subject"):
        server_verifier(the_pki, "test-ca", ADDRESS).verify(leaf, [])


def test_the_stranger_server_is_the_stranger_cas_for_the_host(the_pki):
    leaf = cert(the_pki.certificate("stranger"))
    server_verifier(the_pki, "stranger-ca", ADDRESS).verify(leaf, [])
    with pytest.raises(VerificationError):
        server_verifier(the_pki, "test-ca", ADDRESS).verify(leaf, [])


def test_a_dns_host_is_named_as_a_dns_name(tmp_path):
    the_pki = make(tmp_path, DNS_HOST)
    leaf = cert(the_pki.certificate("verified"))
    server_verifier(the_pki, "test-ca", x509.DNSName(DNS_HOST)).verify(leaf, [])


def test_the_client_identity_is_the_test_cas(the_pki):
    """(A TLS server accepting it: tests/unit/test_tls_server.py.)"""
    leaf = cert(the_pki.certificate("client"))
    assert cn(leaf) == CLIENT_CN
    leaf.verify_directly_issued_by(cert(the_pki.certificate("test-ca")))
    with pytest.raises(ValueError):
        leaf.verify_directly_issued_by(cert(the_pki.certificate("stranger-ca")))


def test_the_partitions_are_what_the_model_reads(the_pki):
    """wss_cert.0/wss_key.0 the client identity, wss_ca.0 the test CA, wss_ca.1 the stranger CA:
    the names sim/pki.py looks up; keys readable by their owner only."""
    from sim.pki import CA, CERT, KEY, Pki
    model = Pki(the_pki.partitions)
    assert sorted(p.name for p in the_pki.partitions.iterdir()) == sorted(PARTITIONS)
    assert model.path(CERT, 0).read_bytes() == the_pki.certificate("client").read_bytes()
    assert model.path(KEY, 0).read_bytes() == (the_pki.directory / "client.key").read_bytes()
    assert model.path(CA, 0).read_bytes() == the_pki.certificate("test-ca").read_bytes()
    assert model.path(CA, 1).read_bytes() == the_pki.certificate("stranger-ca").read_bytes()
    keys = [*the_pki.directory.glob("*.key"), *the_pki.servers.glob("*.key"),
            the_pki.partitions / "wss_key.0.pem"]
    assert len(keys) == 3 + len(SERVER_IDENTITIES) + 1
    assert {oct(k.stat().st_mode & 0o777) for k in keys} == {"0o600"}


def test_server_contexts(the_pki):
    for identity in SERVER_IDENTITIES:
        assert the_pki.server_context(identity).verify_mode == ssl.CERT_NONE
    assert the_pki.server_context("verified", require_client_cert=True).verify_mode == \
        ssl.CERT_REQUIRED
    with pytest.raises(ValueError, match="no server identity 'client'"):
        the_pki.server_context("client")


class FakeConfig:
    def __init__(self, **options) -> None:
        self.stash = pytest.Stash()
        self.options = {"--ws-host": HOST, "--test-pki": None, **options}

    def getoption(self, name, default=None):
        return self.options.get(name, default)


@pytest.fixture
def at_exit(monkeypatch):
    """What session_pki registers to run at exit, run when the test asks."""
    registered = []
    monkeypatch.setattr(pki.atexit, "register", lambda f, *a, **k: registered.append((f, a, k)))

    def run() -> None:
        for f, a, k in registered:
            f(*a, **k)
    run.registered = registered
    return run


def test_session_pki_is_made_once_outside_the_repository_and_removed_at_exit(at_exit):
    config = FakeConfig()
    first = session_pki(config)
    assert session_pki(config) is first
    assert len(at_exit.registered) == 1
    for place in (first.directory, first.servers, first.partitions):
        assert place.is_dir() and not place.resolve().is_relative_to(PROJECT_ROOT)
    assert first.host == HOST
    at_exit()
    assert not first.directory.exists() and not first.servers.exists()


def test_a_fixed_pki_keeps_its_cas_and_gets_server_identities_per_session(tmp_path, at_exit,
                                                                         capsys):
    fixed = tmp_path / "board-pki"
    assert pki.main([str(fixed)]) == 0
    assert f"--test-pki {fixed}" in capsys.readouterr().out
    assert fixed_pki_problem(fixed) is None
    before = {p: p.read_bytes() for p in fixed.rglob("*") if p.is_file()}
    the_pki = session_pki(FakeConfig(**{"--test-pki": str(fixed)}))
    assert the_pki.directory == fixed and the_pki.partitions == fixed / "partitions"
    leaf = cert(the_pki.certificate("verified"))
    server_verifier(the_pki, "test-ca", ADDRESS).verify(leaf, [])
    at_exit()
    assert {p: p.read_bytes() for p in fixed.rglob("*") if p.is_file()} == before
    assert not the_pki.servers.exists()
    # Made for a board: the CAs and the client identity hold for years.
    ca = cert(fixed / "test-ca.crt")
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > datetime.timedelta(days=3000)


def test_the_cli_refuses_a_used_directory_and_the_repository(tmp_path, capsys):
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        pki.main([str(used)])
    assert exit_info.value.code == 2
    inside = PROJECT_ROOT / "reports" / "no-pki-here"
    with pytest.raises(SystemExit):
        pki.main([str(inside)])
    assert not inside.exists()
    errors = capsys.readouterr().err
    assert "not an empty directory" in errors and "inside the repository" in errors


def test_fixed_pki_problems(tmp_path):
    assert "no such directory" in fixed_pki_problem(tmp_path / "none")
    assert "inside the repository" in fixed_pki_problem(PROJECT_ROOT / "fixtures")
    write_pki(tmp_path / "a")
    write_pki(tmp_path / "b")
    assert fixed_pki_problem(tmp_path / "a") is None
    (tmp_path / "a" / "test-ca.key").write_bytes((tmp_path / "b" / "test-ca.key").read_bytes())
    assert fixed_pki_problem(tmp_path / "a") == "test-ca.key is not the key of test-ca.crt"
    (tmp_path / "b" / "partitions" / "wss_ca.1.pem").unlink()
    assert "no partitions/wss_ca.1.pem" in fixed_pki_problem(tmp_path / "b")
