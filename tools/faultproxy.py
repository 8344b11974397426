"""A fault-injecting TCP proxy for the AT port: the suite's client on one side, a device's AT port
(the model's `socket://` port) on the other, and faults fired by the command lines the client sends.

  python -m tools.faultproxy --target HOST:PORT [--listen HOST:PORT] --fault SPEC [--fault SPEC ...]

Prints one line, `proxy port: socket://HOST:N`, then forwards bytes both ways until SIGTERM or
SIGINT. One client at a time: a new connection replaces the old one, as re-opening a UART does
(and as the model's own socket port does). The connection to the target is opened at start and
kept across clients: the device does not reboot when its port is re-opened. What the target
prints while no client is connected is lost.

A fault SPEC is `KIND[:ARG]@TRIGGER[#N]`: it fires when the client sends the N-th (default 1st)
command line that starts with TRIGGER (the bytes before `\\r\\n`, as the client sent them). Each
fault fires once, except `busy`, which answers N lines. Kinds (FAULTS below, one class each):

  reboot          the line is not forwarded; AT+RST goes to the target instead, and its echo and
                  OK are swallowed: the client sees its command answered by a reboot (boot output,
                  `ready`)
  garbage[:N]     forward the line; the client first gets N (64) seeded random non-ASCII bytes
  prompt          forward the line; the client first gets a lone `>`
  header          forward the line; the client first gets `+WS_DATA:0,100,` (no payload follows)
  stall:S         from the trigger on nothing moves either way for S seconds (held, then in order)
  drop:S          the line is not forwarded; the client connection and the listener close, and
                  the proxy listens again on the same port after S seconds; the target connection
                  stays (bytes it sends meanwhile are lost): a USB adapter re-enumerating
  gone            the client connection, the listener and the target connection close for good
  flood:BYTES     forward the line; the client gets BYTES bytes (whole records, rounded up) of
                  `+WS_DATA:0,1024,<1024 bytes>\\r\\n` as fast as it reads; the device's answer
                  follows the flood
  busy:N          the N matching lines from the trigger on are answered by the proxy (the line's
                  echo, `busy p...`) and not forwarded; the next one passes

Command lines are told apart from AT+WSSEND payloads: after a forwarded `AT+WSSEND=<id>,<len>`
line and the target's `>`, the next <len> bytes are data, forwarded untouched and never matched.

In-process: `FaultProxy(("127.0.0.1", port), ["reboot@AT+WSOPEN="]).start()` serves on a thread
of its own (`.port`, `.url`, `.stop()`); in a running event loop, `await proxy.listen()` and
`await proxy.aclose()`.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import random
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import ClassVar

EOL = b"\r\n"
READ_SIZE = 65536
CONNECT_TIMEOUT_S = 5.0
THREAD_TIMEOUT_S = 5.0
BUSY_LINE = b"busy p...\r\n"
HEADER_ONLY = b"+WS_DATA:0,100,"
FLOOD_PAYLOAD = bytes(i % 256 for i in range(1024))    # CR, LF, NUL and non-UTF-8 among them
FLOOD_RECORD = b"+WS_DATA:0,1024," + FLOOD_PAYLOAD + EOL
FLOOD_RECORDS_PER_WRITE = 64
SWALLOW_LIMIT = 4096           # reboot: past this without the target's OK, pass what was held
_WSSEND = re.compile(rb"AT\+WSSEND=\d+,(\d+)")


def garbage_bytes(count: int, rng: random.Random) -> bytes:
    """`count` bytes in 0x80-0xFF: not ASCII, so never CR, LF or a line the engine could take."""
    return bytes(rng.randrange(0x80, 0x100) for _ in range(count))


def flood_records(total: int) -> int:
    """How many whole records make at least `total` bytes (at least one)."""
    return max(1, -(-total // len(FLOOD_RECORD)))


# ---- the fault kinds -------------------------------------------------------------------------

class Fault:
    """One fault: its trigger, how many matching lines it has seen, and what it does when it
    fires. A kind is a subclass with `kind`, an argument parser and `act`."""

    kind: ClassVar[str] = ""
    arg_name: ClassVar[str | None] = None     # None: the kind takes no argument
    arg_default: ClassVar[str | None] = None  # None with an arg_name: the argument is required

    def __init__(self, trigger: bytes, nth: int = 1, arg: str | None = None) -> None:
        if not trigger:
            raise ValueError(f"{self.kind}: the trigger is empty")
        if nth < 1:
            raise ValueError(f"{self.kind}: #N counts from 1, got {nth}")
        if self.arg_name is None and arg is not None:
            raise ValueError(f"{self.kind} takes no argument, got {arg!r}")
        if self.arg_name is not None and arg is None:
            if self.arg_default is None:
                raise ValueError(f"{self.kind} needs :{self.arg_name}")
            arg = self.arg_default
        self.trigger = trigger
        self.nth = nth
        self.arg = arg
        self.value = self.parse(arg) if arg is not None else None
        self.source = None        # the SPEC it was parsed from
        self.seen = 0             # lines that matched the trigger so far
        self.fired = 0            # lines this fault took

    def parse(self, arg: str) -> object:
        return arg

    @property
    def spec(self) -> str:
        if self.source is not None:
            return self.source
        arg = f":{self.arg}" if self.arg is not None else ""
        nth = f"#{self.nth}" if self.nth != 1 else ""
        return f"{self.kind}{arg}@{self.trigger.decode(errors='replace')}{nth}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec} seen={self.seen} fired={self.fired}>"

    @property
    def lines_taken(self) -> int:
        return 1

    @property
    def armed(self) -> bool:
        return self.fired < self.lines_taken

    def take(self, line: bytes) -> bool:
        """Count a line that starts with the trigger; True when this fault takes it."""
        self.seen += 1
        if self.armed and self.seen >= self.nth:
            self.fired += 1
            return True
        return False

    async def act(self, proxy: "FaultProxy", raw: bytes) -> None:
        """Do the fault; `raw` is the line with its CR LF. Forwarding it (or not) is the act's."""
        raise NotImplementedError


def _seconds(arg: str) -> float:
    value = float(arg)
    if value < 0:
        raise ValueError(f"seconds must be >= 0, got {arg!r}")
    return value


def _count(arg: str) -> int:
    value = int(arg)
    if value < 1:
        raise ValueError(f"expected a count >= 1, got {arg!r}")
    return value


class Reboot(Fault):
    kind = "reboot"

    async def act(self, proxy, raw):
        proxy.swallow_reset_answer()
        await proxy.to_target(b"AT+RST" + EOL)


class Garbage(Fault):
    kind = "garbage"
    arg_name, arg_default = "N", "64"
    parse = staticmethod(_count)

    async def act(self, proxy, raw):
        await proxy.to_client(garbage_bytes(self.value, proxy.rng))
        await proxy.forward_line(raw)


class Prompt(Fault):
    kind = "prompt"

    async def act(self, proxy, raw):
        await proxy.to_client(b">")
        await proxy.forward_line(raw)


class Header(Fault):
    kind = "header"

    async def act(self, proxy, raw):
        await proxy.to_client(HEADER_ONLY)
        await proxy.forward_line(raw)


class Stall(Fault):
    kind = "stall"
    arg_name = "S"
    parse = staticmethod(_seconds)

    async def act(self, proxy, raw):
        await proxy.hold(self.value)
        await proxy.forward_line(raw)


class Drop(Fault):
    kind = "drop"
    arg_name = "S"
    parse = staticmethod(_seconds)

    async def act(self, proxy, raw):
        await proxy.drop_client(self.value)


class Gone(Fault):
    kind = "gone"

    async def act(self, proxy, raw):
        await proxy.go_away()


class Flood(Fault):
    kind = "flood"
    arg_name = "BYTES"
    parse = staticmethod(_count)

    async def act(self, proxy, raw):
        await proxy.flood(self.value, then=raw)


class Busy(Fault):
    kind = "busy"
    arg_name = "N"
    parse = staticmethod(_count)

    @property
    def lines_taken(self) -> int:
        return self.value

    async def act(self, proxy, raw):
        await proxy.to_client(raw + BUSY_LINE)


FAULTS: dict[str, type[Fault]] = {cls.kind: cls for cls in (
    Reboot, Garbage, Prompt, Header, Stall, Drop, Gone, Flood, Busy)}


def parse_fault(spec: str) -> Fault:
    """`KIND[:ARG]@TRIGGER[#N]` -> the fault (ValueError says what is wrong)."""
    head, at, trigger = spec.partition("@")
    if not at:
        raise ValueError(f"fault {spec!r}: expected KIND[:ARG]@TRIGGER[#N]")
    kind, colon, arg = head.partition(":")
    if kind not in FAULTS:
        raise ValueError(f"fault {spec!r}: unknown kind {kind!r} (one of {', '.join(FAULTS)})")
    nth = 1
    before, hash_, count = trigger.rpartition("#")
    if hash_ and count.isdigit():
        trigger, nth = before, int(count)
    try:
        fault = FAULTS[kind](trigger.encode(), nth, arg if colon else None)
    except ValueError as exc:
        raise ValueError(f"fault {spec!r}: {exc}") from None
    fault.source = spec
    return fault


# ---- splitting what the client sends ---------------------------------------------------------

class ClientStream:
    """Splits the client's bytes into command lines (to match against triggers) and the rest
    (forwarded at once). A line is held only while it could still become a trigger line of an
    armed fault; AT+WSSEND payloads (after the target's `>`) are data, never lines."""

    LINE, RAW = "line", "raw"

    def __init__(self, could_trigger) -> None:
        self._could_trigger = could_trigger      # prefix -> bool
        self._held = b""                         # start of the current line, not yet forwarded
        self._passing = False                    # the current line cannot trigger: forward it
        self._last_cr = False                    # the current line so far ends in CR
        self._data_left = 0                      # payload bytes still expected
        self.pending_data = 0                    # length of a forwarded AT+WSSEND awaiting `>`

    def note_forwarded(self, raw: bytes) -> None:
        match = _WSSEND.match(raw)
        self.pending_data = int(match.group(1)) if match else 0

    def note_target(self, data: bytes) -> None:
        """The target's `>` opens the payload of the pending AT+WSSEND; ERROR or busy end it."""
        if not self.pending_data:
            return
        prompt = data.find(b">")
        refused = min((i for i in (data.find(b"ERROR"), data.find(b"busy")) if i >= 0),
                      default=-1)
        if prompt >= 0 and (refused < 0 or prompt < refused):
            self._data_left, self.pending_data = self.pending_data, 0
        elif refused >= 0:
            self.pending_data = 0

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        i = 0
        while i < len(data):
            if self._data_left:
                part = data[i:i + self._data_left]
                i += len(part)
                self._data_left -= len(part)
                out.append((self.RAW, part))
                continue
            end = self._line_end(data, i)
            part = data[i:end]
            i = end
            ended = part.endswith(EOL) or (part == b"\n" and self._last_cr)
            self._last_cr = not ended and part.endswith(b"\r")
            if self._passing:
                out.append((self.RAW, part))
                self._passing = not ended
                continue
            self._held += part
            if ended:
                out.append((self.LINE, self._held))
                self._held = b""
            elif not self._could_trigger(self._held):
                out.append((self.RAW, self._held))
                self._held, self._passing = b"", True
        return out

    def _line_end(self, data: bytes, i: int) -> int:
        """Index just past the CR LF that ends the current line (a CR may have come in the
        previous read), or len(data)."""
        if self._last_cr and data[i:i + 1] == b"\n":
            return i + 1
        j = data.find(EOL, i)
        return len(data) if j < 0 else j + len(EOL)


# ---- the proxy -------------------------------------------------------------------------------

def _address(target: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(target, tuple):
        return target
    text = target.removeprefix("socket://")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {target!r}")
    return host, int(port)


class FaultProxy:
    def __init__(self, target: str | tuple[str, int], faults: Iterable[Fault | str] = (),
                 listen: str | tuple[str, int] = ("127.0.0.1", 0), seed: int = 0,
                 log: Callable[[str], None] | None = None) -> None:
        """log: told, one line each, when a fault fires and how a flood ended (the CLI prints
        them on stderr). A line never holds the command line itself: it can hold a password."""
        self.log = log or (lambda text: None)
        self.target = _address(target)
        self.host, self.port = _address(listen)
        self.faults = [parse_fault(f) if isinstance(f, str) else f for f in faults]
        self.rng = random.Random(seed)
        self._server: asyncio.AbstractServer | None = None
        self._target_reader: asyncio.StreamReader | None = None
        self._target_writer: asyncio.StreamWriter | None = None
        self._target_task: asyncio.Task | None = None
        self._client: asyncio.StreamWriter | None = None
        self._stream: ClientStream | None = None
        self._client_lock = asyncio.Lock()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._swallow: bytearray | None = None
        self._tasks: set[asyncio.Task] = set()
        self._gone = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    # -- lifecycle --

    async def listen(self) -> "FaultProxy":
        """Connect to the target and listen; `port` is then the bound port."""
        self._loop = asyncio.get_running_loop()
        await self._connect_target()
        await self._listen()
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve_client, self.host, self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _connect_target(self) -> None:
        self._target_reader, self._target_writer = await asyncio.wait_for(
            asyncio.open_connection(*self.target), CONNECT_TIMEOUT_S)
        self._target_task = self._spawn(self._pump_target(self._target_reader))

    async def aclose(self) -> None:
        self._closed = True
        self._close_listener()
        self._close_client()
        self._close_target()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def start(self) -> "FaultProxy":
        """Serve on a thread of its own; returns once listening."""
        started: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.listen())
            except BaseException as exc:
                started.set_exception(exc)
                loop.close()
                return
            started.set_result(None)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.aclose())
                loop.close()

        self._thread = threading.Thread(target=run, name="faultproxy", daemon=True)
        self._thread.start()
        started.result(THREAD_TIMEOUT_S)
        return self

    def stop(self) -> None:
        """Thread mode: stop the loop (closing everything) and join the thread. Inside the
        proxy's own running loop: close everything in a task (`await aclose()` to wait)."""
        loop, thread = self._loop, self._thread
        if thread is None:
            if loop is not None and loop.is_running() and not self._closed:
                self._spawn(self.aclose())
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(THREAD_TIMEOUT_S)
        self._thread = None

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client, self._stream = None, None

    def _close_target(self) -> None:
        if self._target_writer is not None:
            self._target_writer.close()
        if self._target_task is not None and self._target_task is not asyncio.current_task():
            self._target_task.cancel()
        self._target_reader = self._target_writer = self._target_task = None

    # -- the two directions --

    async def _serve_client(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        if self._gone or self._closed:
            writer.close()
            return
        self._close_client()                       # a new connection replaces the old one
        stream = ClientStream(self._could_trigger)
        self._client, self._stream = writer, stream
        try:
            if self._target_writer is None:
                await self._connect_target()       # the device went away once; try again
            while not reader.at_eof():
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                for kind, part in stream.feed(data):
                    if self._client is not writer:
                        return                     # dropped, replaced or gone
                    if kind == ClientStream.LINE:
                        await self._dispatch(part)
                    else:
                        await self.to_target(part)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            if self._client is writer:
                self._close_client()
            else:
                writer.close()

    def _could_trigger(self, prefix: bytes) -> bool:
        return any(f.armed and (f.trigger.startswith(prefix) or prefix.startswith(f.trigger))
                   for f in self.faults)

    async def _dispatch(self, raw: bytes) -> None:
        line = raw[:-len(EOL)]
        chosen = None
        for fault in self.faults:
            if line.startswith(fault.trigger) and fault.take(line) and chosen is None:
                chosen = fault
        if chosen is None:
            await self.forward_line(raw)
            return
        self.log(f"fired {chosen.spec} (matching line {chosen.seen})")
        await chosen.act(self, raw)

    async def _pump_target(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                data = self._filter_reset_answer(data)
                if self._stream is not None:
                    self._stream.note_target(data)
                if data and self._client is not None:
                    await self.to_client(data)
        except (OSError, asyncio.IncompleteReadError):
            pass
        if asyncio.current_task() is self._target_task:   # the device closed its port
            self._target_task = None
            self._close_target()
            self._close_client()

    # -- what faults do --

    async def forward_line(self, raw: bytes) -> None:
        if self._stream is not None:
            self._stream.note_forwarded(raw)
        await self.to_target(raw)

    async def to_target(self, data: bytes) -> None:
        await self._flowing.wait()
        writer = self._target_writer
        if writer is None:
            return
        writer.write(data)
        try:
            await writer.drain()
        except OSError:
            pass

    async def to_client(self, data: bytes) -> None:
        await self._flowing.wait()
        async with self._client_lock:
            await self._write_client(data)

    async def _write_client(self, data: bytes, writer: asyncio.StreamWriter | None = None) -> bool:
        writer = writer or self._client
        if writer is None or writer.is_closing():
            return False
        writer.write(data)
        try:
            await writer.drain()
        except OSError:
            return False
        return True

    def swallow_reset_answer(self) -> None:
        self._swallow = bytearray()

    def _filter_reset_answer(self, data: bytes) -> bytes:
        """After an injected AT+RST: drop the target's bytes up to and including its OK."""
        if self._swallow is None:
            return data
        held = self._swallow
        held += data
        ok = held.find(b"OK" + EOL)
        ready = held.find(b"ready")
        if ok >= 0 and (ready < 0 or ok < ready):
            self._swallow = None
            return bytes(held[ok + 4:])
        if ready >= 0 or len(held) > SWALLOW_LIMIT:    # no OK before the boot: pass the rest
            self._swallow = None
            echo = b"AT+RST" + EOL
            return bytes(held[len(echo):] if held.startswith(echo) else held)
        return b""

    async def hold(self, seconds: float) -> None:
        self._flowing.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            self._flowing.set()

    async def drop_client(self, seconds: float) -> None:
        self._close_listener()
        self._close_client()

        async def come_back() -> None:
            await asyncio.sleep(seconds)
            if not (self._gone or self._closed):
                await self._listen()

        self._spawn(come_back())

    async def go_away(self) -> None:
        self._gone = True
        self._close_listener()
        self._close_client()
        self._close_target()

    async def flood(self, total: int, then: bytes) -> None:
        """Forward `then`; the client gets the flood before anything the target answers."""
        await self._flowing.wait()
        await self._client_lock.acquire()
        client = self._client
        try:
            await self.forward_line(then)
        except BaseException:
            self._client_lock.release()
            raise

        async def pour() -> None:
            records = flood_records(total)
            written = 0
            try:
                while written < records:
                    n = min(records - written, FLOOD_RECORDS_PER_WRITE)
                    if client is None or not await self._write_client(FLOOD_RECORD * n, client):
                        break
                    written += n
            finally:
                self._client_lock.release()
                self.log(f"flood: {written * len(FLOOD_RECORD)} of "
                         f"{records * len(FLOOD_RECORD)} bytes written"
                         + ("" if written == records else " (the client went away)"))

        self._spawn(pour())


# ---- the command line ------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.faultproxy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, metavar="HOST:PORT",
                   help="the device's AT port (socket://HOST:PORT also accepted)")
    p.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="where the client connects (default %(default)s, a free port)")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="KIND[:ARG]@TRIGGER[#N] (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of the garbage bytes")
    return p


def _say(text: str) -> None:
    print(f"faultproxy: {text}", file=sys.stderr, flush=True)


async def _main(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    proxy = FaultProxy(args.target, args.fault, listen=args.listen, seed=args.seed,
                       log=_say)
    try:
        await proxy.listen()
    except (OSError, asyncio.TimeoutError) as exc:
        print(f"python -m tools.faultproxy: cannot connect to {args.target} or listen on "
              f"{args.listen}: {getattr(exc, 'strerror', None) or exc or 'timed out'}",
              file=sys.stderr)
        await proxy.aclose()
        return 2
    print(f"proxy port: {proxy.url}", flush=True)
    await stop.wait()
    await proxy.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _address(args.target), _address(args.listen), [parse_fault(f) for f in args.fault]
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:      # SIGINT before the loop's handler was installed
        return 0


if __name__ == "__main__":
    sys.exit(main())
