"""A secret registered with the AT client (AT+WSOPEN's <auth>) is in nothing the client keeps:
not in the transcript, even when the device's echo of it comes one byte at a time, not in the
command lines kept, not in a failure text."""
import time

import pytest

from esp_at.client import AtClient
from esp_at.errors import DeviceViolation
from esp_at.redaction import SHOWN, Redactions
from tests.unit.test_client import ScriptedDevice

pytestmark = pytest.mark.timeout(10)

SECRET = b"Bearer s3cr3t-t0ken-value"
LINE = b'AT+WSOPEN=0,"ws://h:1/p",,,"' + SECRET + b'"'


def test_every_value_is_replaced_longest_first():
    hidden = Redactions()
    hidden.add(b"abc")
    hidden.add(b"abcdef")
    assert hidden.apply(b"x abcdef y abc z") == b"x " + SHOWN + b" y " + SHOWN + b" z"
    assert hidden.apply_text("abcdef!") == SHOWN.decode() + "!"



@pytest.mark.parametrize("written", [repr, lambda v: repr(v.decode("latin-1")), bytes.decode])
def test_a_secret_is_hidden_also_where_a_repr_escapes_it(written):
    """A server's record or a failure text shows bytes through repr: a backslash is doubled
    there, a tab is \\t, and the plain form would no longer match."""
    secret = b"Basic a\\b\tc'd"
    hidden = Redactions()
    hidden.add(secret)
    text = f"head: {written(b'Authorization: ' + secret)} end"
    shown = hidden.apply_text(text)
    assert SHOWN.decode() in shown and "a\\" not in shown and "b\\t" not in shown, shown


@pytest.mark.parametrize("data, held", [(b"xyz", 0), (b"xyz B", 1), (b"Bearer s3", 9),
                                        (SECRET, 0), (b"Bearer s3cr3t-t0ken-valu", 24)])
def test_held_tail_is_the_longest_end_a_secret_could_start_with(data, held):
    hidden = Redactions()
    hidden.add(SECRET)
    assert hidden.held_tail(data) == held


@pytest.fixture
def scripted():
    device = ScriptedDevice()
    client = AtClient.open(device.url)
    yield device, client
    client.close()
    device.listener.close()


def echo_in_single_bytes(device):
    for byte in LINE + b"\r\n":                  # the echo, one read per byte
        device.conn.sendall(bytes([byte]))
        time.sleep(0.001)
    return b"\r\nERROR\r\n"


def test_an_echo_split_over_many_reads_is_hidden_whole(scripted):
    device, client = scripted
    device.answers[LINE] = echo_in_single_bytes
    client.redact(SECRET)
    response = client.cmd(LINE)
    assert response.final == b"ERROR"
    recorded = b"".join(data for _, _, data in client.transcript_entries())
    assert LINE.replace(SECRET, SHOWN) in recorded      # the command, and the echo in one piece
    assert recorded.count(SHOWN) == 2
    for size in range(4, len(SECRET) + 1):
        assert not any(SECRET[i:i + size] in recorded for i in range(len(SECRET) - size + 1)), \
            f"a {size}-byte part of the secret is in the transcript"
    assert SECRET not in client.transcript().encode()
    assert all(SECRET not in command for command in client.commands_sent)


def test_a_failure_text_holds_no_secret(scripted):
    device, client = scripted
    device.answers[LINE] = echo_in_single_bytes
    client.redact(SECRET)
    with pytest.raises(DeviceViolation) as failure:
        client.cmd(LINE).expect(b"OK")
    assert SECRET not in str(failure.value).encode()
    assert SHOWN in failure.value.sent and SHOWN in failure.value.received


def test_an_end_that_is_no_secret_is_recorded_when_read(scripted):
    device, client = scripted
    device.answers[b"AT"] = b"\r\nOK\r\nBear"
    client.redact(SECRET)
    client.cmd("AT").expect(b"OK")
    time.sleep(0.05)
    recorded = b"".join(data for _, _, data in client.transcript_entries())
    assert recorded.endswith(b"\r\nOK\r\nBear")
