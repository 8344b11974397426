"""The wss:// side of the test server: the TLS handshake of every accepted connection, recorded
whether it completes or not.

A handshake that fails never reaches HTTP, so asyncio's own `create_server(ssl=...)` would drop
it without a word (it reports it only in debug mode). The listener of a wss:// server therefore
accepts plain TCP and runs the handshake itself (`loop.start_tls`): every handshake ends as a
`TlsHandshake` record (completed, with the client certificate's CN; or failed, with OpenSSL's
reason: no client certificate, an unknown CA, the client closing during it), and only a
completed one is handed to the HTTP handler. That is how a test sees what the device did when
its open failed at TLS: presented no certificate, or refused the server's.

The servers' identities come from the test PKI made at start-up (fixtures/pki.py): the seed
profile verifies nothing and takes any of them, later profiles verify with the test CA
(VERSIONS.md `tls`). No key material is stored in the repository.
"""
from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

from .recorder import TlsHandshake, common_name, peer_address

# A client that stalls its handshake is recorded as failed (TimeoutError) after this long.
TLS_HANDSHAKE_TIMEOUT_S = 10.0
# OpenSSL's reason (ssl.SSLError.reason) a server gives when the client certificate it asked
# for did not come.
NO_CLIENT_CERTIFICATE = "PEER_DID_NOT_RETURN_A_CERTIFICATE"


class TlsListener:
    """The protocol factory of a wss:// listener: each accepted connection gets a TlsGate that
    runs the handshake with `context`, calls `record` (on the loop) with its TlsHandshake, and
    on success hands the TLS transport to a fresh `make_handler()` protocol."""

    def __init__(self, context: ssl.SSLContext, make_handler: Callable[[], asyncio.Protocol],
                 record: Callable[[TlsHandshake], None],
                 handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT_S) -> None:
        self.context = context
        self.make_handler = make_handler
        self.record = record
        self.handshake_timeout = handshake_timeout
        self.pending: set[asyncio.Task] = set()   # handshakes under way (the loop holds tasks weakly)

    def __call__(self) -> TlsGate:
        return TlsGate(self)


class TlsGate(asyncio.Protocol):
    """The plain-TCP protocol of one accepted connection until its TLS handshake ends."""

    def __init__(self, listener: TlsListener) -> None:
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Nothing is read until start_tls takes the transport over (it resumes reading), so no
        # byte of the ClientHello ever reaches this protocol.
        transport.pause_reading()  # type: ignore[attr-defined]
        task = asyncio.get_running_loop().create_task(self._handshake(transport))
        self._listener.pending.add(task)
        task.add_done_callback(self._listener.pending.discard)

    async def _handshake(self, transport: asyncio.BaseTransport) -> None:
        listener, loop = self._listener, asyncio.get_running_loop()
        started, peer = time.monotonic(), peer_address(transport.get_extra_info("peername"))
        holder = _UntilHandedOver()
        try:
            tls = await loop.start_tls(transport, holder, listener.context,  # type: ignore[arg-type]
                                       server_side=True,
                                       ssl_handshake_timeout=listener.handshake_timeout)
        except (OSError, EOFError, asyncio.TimeoutError) as exc:   # ssl.SSLError is an OSError
            transport.close()
            listener.record(TlsHandshake(started=started, ended=time.monotonic(), peer=peer,
                                         completed=False, reason=_reason(exc),
                                         error=str(exc) or None))
            return
        listener.record(TlsHandshake(started=started, ended=time.monotonic(), peer=peer,
                                     completed=True,
                                     client_cert_cn=common_name(tls.get_extra_info("peercert"))))
        holder.hand_over(tls, listener.make_handler())


class _UntilHandedOver(asyncio.Protocol):
    """Stands in for the HTTP handler from the end of the handshake until the gate hands the TLS
    transport over: TLS may decrypt the request in the same moment the handshake ends, before
    the gate's task runs again. What came in that moment is given to the handler in order, and
    what comes (or was scheduled) later goes straight to it."""

    def __init__(self) -> None:
        self._handler: asyncio.Protocol | None = None
        self._data: list[bytes] = []
        self._eof = False
        self._lost: tuple[BaseException | None] | None = None

    def data_received(self, data: bytes) -> None:
        if self._handler is not None:
            self._handler.data_received(data)  # type: ignore[attr-defined]
        else:
            self._data.append(bytes(data))

    def eof_received(self) -> None:
        if self._handler is not None:
            self._handler.eof_received()  # type: ignore[attr-defined]
        else:
            self._eof = True

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._handler is not None:
            self._handler.connection_lost(exc)
        else:
            self._lost = (exc,)

    def hand_over(self, transport: asyncio.Transport, handler: asyncio.Protocol) -> None:
        transport.set_protocol(handler)
        handler.connection_made(transport)
        self._handler = handler
        held, self._data = self._data, []
        for chunk in held:
            handler.data_received(chunk)  # type: ignore[attr-defined]
        if self._eof:
            handler.eof_received()  # type: ignore[attr-defined]
        if self._lost is not None:
            handler.connection_lost(self._lost[0])


def _reason(exc: BaseException) -> str:
    """OpenSSL's reason code of a TLS error, else the exception's name."""
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    return str(reason) if reason else type(exc).__name__
