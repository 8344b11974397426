"""The ESP32-C2's ROM serial download mode (and the flasher stub esptool runs in it), without
I/O: `DownloadMode(flash).feed(bytes) -> [Send | SetBaud | RunApp | Reset]`. See sim.rom.loader."""
from sim.rom.loader import Action, DownloadMode, Reset, RunApp, Send, SetBaud
from sim.rom.slip import SlipDecoder, slip_encode

__all__ = ["Action", "DownloadMode", "Reset", "RunApp", "Send", "SetBaud", "SlipDecoder",
           "slip_encode"]
