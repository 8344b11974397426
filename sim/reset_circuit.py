"""The auto-reset circuit of an ESP dev board: two NPN transistors between the USB-UART's DTR and
RTS and the chip's EN and boot strapping pin (IO9 on the ESP32-C2, IO0 on older chips).

DTR and RTS are given as pyserial has them: True = asserted = that pin of the bridge low. One
transistor pulls EN low when RTS is asserted and DTR is not; the other pulls the boot pin low
when DTR is asserted and RTS is not. Both asserted or both deasserted: neither is pulled (which
is why pyserial opening a port, asserting both, does not reset the chip).

    dtr   rts   | EN            boot pin
    False False | released      high
    True  True  | released      high
    False True  | pulled low    high      chip held in reset
    True  False | released      low       download mode if EN rises now

EN falls at once when pulled low; once released it rises through the RC on EN and the chip leaves
reset when it crosses the threshold, sampling the boot pin at that instant (the datasheet's hold
time, 3 ms, is not modelled). Being pulled low again before that cancels the rise.

How long the rise takes decides what esptool's sequences do over RFC 2217. pyserial's client
waits for every SET-CONTROL to be acknowledged and polls for that in steps of 50 ms (100 ms
with `?ign_set_control`), so the transient (DTR, RTS) states of esptool's ClassicReset last
>= 50 ms: its "DTR on, then RTS off" passes through "both asserted" (EN released, boot pin high)
for one round. With the ESP32-C2 datasheet's EN RC (10 kOhm, 1 uF: EN crosses ~0.75 VDD after
~14 ms, `DATASHEET_EN_RISE_S`) the chip boots normally in that transient, and esptool reports the
wrong boot mode: a real board behind a plain RFC 2217 redirector does that, which is why
Espressif's esp_rfc2217_server replays the reset sequences on the board's side. The model
defaults to the fix Espressif documents for boards that miss download mode, a 10 uF capacitor on
EN (~139 ms, `EN_RISE_S`): over RFC 2217 ClassicReset then ends in download mode (the boot pin
is low from "RTS off", 50-100 ms after EN is released, until "DTR off", >= 200 ms after) and
HardReset in a normal boot. Driven with no round trips (UnixTightReset, local ports) that board
misses download mode with esptool's first delay (0.05 s) and makes it with the retry's 0.55 s,
as such boards do.
"""
from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

log = logging.getLogger("sim.reset_circuit")

EN_PULLUP_OHM = 10e3
EN_THRESHOLD = 0.75          # of VDD, CHIP_EN's high level


def en_rise_s(capacitance_f: float, pullup_ohm: float = EN_PULLUP_OHM) -> float:
    """Time for EN, released from 0 V, to charge through the RC to the threshold."""
    return pullup_ohm * capacitance_f * math.log(1 / (1 - EN_THRESHOLD))


DATASHEET_EN_RISE_S = en_rise_s(1e-6)    # ~13.9 ms: the ESP32-C2 datasheet's RC
EN_RISE_S = en_rise_s(10e-6)             # ~139 ms: with the 10 uF EN capacitor


class AutoResetCircuit:
    """DTR/RTS in; calls `on_reset_hold()` when EN falls and `on_reset_release(download)` when EN
    rises (download = the boot pin was low at that instant).

    With `en_rise_s` > 0 the rise is a timer on the running asyncio loop, so set_dtr/set_rts
    must be called from it; with 0, EN follows the transistors at once (no loop needed)."""

    def __init__(self, on_reset_hold: Callable[[], None],
                 on_reset_release: Callable[[bool], None], *,
                 en_rise_s: float = EN_RISE_S) -> None:
        self.on_reset_hold = on_reset_hold
        self.on_reset_release = on_reset_release
        self.en_rise_s = en_rise_s
        self.dtr = False
        self.rts = False
        self._en = True                  # the chip is running
        self._rise: asyncio.TimerHandle | None = None
        self._rise_due = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def en(self) -> bool:
        """EN is high: the chip is out of reset."""
        return self._en

    @property
    def en_pulled_low(self) -> bool:
        return self.rts and not self.dtr

    @property
    def boot_pin_low(self) -> bool:
        return self.dtr and not self.rts

    def set_dtr(self, asserted: bool) -> None:
        self.set_lines(asserted, self.rts)

    def set_rts(self, asserted: bool) -> None:
        self.set_lines(self.dtr, asserted)

    def set_lines(self, dtr: bool, rts: bool) -> None:
        """Both lines at once (an ioctl TIOCMSET, or a port closing)."""
        self._catch_up()
        self.dtr, self.rts = bool(dtr), bool(rts)
        if self.en_pulled_low:
            self._pull_en_low()
        elif not self._en and self._rise is None:
            self._release_en()

    def _pull_en_low(self) -> None:
        if self._rise is not None:
            self._rise.cancel()
            self._rise = None
        if self._en:
            self._en = False
            log.debug("EN low: chip held in reset")
            self.on_reset_hold()

    def _release_en(self) -> None:
        if self.en_rise_s <= 0:
            self._en_rises()
        else:
            self._loop = asyncio.get_running_loop()
            self._rise_due = self._loop.time() + self.en_rise_s
            self._rise = self._loop.call_at(self._rise_due, self._en_rises)

    def _catch_up(self) -> None:
        """A rise already due happened before this change, even if its timer has not run yet
        (a busy loop runs I/O callbacks before due timers)."""
        if (self._rise is not None and self._loop is not None
                and self._loop.time() >= self._rise_due):
            self._rise.cancel()
            self._en_rises()

    def _en_rises(self) -> None:
        self._rise = None
        self._en = True
        download = self.boot_pin_low
        log.debug("EN high: chip boots (%s)", "download" if download else "normal")
        self.on_reset_release(download)

    def cancel(self) -> None:
        """Forget a pending rise (the loop is going away)."""
        if self._rise is not None:
            self._rise.cancel()
            self._rise = None
