"""The timeline picture (results/timeline.py): well-formed SVG, the spec's window and the
measured value drawn and judged, every event's bytes kept in a tooltip, bounded whatever the
input."""
import xml.etree.ElementTree as ET

import pytest

from results.timeline import (MAX_EVENTS, MAX_WINDOWS, Event, Window, axis_ticks, caption,
                              label_text, nice_step, render_svg, tip_text)

SVG = "{http://www.w3.org/2000/svg}"


def ping_test_events() -> list[Event]:
    return [
        Event(0.0, "AT", "out", "command", "AT+WSCFG=0,1,2,10", "AT+WSCFG=0,1,2,10\r\n"),
        Event(0.01, "AT", "in", "final", "OK", "\r\nOK\r\n"),
        Event(0.2, "wire", "in", "tcp-open", "TCP open"),
        Event(0.25, "wire", "in", "handshake", "GET /ep HTTP/1.1", "GET /ep HTTP/1.1\r\n..."),
        Event(0.26, "wire", "out", "101", "HTTP/1.1 101 Switching Protocols"),
        Event(0.3, "AT", "in", "urc", "+WS_CONNECTED:0"),
        Event(1.3, "wire", "in", "frame", "PING fin mask 0 bytes"),
        Event(1.31, "wire", "out", "frame", "PONG fin 0 bytes"),
        Event(2.3, "wire", "in", "frame", "PING fin mask 0 bytes <&>"),
    ]


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)        # raises on anything that is not well-formed XML


def texts(root: ET.Element) -> list[str]:
    """What each <text> shows: its own text, not its tooltip's."""
    return ["".join([node.text or ""] + [child.tail or "" for child in node])
            for node in root.iter(f"{SVG}text")]


def tips(root: ET.Element) -> list[str]:
    return [node.text or "" for node in root.iter(f"{SVG}title")]


def test_window_holds_only_between_its_bounds():
    assert Window("gap", 1.0, 0.5, 1.5, measured=2.0).holds
    assert Window("gap", 1.0, 0.5, 1.5, measured=1.5).holds
    assert Window("gap", 1.0, 0.5, 1.5, measured=2.5).holds
    assert not Window("gap", 1.0, 0.5, 1.5, measured=1.49).holds
    assert not Window("gap", 1.0, 0.5, 1.5, measured=2.51).holds
    assert not Window("gap", 1.0, 0.5, 1.5, measured=None).holds


@pytest.mark.parametrize("span, step", [(8, (1, 0)), (16, (2, 0)), (40, (5, 0)), (80, (1, 1)),
                                        (0.4, (5, -2)), (121, (2, 1))])
def test_nice_step_is_one_two_five(span, step):
    assert nice_step(span) == step


def test_axis_ticks_print_without_float_noise():
    assert axis_ticks(0.0, 0.4) == ["0.00", "0.05", "0.10", "0.15", "0.20", "0.25", "0.30",
                                    "0.35", "0.40"]
    assert axis_ticks(-0.3, 16.0) == ["0", "5", "10", "15"]
    assert axis_ticks(-0.3, 15.0) == ["0", "2", "4", "6", "8", "10", "12", "14"]


def test_caption_says_window_measured_and_judgement():
    inside = Window("pong timeout", 0.0, 118.0, 123.0, measured=120.4, spec="pong_timeout_sec=120")
    assert caption(inside) == ("pong timeout: spec window 118.00–123.00 s after its start "
                               "(pong_timeout_sec=120); measured 120.40 s ✓")
    outside = Window("open timeout", 0.0, 1.85, 3.6, measured=15.01)
    assert caption(outside).endswith("measured 15.01 s ✗ (outside)")
    assert caption(Window("ping", 0.0, 0.9, 1.0, None)).endswith("never came ✗")
    assert "0.040–0.900" in caption(Window("answer", 0.0, 0.04, 0.9, 0.1))    # ms need 3 digits


def test_picture_is_well_formed_and_names_lanes_window_and_events():
    window = Window("ping gap", 1.3, 0.9, 1.1, measured=2.3, spec="ping_intv_sec=1")
    svg = render_svg("pings every interval (interval=1)", ping_test_events(), [window])
    root = parsed(svg)
    shown = texts(root)
    assert "pings every interval (interval=1)" in shown
    assert any("AT port" in text for text in shown) and any("WebSocket" in text for text in shown)
    assert any(text.startswith("ping gap: spec window 0.90–1.10 s") and text.endswith("✓")
               for text in shown)
    assert "AT+WSCFG=0,1,2,10" in shown and "+WS_CONNECTED:0" in shown
    assert any(tip.endswith("PING fin mask 0 bytes <&>") for tip in tips(root))  # escaped, read back
    assert "0.0000 s  command: AT+WSCFG=0,1,2,10\nAT+WSCFG=0,1,2,10\\x0d\n" in tips(root)
    assert "ping gap: 1.00 s ✓" in shown                             # the measured value marked


def test_window_outside_is_drawn_red_and_inside_green():
    good = render_svg("t", ping_test_events(), [Window("gap", 1.3, 0.9, 1.1, measured=2.3)])
    bad = render_svg("t", ping_test_events(), [Window("gap", 1.3, 0.9, 1.1, measured=2.6)])
    assert '✓' in good and '✗' not in good
    assert '✗ (outside)' in bad
    assert '#c62828' in bad


def test_no_window_says_so():
    root = parsed(render_svg("exchange", ping_test_events()[:2], []))
    assert "no timing window: the test's exchange only" in texts(root)


def test_control_characters_and_entities_stay_well_formed():
    nasty = "\x00\x1b[2J<script>&amp;\ud800\uffff"
    events = [Event(0.0, "AT", "in", "line", nasty, nasty * 3)]
    svg = render_svg(nasty, events, [Window(nasty, 0.0, 0.0, 1.0, 0.5, spec=nasty)])
    parsed(svg)
    assert "<script>" not in svg and "\x1b" not in svg
    assert label_text("<b>") == "&lt;b&gt;"
    assert label_text("x" * 60, chars=10) == "x" * 9 + "…"
    assert "\\x00" in label_text("\x00")


def test_tooltip_is_cut_to_its_byte_limit():
    cut = tip_text("é" * 1000, 100)
    assert len(cut.encode()) <= 100 and cut.endswith("…")
    assert tip_text("a\r\nb", 100) == "a\\x0d\nb"       # line ends kept, CR made visible


def test_size_is_bounded_and_the_cut_is_said():
    events = [Event(i * 0.01, "wire", "in", "frame", f"TEXT fin mask 1 bytes #{i}", "x" * 5000)
              for i in range(MAX_EVENTS * 3)]
    windows = [Window(f"w{i}", 0.0, 0.0, 1.0, 0.5) for i in range(MAX_WINDOWS + 5)]
    svg = render_svg("flood", events, windows)
    root = parsed(svg)
    shown = texts(root)
    assert f"{MAX_EVENTS * 2} events in the middle are left out: the first {MAX_EVENTS // 2} " \
           f"and the last {MAX_EVENTS // 2} are drawn" in shown
    assert "5 more windows are left out of the picture" in shown
    assert len(svg.encode()) < 2_500_000


def test_event_on_an_unknown_row_or_a_time_that_is_not_finite_is_refused():
    with pytest.raises(ValueError, match="no row for lane 'uart'"):
        render_svg("t", [Event(0.0, "uart", "in", "line", "x")], [])
    with pytest.raises(ValueError, match="finite"):
        render_svg("t", [Event(float("nan"), "AT", "in", "line", "x")], [])
    with pytest.raises(ValueError, match="finite"):
        render_svg("t", [], [Window("w", 0.0, 0.0, float("inf"), None)])


def test_same_input_same_picture():
    window = [Window("gap", 1.3, 0.9, 1.1, measured=2.3)]
    assert render_svg("t", ping_test_events(), window) == render_svg("t", ping_test_events(), window)


def test_a_timing_whose_wait_failed_stays_on_the_picture_as_never_came(monkeypatch):
    import fixtures.timeline as timeline
    windows: list = []
    monkeypatch.setattr(timeline, "_current", windows)
    missed = timeline.Timing("pong timeout", 1.0, (2.7, 4.45), "ping_timeout_sec 3")
    met = timeline.timed("ping 1", 0.0, (0.7, 1.75), 1.0)
    assert [t.window for t in windows] == [
        Window("pong timeout", 1.0, 2.7, 4.45, None, "ping_timeout_sec 3"), met]
    assert caption(windows[0].window).endswith("never came ✗") and met.holds
    assert missed.came(4.0).holds and windows[0].window.measured == 4.0


def test_every_test_gets_its_own_picture_file():
    from fixtures.timeline import file_name
    assert file_name("tests/conformance/test_keepalive.py::test_pings_every_interval[1]") == \
        "test_keepalive.py_test_pings_every_interval_1_"
    assert file_name("tests/conformance/t.py::test_x[a/b]") != file_name("tests/conformance/t.py::test_x[b]")
    long_a, long_b = ("tests/conformance/t.py::test_" + "x" * 200 + end for end in ("a", "b"))
    assert file_name(long_a) != file_name(long_b) and len(file_name(long_a)) <= 150
