"""A timeline picture (SVG) of one test: the AT port and the WebSocket wire on one clock, the
spec's windows drawn as bands and the measured values marked, green inside and red outside.

Self-contained (no fonts, scripts or styles fetched) and deterministic, so it can be attached to
an Allure result and compared between runs. Every event keeps a tooltip (<title>) with its exact
bytes; labels that would overlap are left out, ticks never. The size is bounded whatever the
input: at most MAX_EVENTS events and MAX_WINDOWS windows are drawn, every text is cut.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH = 1200
LEFT = 150                      # room for the lane and row names
RIGHT = 30
ROW_H = 140                     # a 40-character label at -30° rises 120 px
TICK_H = 14
ANGLE = -30
LABEL_GAP = 24                  # parallel slanted labels this far apart stand 12 px apart
CHAR_W = 6.1                    # of 10 px DejaVu Sans Mono
LABEL_CHARS = 40
MAX_EVENTS = 2000               # drawn: the first and last half; the caption says what is cut
MAX_WINDOWS = 12
TIPS_BYTES = 600_000            # shared by all tooltips: the bound on the picture's size
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
SANS = "DejaVu Sans, Helvetica, Arial, sans-serif"
LANES = (("AT", "AT port", (("out", "host → device"), ("in", "device → host"))),
         ("wire", "WebSocket", (("out", "server → device"), ("in", "device → server"))))
ROWS = [(lane, way) for lane, _, ways in LANES for way, _ in ways]
GREEN, RED = "#1b7f2a", "#c62828"
BANDS = ("#1f6fb4", "#e08000", "#159aa8", "#8e5bbf", "#8c564b", "#c2569d", "#7f7f1f", "#555")
COLOURS = {"command": "#0b3d91", "data": "#4a6fa5", "final": GREEN, "urc": "#7b2d8e",
           "line": "#444", "note": "#888", "tcp-open": "#333", "tcp-close": "#333",
           "handshake": "#0b3d91", "101": GREEN}
FRAME_COLOURS = {"PING": "#00838f", "PONG": "#00838f", "CLOSE": "#8e2424"}   # else data frames
DATA_FRAME = "#8a4b00"
BAD_FINALS = ("ERROR", "SEND FAIL")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}   # text nodes only: no text in attributes


@dataclass(frozen=True)
class Event:
    t: float          # seconds on the test's clock (0 = its start; a little before may be < 0)
    lane: str         # "AT" or "wire"
    direction: str    # "out": host or server -> device; "in": device -> host or server
    kind: str         # AT: command, data, final, urc, line, note; wire: tcp-open, tcp-close,
                      # handshake, 101, frame
    label: str        # short, shown on the picture
    detail: str = ""  # the exact bytes, shown in the tooltip


@dataclass(frozen=True)
class Window:
    label: str
    start: float              # where the spec's clock starts
    low: float                # seconds after start: the earliest the awaited event may come
    high: float               # the latest
    measured: float | None    # when it came (same clock as start, absolute); None: never
    spec: str = ""            # the words of the bound

    @property
    def holds(self) -> bool:
        return (self.measured is not None
                and self.start + self.low <= self.measured <= self.start + self.high)


def nice_step(span: float, ticks: int = 8) -> tuple[int, int]:
    """A 1-2-5 step cutting `span` into about `ticks` pieces, as (factor, exponent): the step
    is factor * 10**exponent, kept apart so tick values print without float noise."""
    raw = max(span, 1e-9) / ticks
    exponent = math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * 10.0 ** exponent * (1 + 1e-9):
            return (1, exponent + 1) if factor == 10 else (factor, exponent)
    return 1, exponent + 1


def axis_ticks(t_min: float, t_max: float) -> list[str]:
    """The tick values inside [t_min, t_max], printed with the step's decimals."""
    factor, exponent = nice_step(t_max - t_min)
    step = factor * 10.0 ** exponent
    decimals = max(0, -exponent)
    first, last = math.ceil(t_min / step - 1e-9), math.floor(t_max / step + 1e-9)
    return [f"{k * step + 0.0:.{decimals}f}" for k in range(first, last + 1)]


def visible(text: str, one_line: bool = True) -> str:
    """Characters XML 1.0 forbids (and, on one line, line ends and tabs) as \\xNN escapes."""
    return "".join(_visible_char(ch, one_line) for ch in text)


def _visible_char(ch: str, one_line: bool) -> str:
    code = ord(ch)
    if ch in "\n\t" and not one_line:
        return ch
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
        return f"\\u{code:04x}"
    return ch


def label_text(text: str, chars: int = LABEL_CHARS) -> str:
    """A label for the picture: visible, cut to `chars` with an ellipsis, XML-escaped."""
    shown = visible(text[:chars + 1])
    if len(shown) > chars:
        shown = shown[:max(chars - 1, 0)] + "…"
    return "".join(_ENTITIES.get(ch, ch) for ch in shown)


def tip_text(text: str, limit: int) -> str:
    """A tooltip: XML-escaped, at most `limit` bytes of UTF-8, line ends kept."""
    out: list[str] = []
    size = 0
    for ch in text:
        piece = "".join(_ENTITIES.get(c, c) for c in _visible_char(ch, one_line=False))
        size += len(piece.encode())
        if size > limit:
            while out and size + 3 > limit:     # room for the ellipsis
                size -= len(out.pop().encode())
            return "".join(out) + "…"
        out.append(piece)
    return "".join(out)


def seconds(value: float, digits: int) -> str:
    return f"{value + 0.0:.{digits}f}"


def caption(window: Window) -> str:
    digits = 2 if window.high >= 1 else 3       # a 50 ms window needs its milliseconds
    words = (f"{window.label}: spec window {seconds(window.low, digits)}–"
             f"{seconds(window.high, digits)} s after its start")
    if window.spec:
        words += f" ({window.spec})"
    if window.measured is None:
        return words + "; never came ✗"
    took = seconds(window.measured - window.start, digits)
    return words + f"; measured {took} s " + ("✓" if window.holds else "✗ (outside)")


def colour_of(event: Event) -> str:
    if event.kind == "final" and event.label.startswith(BAD_FINALS):
        return RED
    if event.kind == "101" and " 101" not in event.label:     # a refused upgrade
        return RED
    if event.kind == "frame":
        return FRAME_COLOURS.get(event.label.split(" ", 1)[0], DATA_FRAME)
    return COLOURS.get(event.kind, "#444")


def _checked(events: list[Event], windows: list[Window], end: float | None) -> None:
    for e in events:
        if (e.lane, e.direction) not in ROWS:
            raise ValueError(f"event {e.label!r}: no row for lane {e.lane!r}, "
                             f"direction {e.direction!r}")
    times = [e.t for e in events] + [end if end is not None else 0.0]
    for w in windows:
        times += [w.start, w.low, w.high, w.measured if w.measured is not None else 0.0]
    if not all(math.isfinite(t) for t in times):
        raise ValueError("every time on a timeline must be a finite number of seconds")


def render_svg(title: str, events: list[Event], windows: list[Window],
               end: float | None = None) -> str:
    _checked(events, windows, end)
    events = sorted(events, key=lambda e: e.t)          # stable: equal times keep their order
    notes = []
    if len(windows) > MAX_WINDOWS:
        notes.append(f"{len(windows) - MAX_WINDOWS} more windows are left out of the picture")
        windows = windows[:MAX_WINDOWS]
    if len(events) > MAX_EVENTS:
        notes.append(f"{len(events) - MAX_EVENTS} events in the middle are left out: the first "
                     f"{MAX_EVENTS // 2} and the last {MAX_EVENTS // 2} are drawn")
        events = events[:MAX_EVENTS // 2] + events[-(MAX_EVENTS // 2):]
    return _Picture(title, events, windows, notes, end).svg()


def _n(value: float) -> str:
    return f"{value:.1f}"


class _Picture:
    """The layout of one picture: a header of captions, a strip naming each window's start,
    the four rows, the axis, a strip with each window's measured value."""

    def __init__(self, title: str, events: list[Event], windows: list[Window],
                 notes: list[str], end: float | None):
        self.title, self.events, self.windows = title, events, windows
        self.captions = [(caption(w), w.holds) for w in windows]
        if not windows:
            self.captions.append(("no timing window: the test's exchange only", True))
        self.captions += [(note, True) for note in notes]
        self.t_min, self.t_max = self._span(end)
        self.strip_top = 34 + 16 * len(self.captions)
        self.lanes_top = self.strip_top + 14 * len(windows) + 8
        self.axis_y = self.lanes_top + ROW_H * len(ROWS)
        self.height = self.axis_y + 32 + 14 * len(windows)
        self.out: list[str] = []

    def _span(self, end: float | None) -> tuple[float, float]:
        times = [e.t for e in self.events] + ([end] if end is not None else [])
        for w in self.windows:
            times += [w.start, w.start + w.low, w.start + w.high]
            times += [w.measured] if w.measured is not None else []
        lo, hi = (min(times), max(times)) if times else (0.0, 1.0)
        if hi - lo < 0.01:                      # one instant still gets a readable axis
            lo, hi = lo - 0.005, hi + 0.005
        span = hi - lo
        return lo - 0.02 * span, hi + 0.04 * span

    def x(self, t: float) -> float:
        return LEFT + (t - self.t_min) / (self.t_max - self.t_min) * (WIDTH - LEFT - RIGHT)

    def svg(self) -> str:
        self.out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
                    f'height="{self.height}" viewBox="0 0 {WIDTH} {self.height}" '
                    f'font-family="{SANS}">',
                    f'<rect width="{WIDTH}" height="{self.height}" fill="#fff"/>']
        self.header()
        self.rows()
        self.axis()
        for i, w in enumerate(self.windows):
            self.band(i, w)
        self.draw_events()
        for i, w in enumerate(self.windows):
            self.marks(i, w)
        self.out.append("</svg>")
        return "\n".join(self.out) + "\n"

    def header(self) -> None:
        self.out.append(f'<text id="title" x="10" y="22" font-size="15" font-weight="bold">'
                        f'{label_text(self.title, 140)}</text>')
        for i, (line, good) in enumerate(self.captions):
            self.out.append(f'<text id="caption-{i}" x="10" y="{44 + 16 * i}" font-size="12" '
                            f'fill="{"#222" if good else RED}"><title>{tip_text(line, 2000)}'
                            f'</title>{label_text(line, 175)}</text>')

    def rows(self) -> None:
        row = 0
        for lane_index, (_, lane_name, ways) in enumerate(LANES):
            lane_y = self.lanes_top + ROW_H * row
            for _, row_name in ways:
                y = self.lanes_top + ROW_H * row
                shade = "#f5f8fc" if lane_index == 0 else "#fcf8f2"
                self.out.append(f'<rect x="{LEFT}" y="{y}" width="{WIDTH - LEFT - RIGHT}" '
                                f'height="{ROW_H}" fill="{shade}" stroke="#e2e2e2"/>')
                self.out.append(f'<text x="16" y="{y + ROW_H - 6}" font-size="11" fill="#333">'
                                f'{row_name}</text>')
                row += 1
            self.out.append(f'<text x="8" y="{lane_y + 18}" font-size="13" font-weight="bold">'
                            f'{lane_name}</text>')
            self.out.append(f'<path d="M8 {lane_y}H{WIDTH - RIGHT}" stroke="#999"/>')
        if not self.events:
            self.out.append(f'<text x="{_n((LEFT + WIDTH - RIGHT) / 2)}" '
                            f'y="{self.lanes_top + ROW_H * 2}" font-size="16" fill="#888" '
                            f'text-anchor="middle">nothing recorded</text>')

    def axis(self) -> None:
        y = self.axis_y
        self.out.append('<g id="axis" font-size="10" text-anchor="middle">')
        self.out.append(f'<path d="M{LEFT} {y}H{WIDTH - RIGHT}" stroke="#333"/>')
        for value in axis_ticks(self.t_min, self.t_max):
            x = _n(self.x(float(value)))
            self.out.append(f'<path d="M{x} {self.lanes_top}V{y}" stroke="#e0e0e0"/>'
                            f'<path d="M{x} {y}v4" stroke="#333"/>'
                            f'<text x="{x}" y="{y + 15}">{value}</text>')
        self.out.append(f'<text x="{LEFT - 6}" y="{y + 15}" text-anchor="end">t (s)</text>')
        self.out.append("</g>")

    def band(self, i: int, w: Window) -> None:
        hue = BANDS[i % len(BANDS)]
        x0, x1 = sorted((self.x(w.start + w.low), self.x(w.start + w.high)))
        width = _n(max(x1 - x0, 2))
        tip = tip_text(caption(w), 2000)
        self.out.append(f'<rect id="window-{i}-band" x="{_n(x0)}" y="{self.lanes_top}" '
                        f'width="{width}" height="{ROW_H * len(ROWS)}" fill="{hue}" '
                        f'fill-opacity="0.13" stroke="{hue}" stroke-opacity="0.5">'
                        f'<title>{tip}</title></rect>')
        y = self.strip_top + 14 * i            # the same span in the window's own strip row
        self.out.append(f'<rect x="{_n(x0)}" y="{y + 11}" width="{width}" height="3" '
                        f'fill="{hue}"/>')     # under the row's "... starts" label, not through it

    def marks(self, i: int, w: Window) -> None:
        hue, name = BANDS[i % len(BANDS)], label_text(w.label)
        tip = tip_text(caption(w), 2000)
        x, y = self.x(w.start), self.strip_top + 14 * i
        self.out.append(f'<path id="window-{i}-start" d="M{_n(x)} {y}V{self.axis_y}" '
                        f'stroke="{hue}" stroke-width="1.5" stroke-dasharray="5 3">'
                        f'<title>{tip}</title></path>')
        self.out.append(self._beside(x, y + 10, f"{name} starts", hue))
        y = self.axis_y + 32 + 14 * i
        if w.measured is None:
            right = WIDTH - RIGHT
            self.out.append(f'<g id="window-{i}-never" fill="{RED}"><title>{tip}</title>'
                            f'<path d="M{right - 8} {y - 9}l8 5l-8 5z"/>'
                            f'<text x="{right - 11}" y="{y}" font-size="11" text-anchor="end">'
                            f'{name}: never ✗</text></g>')
            return
        hue = GREEN if w.holds else RED
        x = self.x(w.measured)
        verdict = "✓" if w.holds else "✗"
        took = seconds(w.measured - w.start, 2 if w.high >= 1 else 3)
        self.out.append(f'<path id="window-{i}-measured" d="M{_n(x)} {self.lanes_top}V{y - 9}" '
                        f'stroke="{hue}" stroke-width="2"><title>{tip}</title></path>')
        self.out.append(self._beside(x, y, f"{name}: {took} s {verdict}", hue))

    def _beside(self, x: float, y: float, text: str, colour: str) -> str:
        """A line's label: to its right, or to its left near the picture's right edge."""
        if x > WIDTH - 220:
            return (f'<text x="{_n(x - 4)}" y="{y}" font-size="11" fill="{colour}" '
                    f'text-anchor="end">{text}</text>')
        return f'<text x="{_n(x + 4)}" y="{y}" font-size="11" fill="{colour}">{text}</text>'

    def draw_events(self) -> None:
        tip_limit = max(200, min(4000, TIPS_BYTES // max(len(self.events), 1)))
        last_label = [-math.inf] * len(ROWS)
        self.out.append(f'<g id="events" font-family="{MONO}" font-size="10">')
        for e in self.events:
            row = ROWS.index((e.lane, e.direction))
            base = self.lanes_top + ROW_H * (row + 1) - 2
            colour, x = colour_of(e), self.x(e.t)
            tip = f"{e.t:.4f} s  {e.kind}: {e.label}" + (f"\n{e.detail}" if e.detail else "")
            parts = [f'<g class="event" fill="{colour}"><title>{tip_text(tip, tip_limit)}</title>',
                     f'<path d="M{_n(x)} {base}v-{TICK_H}" stroke="{colour}" '
                     f'stroke-width="{2 if e.kind.startswith("tcp") else 1.5}"/>']
            if e.kind == "tcp-open":            # a triangle pointing into the connection's life
                parts.append(f'<path d="M{_n(x)} {base - TICK_H}l7 4l-7 4z"/>')
            elif e.kind == "tcp-close":
                parts.append(f'<path d="M{_n(x)} {base - TICK_H}l-7 4l7 4z"/>')
            room = int((WIDTH - 4 - x) / (CHAR_W * math.cos(math.radians(ANGLE))))
            if x - last_label[row] >= LABEL_GAP and room >= 4:
                last_label[row] = x
                ly = base - TICK_H - 4
                style = {"command": ' font-weight="bold"', "handshake": ' font-weight="bold"',
                         "note": ' font-style="italic"'}.get(e.kind, "")
                parts.append(f'<text x="{_n(x)}" y="{ly}" transform="rotate({ANGLE} {_n(x)} {ly})"'
                             f'{style}>{label_text(e.label, min(room, LABEL_CHARS))}</text>')
            parts.append("</g>")
            self.out.append("".join(parts))
        self.out.append("</g>")
