"""The model's UARTs as a board has them: a Uart served on RFC 2217 to the real
pyserial client, DTR/RTS through the dev board's auto-reset circuit driven by esptool's own reset
sequences, and pacing at the baud. Timing is only ever asserted as a lower bound."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import serial
from esptool.loader import ESPLoader
from esptool.reset import ClassicReset, HardReset

from sim.reset_circuit import DATASHEET_EN_RISE_S, EN_RISE_S, AutoResetCircuit
from sim.rfc2217 import Rfc2217Port, serve_rfc2217
from sim.uart import Uart

WAIT_S = 5.0
# Every byte value, and the telnet escape (0xFF) in runs, next to NULs.
BINARY = bytes(range(256)) * 4 + b"\xff" * 600 + b"\x00" * 100 + b"\xff\x00\xff\xff\x00"


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop",
                                        daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float = WAIT_S):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., object], *args: object) -> object:
        async def call():
            return fn(*args)
        return self.run(call())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT_S)
        self.loop.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@dataclass
class Board:
    """A Uart and an auto-reset circuit behind one RFC 2217 port; `events` is what the chip saw
    ("hold", then "download" or "normal" boot)."""

    loop: LoopThread
    uart: Uart
    circuit: AutoResetCircuit
    port: Rfc2217Port
    events: list[str] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)

    def open(self, query: str = "", **kwargs: object) -> serial.SerialBase:
        kwargs.setdefault("baudrate", 115200)
        kwargs.setdefault("timeout", WAIT_S)
        return serial.serial_for_url(self.port.url + query, **kwargs)

    def wait_events(self, n: int) -> list[str]:
        wait_until(lambda: len(self.events) >= n, f"{n} reset events, have {self.events}")
        return self.events


def make_board(loop: LoopThread, *, paced: bool = False, echo: bool = False,
               en_rise_s: float = EN_RISE_S) -> Board:
    uart = Uart("uart0", paced=paced)
    events: list[str] = []
    circuit = AutoResetCircuit(lambda: events.append("hold"),
                               lambda download: events.append("download" if download
                                                              else "normal"),
                               en_rise_s=en_rise_s)
    port = loop.run(serve_rfc2217(uart, on_dtr=circuit.set_dtr, on_rts=circuit.set_rts))
    board = Board(loop, uart, circuit, port, events)

    def on_receive(data: bytes) -> None:
        board.received += data
        if echo:
            uart.write(data)
    uart.on_receive = on_receive
    return board


@pytest.fixture
def board(loop: LoopThread) -> Iterator[Board]:
    b = make_board(loop, echo=True)
    yield b
    loop.run(b.port.close())
    loop.call(b.circuit.cancel)


def read_exactly(s: serial.SerialBase, n: int) -> bytes:
    data = bytearray()
    deadline = time.monotonic() + WAIT_S * 2
    while len(data) < n and time.monotonic() < deadline:
        data += s.read(n - len(data))
    return bytes(data)


# ---- the port ----------------------------------------------------------------------------

def test_open_close_reopen_and_a_new_host_replaces_the_old(board: Board) -> None:
    with board.open() as s:
        s.write(b"AT\r\n")
        assert read_exactly(s, 4) == b"AT\r\n"
    with board.open() as s:
        s.write(b"again")
        assert read_exactly(s, 5) == b"again"
        second = board.open()
        try:
            second.write(b"new host")
            assert read_exactly(second, 8) == b"new host"
            board.loop.call(board.uart.write, b"to the current host")
            assert read_exactly(second, 19) == b"to the current host"
        finally:
            second.close()
    assert board.received == b"AT\r\nagainnew host"
    assert board.events == []


def test_binary_clean_both_ways(board: Board) -> None:
    with board.open() as s:
        s.write(BINARY)
        assert read_exactly(s, len(BINARY)) == BINARY   # echoed: host -> chip -> host
        assert bytes(board.received) == BINARY
        board.loop.call(board.uart.write, b"\xff\xff\x00\xff")
        assert read_exactly(s, 4) == b"\xff\xff\x00\xff"


def test_baud_rate_reaches_the_uart(board: Board) -> None:
    changes: list[int] = []
    board.uart.on_baud_change = changes.append
    with board.open(baudrate=115200) as s:
        assert board.uart.baud == 115200
        s.baudrate = 460800
        assert board.uart.baud == 460800
        s.write(b"still talking")
        assert read_exactly(s, 13) == b"still talking"
    assert changes == [460800]


def test_dtr_and_rts_reach_the_circuit(board: Board) -> None:
    with board.open() as s:
        # pyserial asserts both on open: the board's "neither pulled" state.
        assert (board.circuit.dtr, board.circuit.rts) == (True, True)
        assert not (s.cts or s.dsr or s.ri or s.cd)     # NOTIFY-MODEMSTATE came on open
        s.rts = False
        assert (board.circuit.dtr, board.circuit.rts) == (True, False)
        assert board.circuit.boot_pin_low and board.circuit.en
        s.dtr = False
        assert (board.circuit.dtr, board.circuit.rts) == (False, False)
        assert not board.circuit.boot_pin_low and board.circuit.en
    assert board.events == []


def test_opening_and_closing_the_port_does_not_reset(board: Board) -> None:
    for _ in range(2):
        with board.open() as s:
            assert board.circuit.en and not board.circuit.boot_pin_low
            s.write(b"x")
            assert read_exactly(s, 1) == b"x"
        # Closing deasserts both lines, RTS first: never "RTS only", so EN stays high.
        wait_until(lambda: not (board.circuit.dtr or board.circuit.rts), "lines dropped")
        assert board.circuit.en
    time.sleep(EN_RISE_S * 2)    # a glitch would show up as a late boot
    assert board.events == []


def test_a_host_that_sets_both_lines_off_before_open_does_not_reset(board: Board) -> None:
    s = board.open(do_not_open=True)
    s.dtr = s.rts = False        # what esptool does on Windows, and esp_rfc2217_server
    s.open()
    try:
        assert (board.circuit.dtr, board.circuit.rts) == (False, False)
        HardReset(s)()
        assert board.wait_events(2) == ["hold", "normal"]
    finally:
        s.close()


# ---- esptool's reset sequences -------------------------------------------------------------

def test_esptool_classic_reset_enters_download_mode(board: Board) -> None:
    with board.open() as s:
        ClassicReset(s)()
        assert board.wait_events(2) == ["hold", "download"]
        assert board.circuit.en and not board.circuit.boot_pin_low


def test_esptool_classic_reset_with_ign_set_control(board: Board) -> None:
    # How esp_rfc2217_server tells clients to connect: SET-CONTROL answers are not awaited,
    # each change is followed by a 0.1 s sleep instead.
    with board.open("?ign_set_control") as s:
        ClassicReset(s)()
        assert board.wait_events(2) == ["hold", "download"]


def test_esptool_hard_reset_after_classic_boots_normally(board: Board) -> None:
    # esptool's (and pytest-embedded-serial-esp's) order: connect with ClassicReset, then
    # ESPLoader.hard_reset(), which is HardReset(port) for a port with no USB identity.
    with board.open() as s:
        ClassicReset(s)()
        board.wait_events(2)
        HardReset(s)()
        assert board.wait_events(4) == ["hold", "download", "hold", "normal"]
        ESPLoader(s, 115200).hard_reset()
        assert board.wait_events(6)[4:] == ["hold", "normal"]


def test_hard_reset_right_after_open_does_nothing_as_on_the_board(board: Board) -> None:
    # Opened as pyserial does, DTR is asserted; HardReset's "RTS on" then makes "both asserted",
    # which pulls nothing: the real circuit does not reset either.
    with board.open() as s:
        HardReset(s)()
        time.sleep(EN_RISE_S * 2)
    assert board.events == []


def test_with_the_datasheet_rc_classic_reset_over_rfc2217_misses_download(loop: LoopThread) -> None:
    # The reason esp_rfc2217_server replays resets on the board's side: pyserial's >= 50 ms per
    # SET-CONTROL leaves "both asserted" (EN released, boot pin high) long enough for a 14 ms RC.
    b = make_board(loop, en_rise_s=DATASHEET_EN_RISE_S)
    try:
        with b.open() as s:
            ClassicReset(s)()
            assert b.wait_events(2) == ["hold", "normal"]
    finally:
        loop.run(b.port.close())


# ---- the circuit on its own ---------------------------------------------------------------

def test_circuit_truth_table() -> None:
    events: list[object] = []
    c = AutoResetCircuit(lambda: events.append("hold"), events.append, en_rise_s=0)
    assert c.en and not c.boot_pin_low
    c.set_lines(True, True)
    assert c.en and not c.boot_pin_low and events == []
    c.set_lines(True, False)
    assert c.en and c.boot_pin_low and events == []
    c.set_lines(False, True)
    assert not c.en and not c.boot_pin_low and events == ["hold"]
    c.set_rts(True)                              # still held: no second hold
    c.set_lines(True, False)                     # released with the boot pin low
    assert c.en and events == ["hold", True]
    c.set_lines(False, True)
    c.set_rts(False)
    assert c.en and events == ["hold", True, "hold", False]


def test_circuit_en_must_stay_released_for_the_rc_to_rise(loop: LoopThread) -> None:
    events: list[object] = []

    async def glitch() -> None:
        c = AutoResetCircuit(lambda: events.append("hold"), events.append, en_rise_s=0.05)
        c.set_rts(True)
        c.set_rts(False)         # released...
        c.set_rts(True)          # ...and pulled low again before EN could rise
        await asyncio.sleep(0.1)
        assert not c.en
        c.set_rts(False)
        assert not c.en          # rising
        await asyncio.sleep(0.1)
        assert c.en
    loop.run(glitch())
    assert events == ["hold", False]


def test_circuit_a_due_rise_happens_before_a_late_line_change(loop: LoopThread) -> None:
    # The loop was busy past the rise: the line change that then arrives did not precede it.
    events: list[object] = []

    async def late() -> None:
        c = AutoResetCircuit(lambda: events.append("hold"), events.append, en_rise_s=0.01)
        c.set_lines(False, True)
        c.set_lines(True, True)      # released, boot pin high
        time.sleep(0.05)             # blocks the loop: the rise's timer cannot run
        c.set_lines(True, False)     # boot pin low, too late for this boot
    loop.run(late())
    assert events == ["hold", False]


# ---- pacing --------------------------------------------------------------------------------

def test_unpaced_passes_straight_through() -> None:
    uart = Uart()
    out: list[bytes] = []
    got: list[bytes] = []
    uart.attach(out.append)
    uart.on_receive = got.append
    uart.write(b"\xff" * 100_000)
    uart.receive(b"AT\r\n")
    assert out == [b"\xff" * 100_000] and got == [b"AT\r\n"]   # synchronously, no loop


def _time_to_host(loop: LoopThread, baud: int, n: int) -> float:
    uart = Uart(paced=True, baud=baud)
    out = bytearray()
    uart.attach(out.extend)
    payload = bytes(i & 0xFF for i in range(n))

    async def send() -> float:
        t0 = asyncio.get_running_loop().time()
        uart.write(payload)
        assert not out                       # nothing before the line has sent it
        await uart.drain()
        return asyncio.get_running_loop().time() - t0
    elapsed = loop.run(send(), timeout=n * 10 / baud + WAIT_S)
    assert out == payload
    return elapsed


def test_paced_11520_bytes_at_115200_take_a_second(loop: LoopThread) -> None:
    assert _time_to_host(loop, 115200, 11520) >= 0.9


def test_paced_at_460800_is_four_times_the_rate(loop: LoopThread) -> None:
    assert _time_to_host(loop, 460800, 11520) >= 0.9 / 4
    assert _time_to_host(loop, 460800, 4 * 11520) >= 0.9


def test_paced_host_to_chip_over_rfc2217(loop: LoopThread) -> None:
    b = make_board(loop, paced=True)
    try:
        with b.open(baudrate=115200) as s:
            t0 = time.monotonic()
            s.write(BINARY[:1152] * 10)
            wait_until(lambda: len(b.received) >= 11520, "the chip to receive 11520 bytes")
            assert time.monotonic() - t0 >= 0.9
            assert bytes(b.received) == BINARY[:1152] * 10

            t0 = time.monotonic()
            b.loop.call(b.uart.write, BINARY[:1152] * 10)
            assert read_exactly(s, 11520) == BINARY[:1152] * 10
            assert time.monotonic() - t0 >= 0.9
    finally:
        loop.run(b.port.close())


def test_a_baud_change_applies_to_bytes_not_yet_on_the_line(loop: LoopThread) -> None:
    uart = Uart(paced=True, baud=921600)
    out = bytearray()
    uart.attach(out.extend)

    async def send() -> float:
        t0 = asyncio.get_running_loop().time()
        uart.write(b"\x55" * 2100)     # 23 ms at 921600, but only the first chunk (10 ms
        uart.baud = 9600               # of line time) is on the line: the rest goes at 9600
        await uart.drain()
        return asyncio.get_running_loop().time() - t0
    assert loop.run(send()) >= 0.9     # >= 1170 bytes at 9600: >= 1.2 s
    assert out == b"\x55" * 2100


def test_queues_are_bounded_dropping_the_oldest(loop: LoopThread) -> None:
    uart = Uart(paced=True, limit=100)
    out = bytearray()
    got = bytearray()
    uart.attach(out.extend)
    uart.on_receive = got.extend
    data = bytes(range(250))

    async def flood() -> None:
        uart.write(data)
        uart.receive(data)
        await uart.drain()
        await uart.receive_idle()
    loop.run(flood())
    assert out == data[-100:] and got == data[-100:]


def test_purge_drops_what_is_not_yet_on_the_line(loop: LoopThread) -> None:
    uart = Uart(paced=True, baud=115200)
    out = bytearray()
    uart.attach(out.extend)

    async def purge() -> None:
        uart.write(b"a" * 1000)
        uart.purge(to_host=True)
        await uart.drain()
    loop.run(purge())
    assert 0 < len(out) < 1000 and set(out) == {ord("a")}
