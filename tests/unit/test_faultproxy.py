"""tools/faultproxy.py to the byte: each fault kind against a tiny fake target (echo + OK to each
line, a boot and `ready` after AT+RST, the `>` flow of AT+WSSEND), the proxy in the same event
loop; one test runs the CLI in front of a real `python -m sim`."""
from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tools.faultproxy import (BUSY_LINE, FLOOD_RECORD, HEADER_ONLY, ClientStream, FaultProxy,
                              flood_records, garbage_bytes, parse_fault)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(5)
WAIT_S = 2.0
OK = b"\r\nOK\r\n"
BOOT = b"\r\nets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\n"
READY = b"\r\nready\r\n"
_WSSEND = re.compile(rb"AT\+WSSEND=\d+,(\d+)")


class FakeTarget:
    """An AT port that echoes each line and answers OK; AT+RST: OK, boot text, ready;
    AT+WSSEND=<id>,<n>: OK and `>`, then takes n bytes and answers SEND OK."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.connections = 0
        self.closed = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> "FakeTarget":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.server.sockets[0].getsockname()[1]

    def push(self, data: bytes) -> None:
        """Output of the device's own (a URC)."""
        self.writer.write(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writer = writer
        buffer = b""
        payload_left = 0
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                self.received += data
                buffer += data
                while True:
                    if payload_left:
                        taken = buffer[:payload_left]
                        buffer = buffer[payload_left:]
                        payload_left -= len(taken)
                        if payload_left:
                            break
                        writer.write(b"\r\nSEND OK\r\n")
                        continue
                    line, eol, rest = buffer.partition(b"\r\n")
                    if not eol:
                        break
                    buffer = rest
                    writer.write(line + b"\r\n" + OK)
                    if line == b"AT+RST":
                        writer.write(BOOT + READY)
                    match = _WSSEND.match(line)
                    if match:
                        writer.write(b">")
                        payload_left = int(match.group(1))
        finally:
            writer.close()
            self.closed.set()

    async def close(self) -> None:
        self.server.close()
        if self.writer is not None:
            self.writer.close()


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> "Client":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self, count: int, timeout: float = WAIT_S) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(count), timeout)

    async def expect(self, expected: bytes, timeout: float = WAIT_S) -> None:
        got = await self.read(len(expected), timeout)
        assert got == expected

    async def nothing_within(self, seconds: float) -> None:
        with pytest.raises(asyncio.TimeoutError):
            got = await asyncio.wait_for(self.reader.read(1), seconds)
            raise AssertionError(f"received {got!r}")

    async def eof(self, timeout: float = WAIT_S) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(), timeout) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.writer.close()


def answer(line: bytes) -> bytes:
    return line + b"\r\n" + OK


def run(scenario, *faults: str, log=None):
    """Fake target, proxy with `faults`, one client; run `scenario(target, proxy, client)`."""
    async def main():
        target = await FakeTarget().start()
        proxy = await FaultProxy(target.address, list(faults), log=log).listen()
        client = await Client.connect(proxy.port)
        try:
            await scenario(target, proxy, client)
        finally:
            client.close()
            await proxy.aclose()
            await target.close()
    asyncio.run(main())


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


# ---- specs and the line splitter -----------------------------------------------------------

def test_spec_parsing():
    fault = parse_fault("busy:3@AT+WSOPEN?#2")
    assert (fault.kind, fault.value, fault.trigger, fault.nth) == ("busy", 3, b"AT+WSOPEN?", 2)
    assert parse_fault("garbage@AT+WSOPEN=").value == 64
    assert parse_fault("stall:0.5@AT").value == 0.5
    assert parse_fault("reboot@AT+WSOPEN=").spec == "reboot@AT+WSOPEN="
    assert parse_fault("flood:33554432@AT+WSOPEN=#4").spec == "flood:33554432@AT+WSOPEN=#4"
    for bad in ("reboot", "nope@AT", "stall@AT", "reboot:1@AT", "busy:0@AT", "drop:x@AT",
                "reboot@", "garbage@AT#0"):
        with pytest.raises(ValueError):
            parse_fault(bad)


def test_lines_are_split_the_same_whole_and_byte_by_byte():
    stream = b'AT\r\nAT+WSOPEN=0,"ws://h/p"\r\nAT+WSCFG=0,1\r\nXY'
    armed = lambda prefix: b"AT+WSOPEN=".startswith(prefix) or prefix.startswith(b"AT+WSOPEN=")

    def lines(chunks):
        splitter = ClientStream(armed)
        out = [piece for chunk in chunks for piece in splitter.feed(chunk)]
        held = [raw for kind, raw in out if kind == ClientStream.LINE and raw.startswith(b"AT+WSO")]
        return held, b"".join(raw for _, raw in out)

    whole = lines([stream])
    assert whole == lines([stream[i:i + 1] for i in range(len(stream))])
    assert whole[0] == [b'AT+WSOPEN=0,"ws://h/p"\r\n']   # the line to match, whole
    assert whole[1] == stream                            # nothing lost or reordered


def test_wssend_payload_is_data_not_lines():
    splitter = ClientStream(lambda prefix: True)
    assert splitter.feed(b"AT+WSSEND=0,8\r\n") == [("line", b"AT+WSSEND=0,8\r\n")]
    splitter.note_forwarded(b"AT+WSSEND=0,8\r\n")
    splitter.note_target(b"AT+WSSEND=0,8\r\n\r\nOK\r\n\r\n>")
    assert splitter.feed(b"AT+X\r\nAT") == [("raw", b"AT+X\r\nAT")]
    assert splitter.feed(b"AT+Y\r\n") == [("line", b"AT+Y\r\n")]


# ---- each kind -----------------------------------------------------------------------------

def test_no_fault_passes_both_ways():
    async def scenario(target, proxy, client):
        await client.send(b"AT\r\n")
        await client.expect(answer(b"AT"))
        target.push(b"+WS_CONNECTED:0\r\n")
        await client.expect(b"+WS_CONNECTED:0\r\n")
        await client.send(b"XYZ")                      # no CR LF: forwarded at once all the same
        await asyncio.sleep(0.1)
        assert bytes(target.received) == b"AT\r\nXYZ"
    run(scenario)


def test_reboot_answers_the_command_with_a_boot():
    line = b'AT+WSOPEN=0,"ws://127.0.0.1:1/x"'

    async def scenario(target, proxy, client):
        await client.send(b"AT\r\n")
        await client.expect(answer(b"AT"))
        await client.send(line + b"\r\n")
        await client.expect(BOOT + READY)               # AT+RST's echo and OK swallowed
        await client.nothing_within(0.2)
        assert bytes(target.received) == b"AT\r\nAT+RST\r\n"
        await client.send(line + b"\r\n")               # once only
        await client.expect(answer(line))
    run(scenario, "reboot@AT+WSOPEN=")


def test_garbage_comes_before_the_answer_and_fires_on_the_nth_line():
    async def scenario(target, proxy, client):
        await client.send(b"AT+X\r\n")
        await client.expect(answer(b"AT+X"))
        await client.send(b"AT+X=2\r\n")
        noise = garbage_bytes(16, random.Random(0))
        assert all(b >= 0x80 for b in noise)
        await client.expect(noise + answer(b"AT+X=2"))
        await client.send(b"AT+X\r\n")
        await client.expect(answer(b"AT+X"))
    run(scenario, "garbage:16@AT+X#2")


def test_garbage_default_is_64_bytes():
    async def scenario(target, proxy, client):
        await client.send(b"AT+X\r\n")
        await client.expect(garbage_bytes(64, random.Random(0)) + answer(b"AT+X"))
    run(scenario, "garbage@AT+X")


def test_prompt_sends_a_lone_prompt_first():
    async def scenario(target, proxy, client):
        await client.send(b"AT+WSOPEN?\r\n")
        await client.expect(b">" + answer(b"AT+WSOPEN?"))
        assert bytes(target.received) == b"AT+WSOPEN?\r\n"
    run(scenario, "prompt@AT+WSOPEN?")


def test_header_without_payload():
    async def scenario(target, proxy, client):
        await client.send(b"AT+WSOPEN?\r\n")
        await client.expect(HEADER_ONLY + answer(b"AT+WSOPEN?"))
        assert HEADER_ONLY == b"+WS_DATA:0,100,"
    run(scenario, "header@AT+WSOPEN?")


@pytest.mark.timeout(5)
def test_stall_holds_both_ways_then_delivers_in_order():
    async def scenario(target, proxy, client):
        await client.send(b"AT\r\n")
        await client.expect(answer(b"AT"))
        started = time.monotonic()
        await client.send(b"AT+S\r\n")
        await asyncio.sleep(0.1)
        target.push(b"+URC:1\r\n")                     # the device's own output is held too
        await client.send(b"AT+AFTER\r\n")
        await client.nothing_within(0.3)
        assert bytes(target.received) == b"AT\r\n"
        await client.expect(b"+URC:1\r\n" + answer(b"AT+S") + answer(b"AT+AFTER"))
        assert time.monotonic() - started >= 0.5
        assert bytes(target.received) == b"AT\r\nAT+S\r\nAT+AFTER\r\n"
    run(scenario, "stall:0.5@AT+S")


@pytest.mark.timeout(5)
def test_drop_closes_the_port_and_listens_again_with_the_device_untouched():
    async def scenario(target, proxy, client):
        await client.send(b"AT\r\n")
        await client.expect(answer(b"AT"))
        await client.send(b"AT+D\r\n")
        dropped = time.monotonic()
        assert await client.eof()
        assert await refused(proxy.port)
        target.push(b"+LOST\r\n")                      # nobody to hear it: dropped
        while await refused(proxy.port):
            assert time.monotonic() - dropped < 2.0
            await asyncio.sleep(0.05)
        assert time.monotonic() - dropped >= 0.45
        again = await Client.connect(proxy.port)
        await again.send(b"AT\r\n")
        await again.expect(answer(b"AT"))
        again.close()
        assert target.connections == 1 and not target.closed.is_set()
        assert bytes(target.received) == b"AT\r\nAT\r\n"  # the triggering line never went
    run(scenario, "drop:0.5@AT+D")


def test_gone_closes_everything_for_good():
    async def scenario(target, proxy, client):
        await client.send(b"AT\r\n")
        await client.expect(answer(b"AT"))
        await client.send(b"AT+G\r\n")
        assert await client.eof()
        await asyncio.wait_for(target.closed.wait(), WAIT_S)
        assert await refused(proxy.port)
        await asyncio.sleep(0.3)
        assert await refused(proxy.port)
        assert bytes(target.received) == b"AT\r\n"
    run(scenario, "gone@AT+G")


def test_flood_is_whole_records_then_the_answer():
    total = 100_000
    count = flood_records(total)
    assert count * len(FLOOD_RECORD) >= total > (count - 1) * len(FLOOD_RECORD)
    assert FLOOD_RECORD.startswith(b"+WS_DATA:0,1024,") and len(FLOOD_RECORD) == 16 + 1024 + 2

    said = []

    async def scenario(target, proxy, client):
        await client.send(b"AT+F\r\n")
        await client.expect(FLOOD_RECORD * count + answer(b"AT+F"))
        await client.nothing_within(0.1)
    run(scenario, f"flood:{total}@AT+F", log=said.append)
    size = count * len(FLOOD_RECORD)
    assert said == [f"fired flood:{total}@AT+F (matching line 1)",
                    f"flood: {size} of {size} bytes written"]


def test_flood_goes_at_the_speed_of_the_reader():
    """A client that does not read: the proxy's buffer for it stays small (the flood is made as
    it is written), and reading it all later still gives every byte."""
    total = 8 << 20
    count = flood_records(total)

    async def scenario(target, proxy, client):
        await client.send(b"AT+F\r\n")
        await asyncio.sleep(0.3)
        assert proxy._client.transport.get_write_buffer_size() < 256 * 1024
        received = 0
        tail = b""
        while received < count * len(FLOOD_RECORD) + len(answer(b"AT+F")):
            chunk = await asyncio.wait_for(client.reader.read(1 << 20), WAIT_S)
            assert chunk
            received += len(chunk)
            tail = (tail + chunk)[-64:]
        assert received == count * len(FLOOD_RECORD) + len(answer(b"AT+F"))
        assert tail.endswith(answer(b"AT+F"))
    run(scenario, f"flood:{total}@AT+F")


def test_busy_answers_n_lines_then_passes():
    async def scenario(target, proxy, client):
        for _ in range(2):
            await client.send(b"AT+WSOPEN?\r\n")
            await client.expect(b"AT+WSOPEN?\r\n" + BUSY_LINE)
        assert bytes(target.received) == b""
        await client.send(b"AT+WSOPEN?\r\n")
        await client.expect(answer(b"AT+WSOPEN?"))
        assert bytes(target.received) == b"AT+WSOPEN?\r\n"
    run(scenario, "busy:2@AT+WSOPEN?")


def test_a_wssend_payload_never_triggers():
    payload = b"AT+P\r\nAT+P\r\n"

    async def scenario(target, proxy, client):
        command = f"AT+WSSEND=0,{len(payload)}".encode()
        await client.send(command + b"\r\n")
        await client.expect(answer(command) + b">")
        await client.send(payload)
        await client.expect(b"\r\nSEND OK\r\n")
        await client.send(b"AT+P\r\n")
        await client.expect(b">" + answer(b"AT+P"))     # the first real line fires it
        assert bytes(target.received) == command + b"\r\n" + payload + b"AT+P\r\n"
    run(scenario, "prompt@AT+P")


def test_a_new_client_replaces_the_old():
    async def scenario(target, proxy, client):
        second = await Client.connect(proxy.port)
        assert await client.eof()
        await second.send(b"AT\r\n")
        await second.expect(answer(b"AT"))
        second.close()
        assert target.connections == 1
    run(scenario)


def test_stop_inside_the_loop():
    async def scenario(target, proxy, client):
        proxy.stop()
        assert await client.eof()
        assert await refused(proxy.port)
    run(scenario)


def test_thread_api():
    async def serve(ready: asyncio.Future, done: asyncio.Event):
        target = await FakeTarget().start()
        ready.set_result(target.address)
        await done.wait()
        await target.close()

    loop = asyncio.new_event_loop()
    ready, done = loop.create_future(), asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(ready, done),))
    thread.start()
    try:
        while not ready.done():
            time.sleep(0.01)
        with FaultProxy(ready.result(), ["busy:1@AT"]) as proxy:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT_S) as sock:
                sock.sendall(b"AT\r\n")
                got = b""
                while len(got) < len(b"AT\r\n" + BUSY_LINE):
                    got += sock.recv(100)
                assert got == b"AT\r\n" + BUSY_LINE
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join(WAIT_S)


# ---- the CLI in front of the real model ------------------------------------------------------

def announced(process: subprocess.Popen, prefix: bytes, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line[len(prefix):].decode().strip()
    raise AssertionError(f"no {prefix!r} line")


@pytest.mark.timeout(20)
def test_cli_reboot_in_front_of_the_model():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    model = subprocess.Popen([sys.executable, "-m", "sim"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proxy = None
    try:
        at_url = announced(model, b"AT port: ")
        proxy = subprocess.Popen([sys.executable, "-m", "tools.faultproxy", "--target", at_url,
                                  "--fault", "reboot@AT+WSOPEN="], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = proxy.stdout.readline()
        assert re.fullmatch(rb"proxy port: socket://127\.0\.0\.1:\d+\n", line), line
        port = int(line.rsplit(b":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            def exchange(data: bytes, until: bytes) -> bytes:
                sock.sendall(data)
                got = b""
                while not got.endswith(until):
                    chunk = sock.recv(4096)
                    assert chunk, got
                    got += chunk
                return got
            assert exchange(b"AT\r\n", b"OK\r\n") == b"AT\r\n\r\nOK\r\n"
            got = exchange(b'AT+WSOPEN=0,"ws://127.0.0.1:1/x"\r\n', b"ready\r\n")
            assert b"OK" not in got and b"AT+RST" not in got and got.endswith(b"ready\r\n")
            assert exchange(b"AT\r\n", b"OK\r\n") == b"AT\r\n\r\nOK\r\n"
        proxy.send_signal(signal.SIGTERM)
        assert proxy.wait(5) == 0
        assert proxy.stderr.read() == b"faultproxy: fired reboot@AT+WSOPEN= (matching line 1)\n"
    finally:
        for process in (proxy, model):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(5)
        for process in (proxy, model):
            if process is not None:
                process.stdout.close()
                if process.stderr:
                    process.stderr.close()
