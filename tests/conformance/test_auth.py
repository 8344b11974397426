"""AT+WSOPEN's <auth> (profile auth on): the Authorization header exactly as given, right after
Sec-WebSocket-Protocol (after Sec-WebSocket-Key without one) and before the AT+WSHEAD headers, with
the subprotocol and timeout fields given or left empty; no <auth>, no Authorization header; and the
256-byte command line, which bounds the auth.

The auth value is a secret: $ESP_AT_WS_AUTH_SECRET when set, else a fresh random token each
session. It is registered with the AT client (`AtClient.redact`) before it is used, and this file
never shows it: not in a test id, a parameter, a title, an assertion message or an exception (a
failure here is raised again with the value replaced by `<auth>`, its original dropped), nor in a
traceback (pytest shows every frame's arguments: values that hold it travel as `Secret`, request
heads as `Head`, whose reprs hide them, and the helpers that hold it in locals hide their frames).
A header that differs is described by its length and the first byte that differs."""
from __future__ import annotations

import os
import secrets

import pytest

import spec
from esp_at.commands import quote, wsclose, wshead, wsopen
from esp_at.errors import DeviceViolation

from fixtures import margins
from fixtures.links import link_states, wsopen_answer_timeout
from fixtures.secrets import Secret
from fixtures.verdicts import check

SPEC = spec.load()
AUTH_SECRET_ENV = "ESP_AT_WS_AUTH_SECRET"
LINE_MAX = SPEC.at.command_line_max_bytes
SUBPROTOCOL = "chat.v1"
TIMEOUT_MS = 5000                  # a timeout that every firmware takes (KD-1 refuses an empty one)
SHOWN = b"<auth>"                  # what a message shows where the value would be
# The AT+WSHEAD headers the Authorization header must come before.
HEADERS = [b"X-Trace-Id: 7f3a-0001", b"X-Client: conformance"]
FILLER = "."                       # pads an auth to a given length (a token68 character)


# ---- the secret ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def auth_secret() -> Secret:
    """The session's auth value: $ESP_AT_WS_AUTH_SECRET, else a fresh random bearer token."""
    value = os.environ.get(AUTH_SECRET_ENV) or f"Bearer {secrets.token_urlsafe(24)}"
    if not all(0x20 <= ord(c) < 0x7F for c in value):
        pytest.fail(f"${AUTH_SECRET_ENV} holds a character an AT string cannot carry (a control "
                    f"character or non-ASCII); its value is not shown", pytrace=False)
    return Secret(value)


class Auth:
    """The secret values of a test, each registered with the AT client before it is used."""

    def __init__(self, at, secret: Secret) -> None:
        self._at = at
        self._values: list[bytes] = []
        self.value = self.register(secret.reveal())

    def __repr__(self) -> str:
        return f"<{len(self._values)} auth value(s), not shown>"

    def register(self, value: str) -> Secret:
        """`value`, hidden from now on as given and as the command line carries it (quoted: a
        `"`, `,` or `\\` escaped), which is what the device echoes."""
        for data in {value.encode(), quote(value)[1:-1].encode()}:
            self._at.redact(data)
            self._values.append(data)
        return Secret(value)

    def hide(self, data):
        """`data` (bytes or str) with every secret value replaced by `<auth>`."""
        if data is None:
            return None
        if isinstance(data, str):
            return self.hide(data.encode("latin-1", "backslashreplace")).decode("latin-1")
        for value in sorted(self._values, key=len, reverse=True):
            data = data.replace(value, SHOWN)
        return data

    def kept_out(self) -> _KeptOut:
        return _KeptOut(self)


class _KeptOut:
    """A failure inside is raised again with every secret value replaced; its original (which
    holds them) is dropped, and so are the frames below: the new traceback starts where the
    `with` is. The clause it was filed under (fixtures/verdicts.py) stays."""

    def __init__(self, auth: Auth) -> None:
        self._auth = auth

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        __tracebackhide__ = True
        if exc is None or not isinstance(exc, Exception):
            return False                         # skips, signals: as they are
        hide = self._auth.hide
        if isinstance(exc, DeviceViolation):
            clean = type(exc)(what=hide(exc.what), sent=hide(exc.sent), expected=hide(exc.expected),
                              received=hide(exc.received), clauses=exc.clauses)
        elif isinstance(exc, AssertionError):
            clean = AssertionError(hide(str(exc)))
        else:
            clean = RuntimeError(f"{type(exc).__name__}: {hide(str(exc))}")
        for name in ("failed_clause", "known_deviation"):
            if hasattr(exc, name):
                setattr(clean, name, getattr(exc, name))
        raise clean from None


@pytest.fixture
def auth(at, auth_secret) -> Auth:
    return Auth(at, auth_secret)


class Head:
    """A request head's header lines, in wire order, exactly as sent; its repr names the headers
    only (a traceback shows it, and the values hold the secret)."""

    def __init__(self, handshake) -> None:
        self.lines = handshake.raw[:-len(b"\r\n\r\n")].split(b"\r\n")[1:]

    def names(self) -> list[str]:
        return [line.partition(b":")[0].decode("latin-1") for line in self.lines]

    def named(self, name: bytes) -> list[int]:
        return [i for i, line in enumerate(self.lines) if name_of(line) == name.lower()]

    def __repr__(self) -> str:
        return f"<request head: {', '.join(self.names())}>"


def name_of(line: bytes) -> bytes:
    return line.partition(b":")[0].strip().lower()


def difference(given: bytes, got: bytes, what: str = "the Authorization header") -> str:
    """How `got` differs from `given`, in lengths and a position only (and, for a header line,
    its name as received: the value is the secret)."""
    first = next((i for i, (a, b) in enumerate(zip(given, got)) if a != b),
                 min(len(given), len(got)))
    name = ""
    if b": " in given and first < given.index(b":"):
        name = f"; its name is {got.partition(b':')[0]!r}, expected {given.partition(b':')[0]!r}"
    return (f"{what} differs from the one given ({len(given)} bytes given, {len(got)} bytes "
            f"received, first difference at byte {first}{name})")


# ---- opening with an auth -----------------------------------------------------------------

def wsopen_line(link_id: int, url: str, auth: Secret | str | None,
                subprotocol: str | None = None, timeout_ms: int | None = None) -> Secret:
    """AT+WSOPEN with every field written, empty ones as nothing between the commas."""
    fields = [str(link_id), quote(url), "" if subprotocol is None else quote(subprotocol),
              "" if timeout_ms is None else str(timeout_ms)]
    if auth is not None:
        fields.append(quote(auth.reveal() if isinstance(auth, Secret) else auth))
    return Secret("AT+WSOPEN=" + ",".join(fields))


class Refused:
    """AT+WSOPEN answered ERROR and nothing reached the endpoint (what a range check does)."""

    def __init__(self, sent: bytes, received: bytes) -> None:
        self.sent = sent                         # the secret hidden in both
        self.received = received


def open_with(at, auth: Auth, line: Secret, endpoint, timeout_ms: int | None, link_id: int = 0,
              may_refuse: bool = False) -> Head | Refused:
    """Send `line` (whose <timeout_ms> is `timeout_ms`), which must open `link_id` (OK,
    +WS_CONNECTED before it); the request head. With `may_refuse`, ERROR with no connection is
    returned as Refused instead."""
    __tracebackhide__ = True
    text = line.reveal()
    if len(text) > LINE_MAX:
        pytest.skip(f"the auth value (${AUTH_SECRET_ENV}) makes this AT+WSOPEN line {len(text)} "
                    f"bytes, over the {LINE_MAX}-byte command line: a shorter value is needed")
    with auth.kept_out(), check("WSOPEN.set.connected"):
        response = at.cmd(text, timeout=wsopen_answer_timeout(timeout_ms))
        if may_refuse and response.final == b"ERROR" and not endpoint.connections:
            return Refused(auth.hide(text.encode()) + b"\r\n", auth.hide(response.received))
        if response.final != b"OK":
            raise DeviceViolation(
                what=f"AT+WSOPEN with <auth> ({len(text)}-byte line) answered {response.final!r}",
                sent=auth.hide(text.encode()) + b"\r\n",
                expected=f"+WS_CONNECTED:{link_id} then OK", received=auth.hide(response.received),
                clauses=at.clauses)
        at.wait_urc(b"+WS_CONNECTED", link_id, timeout=0)
        return Head(endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S).handshake)


def expect_authorization(auth: Auth, head: Head, value: Secret, after: str,
                         then: list[bytes] = ()) -> None:
    """The request carries `Authorization: <value>` to the byte, once, right after the header
    `after`, followed by exactly the `then` lines (the AT+WSHEAD headers) and nothing else."""
    __tracebackhide__ = True
    with auth.kept_out(), check("WSOPEN.auth"):
        wanted = b"Authorization: " + value.reveal().encode()
        found = head.named(b"Authorization")
        if not found:
            raise AssertionError(f"the request carries no Authorization header; its headers, in "
                                 f"order: {head.names()}")
        if len(found) > 1:
            raise AssertionError(f"the request carries {len(found)} Authorization headers; its "
                                 f"headers, in order: {head.names()}")
        index = found[0]
        if head.lines[index] != wanted:
            raise AssertionError(difference(wanted, head.lines[index]))
        if index == 0 or name_of(head.lines[index - 1]) != after.lower().encode():
            raise AssertionError(f"the Authorization header must come right after {after}; the "
                                 f"headers, in order: {head.names()}")
        rest = head.lines[index + 1:]
        if rest != list(then):
            raise AssertionError(
                f"after the Authorization header the request must carry exactly the AT+WSHEAD "
                f"headers {list(then)!r}; it carries {auth.hide(b'|'.join(rest))!r} (lines "
                f"joined by |); the headers, in order: {head.names()}")


FORMS = {
    # name: (subprotocol, timeout_ms)
    "no-subprotocol-empty-fields": (None, None),
    "subprotocol-empty-timeout": (SUBPROTOCOL, None),
    "empty-subprotocol-with-timeout": (None, TIMEOUT_MS),
    "subprotocol-and-timeout": (SUBPROTOCOL, TIMEOUT_MS),
}


def empty_timeout_refused(at, endpoint) -> bool:
    """KD-1's signature, without an auth: an empty <timeout_ms> field answers ERROR at once."""
    response = at.cmd(f'AT+WSOPEN=1,{quote(endpoint.url)},"",',
                      timeout=wsopen_answer_timeout(None))
    if response.final == b"OK":
        at.cmd(wsclose(1), timeout=margins.WSCLOSE_ANSWER_S)
    return response.final == b"ERROR" and not endpoint.connections


@pytest.mark.clause("WSOPEN.auth")
@pytest.mark.parametrize("form", list(FORMS))
def test_authorization_header_exactly_as_given(at, auth, ws_endpoint, new_endpoint, form):
    subprotocol, timeout_ms = FORMS[form]
    if subprotocol:
        ws_endpoint.require_subprotocol(subprotocol)
    line = wsopen_line(0, ws_endpoint.url, auth.value, subprotocol, timeout_ms)
    head = open_with(at, auth, line, ws_endpoint, timeout_ms, may_refuse=timeout_ms is None)
    if isinstance(head, Refused):
        if empty_timeout_refused(at, new_endpoint("probe")):
            pytest.skip("this firmware refuses an empty <timeout_ms> field even without an auth "
                        "(KD-1, checked by WSOPEN.timeout_ms.range): the auth is checked with the "
                        "timeout given")
        with check("WSOPEN.auth"):
            raise DeviceViolation(what="AT+WSOPEN with <auth> and an empty <timeout_ms> answered "
                                       "ERROR, though an empty <timeout_ms> without an auth opens",
                                  sent=head.sent, expected="+WS_CONNECTED:0 then OK",
                                  received=head.received, clauses=at.clauses)
    expect_authorization(auth, head, auth.value,
                         "Sec-WebSocket-Protocol" if subprotocol else "Sec-WebSocket-Key")


@pytest.mark.clause("WSOPEN.auth")
@pytest.mark.parametrize("subprotocol", [SUBPROTOCOL, None], ids=["subprotocol", "no-subprotocol"])
def test_authorization_comes_before_the_wshead_headers(at, auth, ws_endpoint, subprotocol):
    for header in HEADERS:
        with check("WSHEAD.set"):
            at.send_data(wshead(len(header)), header).expect(b"OK")
    if subprotocol:
        ws_endpoint.require_subprotocol(subprotocol)
    line = wsopen_line(0, ws_endpoint.url, auth.value, subprotocol, TIMEOUT_MS)
    head = open_with(at, auth, line, ws_endpoint, TIMEOUT_MS)
    expect_authorization(auth, head, auth.value,
                         "Sec-WebSocket-Protocol" if subprotocol else "Sec-WebSocket-Key", HEADERS)


@pytest.mark.clause("WSOPEN.auth")
@pytest.mark.parametrize("empty", [False, True], ids=["omitted", "empty"])
def test_no_auth_no_authorization_header(at, auth, ws_endpoint, empty):
    # AMBIGUITIES L-2: an empty <auth> sends none either.
    line = (wsopen_line(0, ws_endpoint.url, "", None, TIMEOUT_MS) if empty
            else Secret(wsopen(0, ws_endpoint.url, timeout_ms=TIMEOUT_MS)))
    head = open_with(at, auth, line, ws_endpoint, TIMEOUT_MS)
    with check("WSOPEN.auth"):
        assert not head.named(b"Authorization"), (
            f"sent {auth.hide(line.reveal())!r} ({'an empty' if empty else 'no'} <auth>); "
            f"expected no Authorization header; the request carries one; its headers, in order: "
            f"{head.names()}")


# ---- the 256-byte command line ------------------------------------------------------------

def line_of(auth: Auth, length: int, url: str) -> tuple[Secret, Secret]:
    """An AT+WSOPEN line of exactly `length` bytes whose <auth> fills it, and that auth: the
    session's value padded, or (when that is too long) a fresh random token, registered first."""
    __tracebackhide__ = True
    prefix = wsopen_line(0, url, "", None, TIMEOUT_MS).reveal()[:-len('""')] + '"'
    room = length - len(prefix) - len('"')
    if room < 1:
        raise RuntimeError(f"the URI {url!r} leaves no room for an auth in {length} bytes")
    quoted = quote(auth.value.reveal())[1:-1]
    if len(quoted) <= room:
        value = auth.register(auth.value.reveal() + FILLER * (room - len(quoted)))
    else:
        value = auth.register(secrets.token_urlsafe(room)[:room])
    line = prefix + quote(value.reveal())[1:-1] + '"'
    if len(line) != length:
        raise RuntimeError(f"built a line of {len(line)} bytes, not {length}")
    return Secret(line), value


def expect_line_answer(at, auth: Auth, line: Secret, final: bytes, what: str) -> None:
    """`line` answers `final` (after +WS_CONNECTED:0 when OK)."""
    __tracebackhide__ = True
    with auth.kept_out(), check("WSOPEN.auth.line_limit"):
        text = line.reveal()
        response = at.cmd(text, timeout=wsopen_answer_timeout(TIMEOUT_MS))
        if response.final != final:
            raise DeviceViolation(what=f"a {len(text)}-byte AT+WSOPEN line ({what}) answered "
                                       f"{response.final!r}",
                                  sent=auth.hide(text.encode()) + b"\r\n",
                                  expected=("+WS_CONNECTED:0 then OK" if final == b"OK" else
                                            "ERROR, and no connection"),
                                  received=auth.hide(response.received), clauses=at.clauses)
        if final == b"OK":
            at.wait_urc(b"+WS_CONNECTED", 0, timeout=0)


def expect_value_carried(auth: Auth, head: Head, value: Secret) -> None:
    """The Authorization header (one, any spelling: that is WSOPEN.auth's) carries every byte."""
    __tracebackhide__ = True
    found = head.named(b"Authorization")
    with auth.kept_out(), check("WSOPEN.auth"):
        if len(found) != 1:
            raise AssertionError(f"the {LINE_MAX}-byte line with <auth> was taken, but the request "
                                 f"carries {len(found)} Authorization headers, expected one; its "
                                 f"headers, in order: {head.names()}")
    with auth.kept_out(), check("WSOPEN.auth.line_limit"):
        carried = head.lines[found[0]].partition(b":")[2].lstrip(b" ")
        if carried != value.reveal().encode():
            raise AssertionError(f"a {LINE_MAX}-byte line must be taken whole: " + difference(
                value.reveal().encode(), carried, "the Authorization header's value"))


@pytest.mark.clause("WSOPEN.auth.line_limit")
def test_a_256_byte_line_is_taken_whole(at, auth, ws_endpoint):
    line, value = line_of(auth, LINE_MAX, ws_endpoint.url)
    expect_line_answer(at, auth, line, b"OK", "at the limit, its <auth> filling it")
    with auth.kept_out(), check("WSOPEN.set.connected"):
        head = Head(ws_endpoint.wait_connection(timeout=margins.SERVER_SEES_IT_S).handshake)
    expect_value_carried(auth, head, value)


@pytest.mark.clause("WSOPEN.auth.line_limit")
def test_a_257_byte_line_is_refused_and_connects_nowhere(at, auth, ws_endpoint):
    line, _ = line_of(auth, LINE_MAX + 1, ws_endpoint.url)
    expect_line_answer(at, auth, line, b"ERROR", "one past the limit, its <auth> filling it")
    with check("WSOPEN.auth.line_limit"):
        assert not ws_endpoint.connections, (
            f"the refused {LINE_MAX + 1}-byte line still connected "
            f"({len(ws_endpoint.connections)} connection(s))")
        states = link_states(at)
        assert not states, f"the refused {LINE_MAX + 1}-byte line left links: {sorted(states)}"
