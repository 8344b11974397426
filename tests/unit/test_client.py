"""The AT client against a scripted fake device on a real socket:// URL."""
import socket
import threading

import pytest

from esp_at.client import (BUSY_RETRIES, URC_HISTORY_KEPT, URC_QUEUE_BYTES, AtClient)
from esp_at.errors import (DeviceBusy, DeviceFlood, DeviceGarbage, DeviceRebooted, DeviceSilent,
                           DeviceViolation, PortClosed)
from esp_at.events import Ready, Urc, WsData

pytestmark = pytest.mark.timeout(10)


class ScriptedDevice:
    """Answers each received line (or byte count) with scripted bytes."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "socket://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.answers = {}          # line -> bytes
        self.data_answer = None    # (n, bytes): after a prompt, swallow n bytes, then answer
        self.received = bytearray()
        self.conn = None
        self.accepted = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.conn, _ = self.listener.accept()
        self.accepted.set()
        pending = bytearray()
        while True:
            try:
                data = self.conn.recv(4096)
            except OSError:
                return
            if not data:
                return
            self.received += data
            pending += data
            while True:
                if self.data_answer and len(pending) >= self.data_answer[0]:
                    n, answer = self.data_answer
                    del pending[:n]
                    self.data_answer = None
                    self.conn.sendall(answer)
                    continue
                if self.data_answer:
                    break
                end = pending.find(b"\r\n")
                if end < 0:
                    break
                line = bytes(pending[:end])
                del pending[:end + 2]
                answer = self.answers.get(line)
                if callable(answer):
                    answer = answer(self)
                if answer:
                    try:
                        self.conn.sendall(answer)
                    except OSError:              # the test closed the connection on purpose
                        return

    def push(self, data):
        assert self.accepted.wait(5), "the client never connected"
        self.conn.sendall(data)


@pytest.fixture
def device():
    dev = ScriptedDevice()
    yield dev
    dev.listener.close()


@pytest.fixture
def client(device):
    at = AtClient.open(device.url)
    yield at
    at.close()


def test_cmd_collects_echo_lines_and_final(device, client):
    device.answers[b"AT+GMR"] = b"AT+GMR\r\nAT version:x\r\nSDK version:y\r\n\r\nOK\r\n"
    response = client.cmd("AT+GMR")
    assert response.echoed and response.final == b"OK"
    assert response.lines == [b"AT version:x", b"SDK version:y"]
    assert response.received == b"AT+GMR\r\nAT version:x\r\nSDK version:y\r\n\r\nOK\r\n"


def test_urc_between_echo_and_final_goes_to_the_urc_queue(device, client):
    device.answers[b'AT+WSOPEN=0,"ws://h/"'] = b'AT+WSOPEN=0,"ws://h/"\r\n+WS_CONNECTED:0\r\n\r\nOK\r\n'
    response = client.cmd('AT+WSOPEN=0,"ws://h/"').expect(b"OK", lines=[])
    assert response.ok
    assert client.wait_urc(b"+WS_CONNECTED", 0, timeout=1) == Urc(b"+WS_CONNECTED", 0,
                                                                  b"+WS_CONNECTED:0")


def test_expect_failure_names_clause_sent_expected_and_raw_bytes(device, client):
    device.answers[b"AT+WSCFG=3,1,1"] = b"\r\nOK\r\n"
    client.clauses = ("WSCFG.link_id.range",)
    with pytest.raises(DeviceViolation) as info:
        client.cmd("AT+WSCFG=3,1,1").expect(b"ERROR")
    text = str(info.value)
    assert "WSCFG.link_id.range" in text
    assert "b'AT+WSCFG=3,1,1\\r\\n'" in text
    assert "final b'ERROR'" in text
    assert "b'\\r\\nOK\\r\\n'" in text


def test_silent_device_raises_device_silent_with_what_came(device, client):
    device.answers[b"AT"] = b"AT\r\nhalf a li"
    with pytest.raises(DeviceSilent) as info:
        client.cmd("AT", timeout=0.2)
    assert isinstance(info.value, AssertionError)
    assert info.value.received == b"AT\r\nhalf a li"


def test_busy_is_retried_a_bounded_number_of_times_then_a_device_fault(device, client):
    device.answers[b"AT"] = b"\r\nbusy p...\r\n"
    response = client.cmd("AT")
    assert response.busy and response.final is None and response.busy_retries == BUSY_RETRIES
    assert device.received == b"AT\r\n" * (BUSY_RETRIES + 1)
    with pytest.raises(DeviceBusy, match="busy p...` 3 time"):
        response.expect(b"OK")


def test_busy_then_ok_is_ok_after_a_retry(device, client):
    answers = iter([b"\r\nbusy p...\r\n", b"\r\nOK\r\n"])
    device.answers[b"AT+WSOPEN?"] = lambda dev: next(answers)
    response = client.cmd("AT+WSOPEN?").expect(b"OK")
    assert response.busy_retries == 1


def test_a_reboot_ends_a_wait_for_a_urc_at_once(device, client):
    import time
    device.answers[b"AT"] = b"\r\nOK\r\n"
    client.cmd("AT")
    started = time.monotonic()
    threading.Timer(0.1, device.push, args=(b"\r\nready\r\n",)).start()
    with pytest.raises(DeviceRebooted, match="while the test waited for \\+WS_CONNECTED:0"):
        client.wait_urc(b"+WS_CONNECTED", 0, timeout=5)
    assert time.monotonic() - started < 1.0
    assert [type(f) for f in client.faults_seen()] == [DeviceRebooted]
    client.end_of_test()                         # the restore's own resets are not the test's
    assert client.faults_seen() == []


def test_a_reboot_asked_for_from_outside_is_no_fault(device, client):
    client.expect_reboot()
    device.push(b"\r\nready\r\n")
    client.wait_urc(b"ready", timeout=1)
    assert client.faults_seen() == [] and not client.unexpected


def test_data_for_a_link_that_is_not_open_is_unexpected(device, client):
    device.push(b"+WS_DATA:2,3,abc\r\n")
    client.wait_urc(b"+WS_DATA", 2, timeout=1)
    assert [where for _, _, where in client.unexpected] == [
        "+WS_DATA for link 2, which is not open"]
    assert client.faults_seen() == []           # binary data is not garbage
    with pytest.raises(DeviceViolation):
        client.assert_no_unexpected_output()


def test_a_link_listed_as_connected_by_wsopen_query_is_open(device, client):
    device.answers[b"AT+WSOPEN?"] = b'\r\n+WSOPEN:1,2,"ws://h/"\r\n\r\nOK\r\n'
    client.cmd("AT+WSOPEN?").expect(b"OK")
    device.push(b"+WS_DATA:1,2,ab\r\n+WS_DISCONNECTED:1\r\n+WS_DATA:1,2,cd\r\n")
    wait_until(lambda: len(client.pending_urcs()) == 3)
    assert [where for _, _, where in client.unexpected] == [
        "+WS_DATA for link 1, which is not open"]


def test_a_flood_is_bounded_and_a_device_fault(device, client):
    record = b"+WS_DATA:0,1024," + b"x" * 1024 + b"\r\n"
    device.push(b"+WS_CONNECTED:0\r\n")
    device.push(record * (URC_QUEUE_BYTES // 1024 + 512))
    wait_until(lambda: client.urc_bytes_dropped >= 400 * 1024, timeout=8)
    queued = sum(len(getattr(e, "data", b"")) for e in client.pending_urcs())
    assert queued <= URC_QUEUE_BYTES
    assert len(client.urc_history) <= URC_HISTORY_KEPT
    assert len(client.transcript()) < 3 * 1024 * 1024       # head and tail, the cut said
    assert "bytes in" in client.transcript() and "cut" in client.transcript()
    assert [type(f) for f in client.faults_seen()] == [DeviceFlood]


def test_garbage_is_a_device_fault_and_its_message_is_bounded(device, client):
    device.push(b"\xfe\xff" * 20000 + b"\r\n")
    wait_until(lambda: client.garbage_seen)
    [fault] = client.faults_seen()
    assert isinstance(fault, DeviceGarbage)
    assert len(str(fault)) < 8000


def test_a_lone_prompt_outside_data_mode_is_garbage(device, client):
    device.answers[b"AT"] = b">\r\nOK\r\n"
    client.cmd("AT")
    assert [type(f) for f in client.faults_seen()] == [DeviceGarbage]


def test_the_port_is_reopened_when_it_comes_back(device, client):
    device.answers[b"AT"] = b"\r\nOK\r\n"
    client.cmd("AT")
    device.conn.shutdown(socket.SHUT_RDWR)
    wait_until(lambda: not client.alive)
    assert not client.alive
    # The listener still accepts (a bridge that restarted): a second scripted device there.
    threading.Thread(target=device._serve, daemon=True).start()
    assert client.reopen(within=2.0)
    assert client.alive and client.cmd("AT").ok
    assert "AT port reopened" in client.transcript()


def test_reopen_gives_up_within_its_bound(device, client):
    import time
    assert device.accepted.wait(5)
    device.conn.shutdown(socket.SHUT_RDWR)
    device.listener.close()
    wait_until(lambda: not client.alive)
    started = time.monotonic()
    assert not client.reopen(within=1.0)
    assert time.monotonic() - started < 2.5


def test_an_unrecorded_command_leaves_no_trace(device, client):
    device.answers[b'AT+CWJAP="n","pw"'] = b"\r\nOK\r\n"
    with client.unrecorded():
        client.cmd('AT+CWJAP="n","pw"')
    assert b"pw" not in "".join(client.transcript()).encode()
    assert client.commands_sent == []


def test_send_data_prompt_flow(device, client):
    def prompt(dev):
        dev.data_answer = (5, b"\r\nSEND OK\r\n")
        return b"AT+WSSEND=0,5\r\n\r\nOK\r\n\r\n>"
    device.answers[b"AT+WSSEND=0,5"] = prompt
    response = client.send_data("AT+WSSEND=0,5", b"a\r\nOK")
    assert response.accepted and response.prompt and response.final == b"SEND OK"
    assert device.received.endswith(b"AT+WSSEND=0,5\r\na\r\nOK")


def test_send_data_without_prompt_writes_nothing(device, client):
    device.answers[b"AT+WSSEND=2,5"] = b"\r\nERROR\r\n"
    response = client.send_data("AT+WSSEND=2,5", b"hello")
    assert not response.prompt and response.final == b"ERROR"
    assert b"hello" not in device.received


def test_ws_data_chunks_and_framing_lookalikes(device, client):
    device.answers[b"AT"] = b"\r\nOK\r\n"
    client.cmd("AT")
    device.push(b"+WS_DATA:0,4,\r\nOK\r\n+WS_DATA:0,3,abc\r\n")
    assert client.wait_ws_data(0, 7, timeout=1) == [b"\r\nOK", b"abc"]


def test_wait_urc_keeps_other_urcs_in_order(device, client):
    device.answers[b"AT"] = b"\r\nOK\r\n"
    client.cmd("AT")
    device.push(b"+WS_CLOSED:1\r\n+WS_DATA:1,1,x\r\nready\r\n")
    assert client.wait_urc("ready", timeout=1) == Ready()
    assert client.pending_urcs() == [Urc(b"+WS_CLOSED", 1, b"+WS_CLOSED:1"), WsData(1, b"x")]


def test_wait_urc_timeout_lists_queued_urcs(device, client):
    device.answers[b"AT"] = b"\r\n+WS_CLOSED:1\r\nOK\r\n"
    client.cmd("AT")
    with pytest.raises(DeviceSilent) as info:
        client.wait_urc(b"+WS_CONNECTED", 1, timeout=0.1)
    assert b"+WS_CLOSED:1" in info.value.received


def test_expect_no_urc(device, client):
    client.expect_no_urc(b"+WS_CLOSED", 0, within=0.05)
    device.push(b"+WS_CLOSED:0\r\n")
    with pytest.raises(DeviceViolation):
        client.expect_no_urc(b"+WS_CLOSED", 0, within=1)


def malformed_ws_data_between_commands(device, client, rest: bytes) -> None:
    """A +WS_DATA announcing 2 bytes and followed by `rest`, between two commands."""
    device.answers[b"AT"] = b"\r\nOK\r\n"
    client.cmd("AT")
    device.push(b"+WS_CONNECTED:0\r\n+WS_DATA:0,2," + rest)
    client.wait_urc(b"+WS_DATA", 0, timeout=1)
    client.cmd("AT")


def test_framing_error_outside_a_command_is_unexpected_output(device, client):
    malformed_ws_data_between_commands(device, client, b"abcd\r\n")
    # the broken trailer, then what is left of the line once the engine resynchronised
    assert [(raw, where) for _, raw, where in client.unexpected] == [
        (b"c", "broken framing (+WS_DATA payload not followed by CR-LF)"),
        (b"cd\r\n", "after a +WS_DATA in a broken form (its data, read as lines)")]
    # a +WS_DATA in the wrong form fails the test's own clause: no fault that makes it moot
    assert client.faults_seen() == []


def test_a_malformed_ws_data_with_data_that_is_no_text_is_no_garbage(device, client):
    # Its data cannot be delimited and is read as lines: they are the broken URC's, whatever
    # bytes they hold. The URC's format is broken (a conformance failure), not the stream.
    malformed_ws_data_between_commands(device, client, b"ab\xfe\xff\r\n")
    assert client.faults_seen() == []
    assert [where for _, _, where in client.unexpected][-1] == (
        "after a +WS_DATA in a broken form (its data, read as lines)")


def test_begin_test_drops_leftovers_and_transcript_is_repr(device, client):
    device.answers[b"AT"] = b"\r\nOK\r\n"
    device.push(b"+WS_CLOSED:0\r\n")
    client.wait_urc(b"+WS_CLOSED", timeout=1)
    device.push(b"+WS_CLOSED:2\r\n")
    client.cmd("AT")
    dropped = client.begin_test(("X",))
    assert dropped == [Urc(b"+WS_CLOSED", 2, b"+WS_CLOSED:2")]
    client.cmd("AT")
    transcript = client.transcript()
    assert ">> b'AT\\r\\n'" in transcript and "<< b'\\r\\nOK\\r\\n'" in transcript


def test_port_closed_by_device_is_a_harness_fault(device, client):
    device.answers[b"AT"] = b"\r\nOK\r\n"
    client.cmd("AT")
    assert device.accepted.wait(5)
    device.conn.close()
    device.listener.close()
    with pytest.raises(PortClosed):                  # a harness fault, not a silent device
        client.cmd("AT", timeout=0.5)
    assert not client.alive


def test_resync_recovers_from_a_ws_data_length_that_never_arrives(device, client):
    device.answers[b"AT"] = b"\r\nOK\r\n"
    client.cmd("AT")
    device.push(b"+WS_DATA:0,999999,only a few bytes")
    with pytest.raises(DeviceGarbage, match="payload never came") as info:
        client.cmd("AT", timeout=0.3)            # its OK is swallowed as payload
    assert info.value.received.endswith(b"\r\nOK\r\n")     # the OK came, inside the payload
    assert [type(f) for f in client.faults_seen()] == [DeviceGarbage]
    client.resync()
    assert client.cmd("AT").ok
    assert "engine resynchronised" in client.transcript()


def wait_until(condition, timeout=2.0):
    import time
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_output_nobody_asked_for_is_unexpected_with_its_bytes(device, client):
    device.answers[b"AT"] = b"\r\nOK\r\n"
    device.answers[b"AT+WSCFG=0,10,120"] = b"\r\n+WSCFG:0,10,120,1024\r\n\r\nOK\r\n"
    client.cmd("AT")
    client.assert_no_unexpected_output()
    device.push(b"+WS_PING:0,5\r\n")                     # an invented URC
    client.cmd("AT+WSCFG=0,10,120")                      # an info line WSCFG does not print
    device.push(b"\r\nOK\r\n")                           # a final result outside any command
    wait_until(lambda: len(client.unexpected) == 3)
    with pytest.raises(DeviceViolation) as info:
        client.assert_no_unexpected_output()
    assert info.value.received == b"+WS_PING:0,5\r\n+WSCFG:0,10,120,1024\r\nOK\r\n"
    assert "outside any command" in str(info.value) and "in the answer to" in str(info.value)


def test_documented_output_is_not_unexpected(device, client):
    device.answers[b"AT+WSOPEN?"] = b'\r\n+WSOPEN:0,2,"ws://h/"\r\n\r\nOK\r\n'
    device.answers[b"AT+RST"] = b"\r\nOK\r\n\x00boot noise\r\n\r\nready\r\nWIFI CONNECTED\r\n"
    client.cmd("AT+WSOPEN?").expect(b"OK")
    device.push(b"+WS_CLOSED:0\r\n+WS_CONNECTED:1\r\n+WS_DATA:1,2,ab\r\nWIFI GOT IP\r\n")
    client.wait_urc(b"+WS_DATA", 1, timeout=1)
    client.cmd("AT+RST")
    client.wait_urc(b"ready", timeout=1)
    client.assert_no_unexpected_output()


def test_a_ready_nobody_asked_for_ends_the_command_as_a_reboot(device, client):
    device.answers[b"AT+WSCLOSE=0"] = b"\x00ESP-ROM:esp8684\r\n\r\nready\r\n"
    with pytest.raises(DeviceViolation, match="rebooted while running"):
        client.cmd("AT+WSCLOSE=0", timeout=5)
    assert any(raw == b"ready\r\n" for _, raw, _ in client.unexpected)


def test_busy_after_the_data_does_not_end_a_send(device, client):
    def prompt(dev):
        dev.data_answer = (5, b"\r\nbusy p...\r\n\r\nSEND OK\r\n")
        return b"AT+WSSEND=0,5\r\n\r\nOK\r\n\r\n>"
    device.answers[b"AT+WSSEND=0,5"] = prompt
    response = client.send_data("AT+WSSEND=0,5", b"12345")
    assert response.final == b"SEND OK" and response.busy_after_data == 1
    client.assert_no_unexpected_output()


def test_an_accepted_wsdatafmt_changes_how_that_links_data_is_read(client, device):
    # The engine sees the command and its OK, so the data printed right after it is read in
    # the new form: opcode and data_len (mask 17), no CR-LF.
    device.answers[b"AT+WSDATAFMT=0,0,17"] = b"\r\nOK\r\n+WS_DATA:0,2,3,abc+WS_DATA:0,1,0,"
    client.cmd("AT+WSDATAFMT=0,0,17").expect(b"OK")
    first = client.wait_urc(b"+WS_DATA", 0, timeout=2)
    second = client.wait_urc(b"+WS_DATA", 0, timeout=2)
    assert (first.data, first.opcode, first.data_len) == (b"abc", 2, 3)
    assert (second.data, second.opcode, second.data_len) == (b"", 1, 0)
