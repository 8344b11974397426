"""A bounded record of a test's exchange: (time, direction, bytes) entries, of which the first
`head_bytes` and the last `tail_bytes` are kept; what lies between is counted, and the rendering
says how much was cut. A flood of +WS_DATA then costs a fixed amount of memory and attachment."""
from __future__ import annotations

from collections import deque

HEAD_BYTES = 128 * 1024
TAIL_BYTES = 128 * 1024


class Transcript:
    def __init__(self, head_bytes: int = HEAD_BYTES, tail_bytes: int = TAIL_BYTES) -> None:
        self._head_limit = head_bytes
        self._tail_limit = tail_bytes
        self._head: list[tuple[float, str, bytes]] = []
        self._head_bytes = 0
        self._tail: deque[tuple[float, str, bytes]] = deque()
        self._tail_bytes = 0
        self.cut_bytes = 0
        self.cut_entries = 0

    def append(self, t: float, direction: str, data: bytes) -> None:
        if self._head_bytes + len(data) <= self._head_limit and not self._tail:
            self._head.append((t, direction, data))
            self._head_bytes += len(data)
            return
        if len(data) > self._tail_limit:          # one huge chunk: keep its end
            self.cut_bytes += len(data) - self._tail_limit
            data = data[-self._tail_limit:]
        self._tail.append((t, direction, data))
        self._tail_bytes += len(data)
        while self._tail_bytes > self._tail_limit:
            _, _, dropped = self._tail.popleft()
            self._tail_bytes -= len(dropped)
            self.cut_bytes += len(dropped)
            self.cut_entries += 1

    def entries(self) -> list[tuple[float, str, bytes]]:
        """What is kept, in order: (time.monotonic(), direction, bytes); a cut is one "--" entry."""
        cut = [(self._tail[0][0], "--", f"{self.cut_bytes} bytes cut".encode())] \
            if self.cut_bytes and self._tail else []
        return [*self._head, *cut, *self._tail]

    def render(self, t0: float) -> str:
        lines = [f"{t - t0:9.4f} {direction} {data!r}" for t, direction, data in self._head]
        if self.cut_bytes:
            lines.append(f"      ... {self.cut_bytes} bytes in {self.cut_entries} chunk(s) cut "
                         f"here: the transcript keeps the first {self._head_limit} and the last "
                         f"{self._tail_limit} bytes ...")
        lines += [f"{t - t0:9.4f} {direction} {data!r}" for t, direction, data in self._tail]
        return "\n".join(lines)
