"""Reference model of an ESP32-C2 running ESP-AT with the WebSocket AT commands.

In-process use:
    device = sim.Device(profile="seed", defects=("KD-1",))   # profile: seed wshead auth tls current
    port = await sim.serve_socket(device, "127.0.0.1", 0)   # port.url -> socket://127.0.0.1:N
or, from synchronous code:
    with sim.SimThread(profile="seed") as model: ...model.url...
From the command line: `python -m sim --help`.
"""
from sim.defects import DEFECTS, FIRMWARE_PRESETS, Defect, behaviour_for, firmware_defects, resolve
from sim.device import Device
from sim.link import LinkConfig, LinkState
from sim.pki import Pki
from sim.profiles import PROFILES, Profile, get_profile
from sim.timing import DEFAULT_TIMINGS, Timings
from sim.transport import PtyPort, SimThread, SocketPort, serve_pty, serve_socket
from sim.ws_data import DataFormat

__all__ = ["DEFECTS", "DEFAULT_TIMINGS", "DataFormat", "Defect", "Device", "FIRMWARE_PRESETS",
           "LinkConfig", "LinkState", "PROFILES", "Pki", "Profile", "PtyPort", "SimThread",
           "SocketPort", "Timings", "behaviour_for", "firmware_defects", "get_profile", "resolve",
           "serve_pty", "serve_socket"]
