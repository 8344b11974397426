"""The AT client: the sans-IO exchange (esp_at/exchange.py) plus one serial connection, read by
a thread. The client only writes, waits and keeps.

The reader thread feeds every byte to the exchange as it arrives, which decides what each event
is: URCs go to a queue that tests await with timeouts; the command in flight's answer is filled
in; output nobody asked for (an undocumented URC, an info line the command does not print,
+WS_DATA for a link that is not open, a `ready` nobody asked for) is kept as unexpected output,
which fails the test it appears in. Every failure names what was sent, what was expected and the
exact bytes that came back.

Whatever the device sends, the client's memory is bounded: the URC queue, the unexpected output,
a response's lines and the transcript keep a fixed amount each and count what they dropped (a
flood is then a device fault, not an out-of-memory). A reboot nobody asked for ends every wait at
once (DeviceRebooted), not after its timeout.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from typing import Callable

import serial

from .commands import quote
from .engine import AtEngine
from .errors import (DeviceFault, DeviceFlood, DeviceGarbage, DeviceRebooted, DeviceSilent,
                     DeviceViolation, PortClosed)
from .events import Event, Ready, Urc, WsData
from .exchange import BUSY_PAUSE_S, Exchange, Response
from .redaction import Redactions
from .serial_port import open_at_port
from .transcript import Transcript

COMMAND_TIMEOUT_S = 2.0        # plain commands answer in milliseconds; this only bounds a hang
RX_KEPT_BYTES = 256 * 1024     # received bytes kept for failure messages
URC_QUEUE_BYTES = 4 * 1024 * 1024   # queued +WS_DATA: far above any test's message, far below RAM
URC_HISTORY_KEPT = 2000        # URCs of a test kept for its checks (the first ones)
UNEXPECTED_KEPT = 50           # unexpected lines kept per test; the rest are counted
BUSY_RETRIES = 2               # a command answered `busy p...` is sent again this often
REOPEN_POLL_S = 0.5


class AtClient:
    """One AT port for the whole session. Thread-safe for one test thread plus the reader."""

    def __init__(self, port: serial.SerialBase, url: str | None = None,
                 baudrate: int = 115200) -> None:
        self.url = url                           # to reopen the port when it drops
        self._baudrate = baudrate
        self._cond = threading.Condition()
        self._urcs: deque[Event] = deque()
        self._urc_bytes = 0                      # +WS_DATA bytes in self._urcs
        self.urc_history: list[Event] = []       # URCs since begin_test, consumed or not
        self.urc_times: list[float] = []         # when each of urc_history arrived
        self.unexpected: list[tuple[float, bytes, str]] = []  # (time, raw bytes, where)
        self.clauses: tuple[str, ...] = ()       # the clauses under test, named in failures
        self.commands_sent: list[bytes] = []     # command lines since begin_test
        self._recording = True
        self.redactions = Redactions()           # secrets never recorded (see redact)
        self._exchange = Exchange()
        self._reset_test_state()
        self._attach(port)

    @classmethod
    def open(cls, url: str, baudrate: int = 115200) -> "AtClient":
        return cls(open_at_port(url, baudrate), url, baudrate)

    def _attach(self, port: serial.SerialBase) -> None:
        """A fresh engine and reader on `port` (at start, and when the port is reopened); the
        +WS_DATA formats the device was given stay (a port drop does not reset the device)."""
        self._port = port
        # A fresh engine and no command in flight; the links' formats and states stay.
        old = self._exchange
        self._exchange = Exchange(AtEngine(formats=old.engine.data_formats))
        self._exchange.open_links = old.open_links
        self._rx = bytearray()
        self._arrived = time.monotonic()         # when the last bytes came (event times)
        self._rx_base = 0                        # stream offset of self._rx[0]
        self._reader_error: BaseException | None = None
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_forever, name="at-reader", daemon=True)
        self._reader.start()

    def _reset_test_state(self) -> None:
        self.urc_history = []
        self.urc_times = []
        self.unexpected = []
        self.unexpected_dropped = 0
        self.urc_bytes_dropped = 0               # +WS_DATA dropped from a full queue
        self.commands_sent = []
        self.rebooted_at: float | None = None    # a reboot nobody asked for, this test
        self.garbage_seen = False                # framing errors or bytes that are not text
        self.busy_exhausted: Response | None = None   # still `busy p...` after the retries
        self._held: dict[str, bytes] = {}        # per direction: an end that may be a secret's start
        self._transcript = Transcript()
        self._t0 = time.monotonic()

    # ---- the reader thread -----------------------------------------------------------------

    def _read_forever(self) -> None:
        port = self._port
        while not self._stop.is_set():
            try:
                waiting = port.in_waiting
                data = port.read(waiting or 1)   # blocks up to READ_TIMEOUT_S for the first byte
                if data and not waiting and port.in_waiting:
                    data += port.read(port.in_waiting)   # the rest of what just arrived
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if not self._stop.is_set():
                    with self._cond:
                        self._reader_error = exc
                        self._cond.notify_all()
                return
            if data:
                with self._cond:
                    try:
                        self._note_received(data)
                    except Exception as exc:     # an engine bug must not leave waiters hanging
                        self._reader_error = exc
                        self._cond.notify_all()
                        return
                    self._cond.notify_all()

    def _note_received(self, data: bytes) -> None:
        self._arrived = time.monotonic()
        self._rx += data
        if len(self._rx) > RX_KEPT_BYTES:
            cut = len(self._rx) - RX_KEPT_BYTES
            del self._rx[:cut]
            self._rx_base += cut
        self._record("<<", data)
        for routed in self._exchange.receive(data, self._arrived):
            route = routed.route
            if route.reboot:
                self.rebooted_at = time.monotonic()
            if route.garbage:
                self.garbage_seen = True
            for note in routed.notes:
                self._note_unexpected(note.raw, note.where, text=note.text)
            if route.urc:
                self._note_urc(routed.event)

    @property
    def open_links(self) -> set[int]:
        """Links the device reported open (+WS_CONNECTED, or state 2 in AT+WSOPEN?), not ended
        since."""
        return self._exchange.open_links

    def _note_urc(self, event: Event) -> None:
        if isinstance(event, WsData):
            self._urc_bytes += len(event.data)
            while self._urc_bytes > URC_QUEUE_BYTES and self._urcs:
                dropped = self._urcs.popleft()
                size = len(getattr(dropped, "data", b""))
                self._urc_bytes -= size
                self.urc_bytes_dropped += size
        self._urcs.append(event)
        if len(self.urc_history) < URC_HISTORY_KEPT:
            self.urc_history.append(event)
            self.urc_times.append(self._arrived)

    def _note_unexpected(self, raw: bytes, where: str, text: bool = True) -> None:
        """`text`: the bytes should be text (a line), so bytes that are not make it garbage."""
        if len(self.unexpected) >= UNEXPECTED_KEPT:
            self.unexpected_dropped += 1
            return
        if text and any(b > 0x7E or (b < 0x20 and b not in b"\r\n\t") for b in raw[:256]) or \
                raw.startswith(b">"):
            self.garbage_seen = True             # not text, or a prompt nobody asked for
        self.unexpected.append((time.monotonic(), self.redactions.apply(raw[:512]), where))

    @property
    def flooded(self) -> bool:
        """More output than the client keeps came this test (a queue or the unexpected lines)."""
        return bool(self.urc_bytes_dropped or self.unexpected_dropped)

    def faults_seen(self) -> list[DeviceFault]:
        """What the device did this test that makes any verdict of the test moot: a reboot nobody
        asked for, a flood, a busy that outlived the retries, garbage. Which one tells the test's
        story is fixtures/verdicts.FAULT_PRECEDENCE's to say."""
        found: list[DeviceFault] = []
        with self._cond:
            shown_lines = b"".join(raw for _, raw, _ in self.unexpected)
            if self.rebooted_at is not None:
                found.append(DeviceRebooted(
                    what=f"the device rebooted during the test ({self.rebooted_at - self._t0:.3f} "
                         f"s into it): it printed `ready` though no reset was asked for",
                    sent=None, expected="no reboot", received=shown_lines, clauses=self.clauses))
            if self.flooded:
                found.append(DeviceFlood(
                    what=f"the device flooded the AT port: {self.urc_bytes_dropped} bytes of "
                         f"+WS_DATA dropped from the full queue ({URC_QUEUE_BYTES} bytes), "
                         f"{len(self.unexpected) + self.unexpected_dropped} unexpected line(s)",
                    sent=None, expected="no more output than the test asked for",
                    received=shown_lines, clauses=self.clauses))
            if self.busy_exhausted is not None:
                found.append(self.busy_exhausted.busy_fault())
            if self.garbage_seen:
                found.append(DeviceGarbage(
                    what="the device printed garbage: bytes that are neither text nor AT framing",
                    sent=None, expected="well-formed AT output", received=shown_lines,
                    clauses=self.clauses))
        return found

    # ---- helpers under the lock ------------------------------------------------------------

    @property
    def _rx_offset(self) -> int:
        return self._rx_base + len(self._rx)

    def _received_since(self, offset: int) -> bytes:
        return self.redactions.apply(bytes(self._rx[max(0, offset - self._rx_base):]))

    def _record(self, direction: str, data: bytes) -> None:
        """Into the transcript (lock held), secrets hidden; an end that could be the start of
        a secret waits for the next bytes of its direction."""
        if not self._recording:
            return
        if self.redactions:
            data = self.redactions.apply(self._held.pop(direction, b"") + data)
            keep = self.redactions.held_tail(data)
            if keep:
                self._held[direction], data = data[-keep:], data[:-keep]
        if data:
            self._transcript.append(time.monotonic(), direction, data)

    def _flush_held(self) -> None:
        for direction, data in self._held.items():
            self._transcript.append(time.monotonic(), direction, data)
        self._held = {}

    def _write(self, data: bytes) -> None:
        with self._cond:
            recording = self._recording
            self._record(">>", data)
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            shown = repr(self.redactions.apply(data[:64])) if recording else \
                "an unrecorded command"
            raise PortClosed(f"writing {shown} to the AT port {self.url or ''} failed: "
                             f"{exc}") from None

    def _wait_for(self, take: Callable[[], Event | None], deadline: float,
                  waiting_for: str = "") -> Event | None:
        """Wait (lock held) until take() returns an event or the deadline passes. A reboot nobody
        asked for ends the wait at once: nothing the test waits for will come after it."""
        while True:
            event = take()
            if event is not None:
                return event
            if waiting_for and self.rebooted_at is not None:
                raise DeviceRebooted(
                    what=f"the device rebooted ({self.rebooted_at - self._t0:.3f} s into the test) "
                         f"while the test waited for {waiting_for}", sent=None,
                    expected=waiting_for, received=self._received_since(self._rx_base)[-512:],
                    clauses=self.clauses)
            if self._reader_error is not None:
                raise PortClosed(f"the AT port {self.url or ''} failed: {self._reader_error!r}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._cond.wait(remaining)

    # ---- commands --------------------------------------------------------------------------

    def cmd(self, command: str | bytes, timeout: float = COMMAND_TIMEOUT_S,
            busy_retries: int = BUSY_RETRIES) -> Response:
        """Send one command line and collect its response up to the final result code. `busy
        p...` means the command was dropped: it is sent again, at most `busy_retries` times."""
        for retry in range(busy_retries + 1):
            with self._running(command, expects_prompt=False) as (response, start):
                self._collect(response, start, timeout, until_prompt=False)
            response.busy_retries = retry
            if not response.busy:
                return response
            if retry == busy_retries:
                if busy_retries:                 # retried and still busy: a device fault
                    self.busy_exhausted = response
                return response
            time.sleep(BUSY_PAUSE_S)
        return response

    def redact(self, secret: bytes) -> None:
        """Never record `secret` (an AT+WSOPEN <auth>): from now on it shows as `<secret>` in
        the transcript, the command lines kept and every failure text the client builds."""
        with self._cond:
            self.redactions.add(secret)
            # The echo of the command line shows it as the line quotes it (`"`, `,`, `\` escaped).
            self.redactions.add(quote(secret.decode("latin-1"))[1:-1].encode("latin-1"))

    def send_data(self, command: str | bytes, payload: bytes, *,
                  prompt_timeout: float = COMMAND_TIMEOUT_S,
                  send_timeout: float = COMMAND_TIMEOUT_S,
                  write_at: float | None = None) -> Response:
        """Data mode: command, wait for '>' (or ERROR), write exactly `payload`, wait for the
        result (SEND OK, SEND FAIL or ERROR). Returns early, without writing, if no prompt.
        write_at (a time.monotonic()): hold the payload until then, so the frame leaves when a
        replay wants it to, not when the prompt happened to come."""
        with self._running(command, expects_prompt=True) as (response, start):
            self._collect(response, start, prompt_timeout, until_prompt=True)
            if response.prompt:
                if write_at is not None:
                    time.sleep(max(0.0, write_at - time.monotonic()))
                self._write(payload)
                response.data_sent_at = time.monotonic()
                self._collect(response, start, send_timeout, until_prompt=False)
        return response

    @contextlib.contextmanager
    def _running(self, command: str | bytes, expects_prompt: bool):
        """Write a command line; while it runs, framing errors belong to it (they fail it)."""
        with self._cond:
            data, response = self._exchange.start(command, expects_prompt=expects_prompt,
                                                  clauses=self.clauses)
            response.command = self.redactions.apply(response.command)
            if self._recording:                  # an unrecorded command holds a secret
                self.commands_sent.append(response.command)
            start = self._rx_offset
        try:
            self._write(data)
            yield response, start
        finally:
            with self._cond:
                self._exchange.give_up()         # over, or no longer waited for

    def _collect(self, response: Response, start: int, timeout: float, until_prompt: bool) -> None:
        """Fill `response` from response events until a final result (or the prompt)."""
        with self._cond:
            self._collect_locked(response, start, time.monotonic() + timeout, timeout, until_prompt)

    def _collect_locked(self, response: Response, start: int, deadline: float, timeout: float,
                        until_prompt: bool) -> None:
        """Wait until the exchange has the command's answer (or its prompt); fail with the story
        when it was cut short or never came."""
        def answered() -> Response | None:
            return response if response.over or (until_prompt and response.prompt) else None

        done = self._wait_for(answered, deadline)
        response.received = self._received_since(start)
        if done is None:
            expected = "the '>' prompt" if until_prompt else "a final result code"
            missing = self._exchange.payload_missing
            if missing:                          # the answer went into a +WS_DATA payload
                self.garbage_seen = True
                raise DeviceGarbage(
                    what=f"no answer to {response.command!r} within {timeout:g} s: the "
                         f"device printed a +WS_DATA header whose payload never came, so "
                         f"its output since is read as that payload ({missing} bytes still "
                         f"missing)", sent=response.command + b"\r\n", expected=expected,
                    received=response.received, clauses=response.clauses)
            raise DeviceSilent(what=f"no answer to {response.command!r} within {timeout:g} s",
                               sent=response.command + b"\r\n", expected=expected,
                               received=response.received, clauses=response.clauses)
        if isinstance(response.ended_by, Ready):
            raise DeviceRebooted(what=f"the device rebooted while running {response.command!r}",
                                 sent=response.command + b"\r\n",
                                 expected="an answer, not a reboot",
                                 received=response.received, clauses=response.clauses)
        if response.ended_by is not None:
            raise DeviceGarbage(what=f"broken framing while running {response.command!r}: "
                                     f"{response.ended_by.detail}",
                                sent=response.command + b"\r\n",
                                expected="well-formed AT output",
                                received=response.received, clauses=response.clauses)

    def write_raw(self, data: bytes) -> None:
        """Bytes straight to the port, for tests of malformed input."""
        self._write(data)

    # ---- URCs ------------------------------------------------------------------------------

    def wait_urc(self, name: bytes | str | tuple[bytes, ...], link_id: int | None = None,
                 timeout: float = COMMAND_TIMEOUT_S) -> Event:
        """Take the first queued URC with this name (b'+WS_CONNECTED', b'+WS_DATA', b'ready'),
        or with any of a tuple of names, and link id, waiting up to `timeout`. Other URCs stay
        queued, in order."""
        names = name if isinstance(name, tuple) else (
            name.encode() if isinstance(name, str) else name,)

        def take() -> Event | None:
            for index, event in enumerate(self._urcs):
                if urc_name(event) in names and (link_id is None or
                                                 getattr(event, "link_id", None) == link_id):
                    del self._urcs[index]
                    return event
            return None

        wanted = " or ".join(n.decode() for n in names) + (
            f":{link_id}" if link_id is not None else "")
        with self._cond:
            # Waiting for `ready` is waiting for a reboot: a reboot does not end that wait.
            event = self._wait_for(take, time.monotonic() + timeout,
                                   "" if names == (b"ready",) else wanted)
            if event is None:
                raise DeviceSilent(what=f"no {wanted} within {timeout:g} s",
                                   sent=None, expected=wanted,
                                   received=b"".join(describe_urc(e) for e in self._urcs) or
                                   b"(no URC queued)", clauses=self.clauses)
            return event

    def wait_ws_data(self, link_id: int, size: int, timeout: float = COMMAND_TIMEOUT_S
                     ) -> list[bytes]:
        """Take +WS_DATA chunks of one link until they add up to `size` bytes; returns the chunks
        (their boundaries are the device's, so tests can check them against buffer_size)."""
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        got = 0
        while got < size:
            try:
                event = self.wait_urc(b"+WS_DATA", link_id, max(0.0, deadline - time.monotonic()))
            except DeviceSilent as exc:
                raise DeviceSilent(what=f"+WS_DATA:{link_id} gave {got} of {size} bytes within "
                                        f"{timeout:g} s", sent=None,
                                   expected=f"{size} bytes of +WS_DATA on link {link_id}",
                                   received=b"".join(chunks), clauses=self.clauses) from exc
            chunks.append(event.data)
            got += len(event.data)
        return chunks

    def pending_urcs(self) -> list[Event]:
        with self._cond:
            return list(self._urcs)

    def expect_no_urc(self, name: bytes | str, link_id: int | None = None,
                      within: float = 0.3) -> None:
        """Fail if such a URC is queued now or arrives within `within` seconds."""
        try:
            event = self.wait_urc(name, link_id, within)
        except DeviceSilent:
            return
        raise DeviceViolation(what="an unexpected URC arrived", sent=None,
                              expected=f"no {name!r} for link {link_id} within {within:g} s",
                              received=describe_urc(event), clauses=self.clauses)

    def assert_no_unexpected_output(self) -> None:
        """Fail with the bytes if the device printed anything that is neither the answer to a
        command nor a documented URC since the test began."""
        with self._cond:
            unexpected = list(self.unexpected)
        if not unexpected:
            return
        shown = "\n".join(f"  {t - self._t0:8.3f} s {where}: {raw!r}" for t, raw, where in unexpected)
        raise DeviceViolation(
            what=f"the device printed {len(unexpected)} line(s) that are neither the answer to a "
                 f"command nor a documented URC:\n{shown}",
            sent=None, expected="only answers to commands, documented URCs and Wi-Fi messages",
            received=b"".join(raw for _, raw, _ in unexpected), clauses=self.clauses)

    # ---- test boundaries -------------------------------------------------------------------

    def drain(self) -> list[Event]:
        """Drop whatever is queued (responses and URCs); returns it."""
        with self._cond:
            dropped = list(self._urcs)
            self._urcs.clear()
            self._urc_bytes = 0
            return dropped

    @contextlib.contextmanager
    def unrecorded(self):
        """Nothing sent or received inside goes into the transcript (a Wi-Fi password)."""
        with self._cond:
            self._recording = False
        try:
            yield
        finally:
            with self._cond:
                self._recording = True

    def begin_test(self, clauses: tuple[str, ...] = ()) -> list[Event]:
        """Drop whatever a previous test left queued; start a fresh transcript. Returns what was
        dropped, so a fixture can report it."""
        dropped = self.drain()
        with self._cond:
            self._reset_test_state()
            self.clauses = clauses
            return dropped

    def expect_reboot(self) -> None:
        """A reset is about to be triggered from outside the AT port (the reset line): its
        `ready` is asked for."""
        with self._cond:
            self._exchange.expect_reboot()

    def end_of_test(self) -> None:
        """The test is over: what the suite's restore does (resets included) is not the
        test's."""
        with self._cond:
            self.rebooted_at = None
            self.busy_exhausted = None

    def resync(self) -> None:
        """Forget any half-read framing (a +WS_DATA whose bytes never came would swallow every
        later line, `ready` included): a fresh engine starts at the next byte. For recovery."""
        with self._cond:
            self._exchange.engine = AtEngine(formats=self._exchange.engine.data_formats)
            self._transcript.append(time.monotonic(), "--", b"engine resynchronised")

    def note(self, text: str) -> None:
        """A line of the harness's own in the transcript (where the restore begins, say)."""
        with self._cond:
            self._transcript.append(time.monotonic(), "--", text.encode())

    @property
    def test_started(self) -> float:
        """When the test began (time.monotonic()): t = 0 of its transcript, recording and timeline."""
        return self._t0

    def transcript_entries(self) -> list[tuple[float, str, bytes]]:
        with self._cond:
            self._flush_held()
            return self._transcript.entries()

    def transcript(self) -> str:
        """The test's exchange as text: time since test start, direction, exact bytes (the
        first and last part of it when it was long)."""
        with self._cond:
            self._flush_held()
            return self._transcript.render(self._t0)

    @property
    def alive(self) -> bool:
        return self._reader.is_alive() and self._reader_error is None

    def reopen(self, within: float) -> bool:
        """The port dropped (a USB adapter re-enumerating, a bridge restarting): open it again,
        trying until `within` seconds have passed. True once it is open with a fresh reader."""
        if self.url is None:
            return False
        self._close_port()
        deadline = time.monotonic() + within
        while True:
            try:
                port = open_at_port(self.url, self._baudrate)
            except (serial.SerialException, OSError, ValueError):
                if time.monotonic() >= deadline:
                    return False
                time.sleep(REOPEN_POLL_S)
                continue
            with self._cond:
                self._attach(port)
                self._transcript.append(time.monotonic(), "--", b"AT port reopened")
            return True

    def _close_port(self) -> None:
        self._stop.set()
        self._reader.join(timeout=1.0)
        try:
            self._port.close()
        except (serial.SerialException, OSError):
            pass

    def close(self) -> None:
        self._close_port()


def urc_name(event: Event) -> bytes:
    if isinstance(event, Urc):
        return event.name
    if isinstance(event, WsData):
        return b"+WS_DATA"
    if isinstance(event, Ready):
        return b"ready"
    return b""


def describe_urc(event: Event) -> bytes:
    if isinstance(event, WsData):
        return b"+WS_DATA:%d,%d,%r\r\n" % (event.link_id, len(event.data), event.data[:64])
    if isinstance(event, Urc):
        return event.line + b"\r\n"
    return urc_name(event) + b"\r\n"
