"""Where a link goes and how it is secured: the AT+WSCFG values a link is opened with, its
ws:// or wss:// URI, and the TLS client its <auth_mode> asks for (VERSIONS.md tls)."""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import spec
from sim.behaviour import Behaviour
from sim.pki import CA, CERT, KEY, Pki

_SPEC = spec.load()


@dataclass(frozen=True)
class LinkConfig:
    """AT+WSCFG values, copied into a link when it is opened (Device.default_link_config when
    none was given)."""

    ping_intv_sec: int
    ping_timeout_sec: int
    buffer_size: int
    # tls: <auth_mode> (0 none, 1 client certificate, 2 verify the server, 3 both) and the
    # partition entries it uses (None: not given, auth_mode 0).
    auth_mode: int = _SPEC.default("AT+WSCFG", "auth_mode")
    pki_number: int | None = None
    ca_number: int | None = None

    @property
    def presents_client_cert(self) -> bool:
        return self.auth_mode in CLIENT_CERT_MODES

    @property
    def verifies_server(self) -> bool:
        return self.auth_mode in VERIFY_SERVER_MODES


# VERSIONS.md tls: which <auth_mode> values present a client certificate, and which verify the
# server with a CA (and its host name).
CLIENT_CERT_MODES = (1, 3)
VERIFY_SERVER_MODES = (2, 3)


@dataclass(frozen=True)
class WsUri:
    secure: bool
    host: str
    port: int
    path: str   # as given, "" when the URI has none
    query: str  # as given, without "?"; "" when there is none

    def target(self, fw: Behaviour, reconnecting: bool = False) -> str:
        """The request target: path and query exactly as given, "/" when there is no path."""
        target = self.path or ("" if fw.empty_path_target else "/")
        drop_query = fw.request_drops_query or (reconnecting and fw.reconnect_drops_query)
        if self.query and not drop_query:
            target += "?" + self.query
        return target


def parse_uri(uri: str) -> WsUri:
    """ws://host[:port][/path][?query] and wss://...; ValueError for anything else."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URI: {uri!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {uri!r}") from exc
    secure = scheme == "wss"
    if port is None:
        port = 443 if secure else 80
    if port == 0:
        raise ValueError(f"port 0 in {uri!r}")
    return WsUri(secure=secure, host=parts.hostname, port=port, path=parts.path, query=parts.query)




def tls_context(config: LinkConfig, pki: Pki, fw: Behaviour) -> ssl.SSLContext:
    """The TLS client of a wss:// open under <auth_mode> (VERSIONS.md tls): modes 1 and 3 present
    client certificate <pki_number> with its key when the server asks; modes 2 and 3 verify the
    server chain with CA <ca_number> and its host name; modes 0 and 1 verify nothing (the seed).
    A partition entry the mode needs and the PKI lacks: PkiEntryMissing, the open fails."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if config.verifies_server and not fw.tls_ca_not_checked:
        ctx.load_verify_locations(cafile=pki.path(CA, config.ca_number))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = not fw.tls_host_not_checked       # KD-8: the chain alone
    else:
        if config.verifies_server:
            pki.path(CA, config.ca_number)           # (defect) loaded, never used
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if config.presents_client_cert and not fw.tls_client_cert_not_sent:
        ctx.load_cert_chain(certfile=pki.path(CERT, config.pki_number),
                            keyfile=pki.path(KEY, config.pki_number))
    return ctx


