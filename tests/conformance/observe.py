"""What a test reads off the device and the wire to prove an effect, or that nothing changed."""
from __future__ import annotations

from esp_at.client import AtClient, Response
from esp_at.commands import wsclose
from esp_at.errors import DeviceViolation

from fixtures import margins
import spec
from fixtures.links import configure, link_states, open_link
from fixtures.verdicts import check

SPEC = spec.load()
# A message that fits one TCP segment on any LAN (MSS 1436 on Wi-Fi): written at once, it is all
# there at the device's first read, so each read fills min(buffer_size, what is left).
WITNESS_LENGTH = 1200
# A buffer size no default has: the chunks of a witness message show whether it is in force.
WITNESS_BUFFER = 100
OK = b"\r\nOK\r\n"                            # BEHAVIOUR.md Exact bytes
ERROR = b"\r\nERROR\r\n"


def buffer_size_in_force(at: AtClient, endpoint, link_id: int) -> int:
    """Open `link_id`, have the server send a WITNESS_LENGTH message, close the link again; the
    largest +WS_DATA chunk is the buffer size the link ran with (up to WITNESS_LENGTH)."""
    open_link(at, link_id, endpoint.url)
    message = bytes(i % 251 for i in range(WITNESS_LENGTH))
    endpoint.send_binary(message)
    with check("URC.WS_DATA"):
        chunks = at.wait_ws_data(link_id, len(message), timeout=margins.SERVER_SEES_IT_S)
        assert b"".join(chunks) == message, "the witness message arrived changed"
    with check("WSCLOSE.set"):
        at.cmd(wsclose(link_id), timeout=margins.WSCLOSE_ANSWER_S).expect(b"OK")
    return max(len(c) for c in chunks)


def witness_config(at: AtClient, link_id: int = 0) -> None:
    """A configuration of `link_id` whose buffer size (WITNESS_BUFFER) shows in a message's chunks."""
    configure(at, link_id, SPEC.default("AT+WSCFG", "ping_intv_sec"),
              SPEC.default("AT+WSCFG", "ping_timeout_sec"), WITNESS_BUFFER)


def refused_and_config_kept(at: AtClient, endpoint, line: str) -> None:
    """`line` (an AT+WSCFG) answers ERROR and nothing else, and link 0 still runs with the
    witness configuration set before it."""
    witness_config(at)
    at.cmd(line).expect(b"ERROR", lines=[])
    in_force = buffer_size_in_force(at, endpoint, 0)
    assert in_force == WITNESS_BUFFER, (
        f"the refused {line!r} changed link 0: it opened with buffer {in_force}; the last "
        f"accepted AT+WSCFG set {WITNESS_BUFFER}")


def exact_answer(response: Response, answer: bytes, clause: str) -> None:
    """The whole exchange, byte for byte: the echo of the command, then `answer`."""
    expected = response.command + b"\r\n" + answer
    with check(clause):
        if response.received == expected:
            return
        raise DeviceViolation(what=f"the answer to {response.command!r} is not byte-exact",
                              sent=response.command + b"\r\n", expected=repr(expected),
                              received=response.received, clauses=(clause,))


def links_unchanged(at: AtClient, before: dict) -> None:
    """AT+WSOPEN? lists the same links in the same states as `before`."""
    after = link_states(at)
    assert after == before, f"the links changed: before {before}, after {after}"
