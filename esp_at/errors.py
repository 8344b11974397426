"""Failures, split the way the verdicts read them (fixtures/verdicts.py):

- DeviceViolation: the device did not do what the spec says (a conformance verdict: NEW or KD-n);
- DeviceFault: the harness saw the device misbehave in a way no clause describes (it rebooted,
  went silent, printed garbage, flooded the port, stayed busy): failed with that story, never
  filed as a known deviation;
- anything else, PortClosed included, is a harness or infrastructure fault (broken).

Both device classes are AssertionErrors, so Allure files them as product failures.
"""
from __future__ import annotations

SHOWN_BYTES = 2048      # of `received` in a message: head and tail, the cut said


def shown(data: bytes, limit: int = SHOWN_BYTES) -> str:
    """repr of `data`, at most about `limit` bytes of it: a flood must not become a 30 MB message."""
    if len(data) <= limit:
        return repr(data)
    half = limit // 2
    return f"{data[:half]!r} ... ({len(data) - 2 * half} bytes cut) ... {data[-half:]!r}"


class DeviceViolation(AssertionError):
    """The device did not do what the spec says. The message reads as a transcript."""

    def __init__(self, *, what: str, sent: bytes | None, expected: str, received: bytes,
                 clauses: tuple[str, ...] = ()) -> None:
        self.what = what
        self.sent = sent
        self.expected = expected
        self.received = received
        self.clauses = clauses
        lines = [what]
        if clauses:
            lines.append(f"  clause:   {', '.join(clauses)}")
        if sent is not None:
            lines.append(f"  sent:     {shown(sent)}")
        lines.append(f"  expected: {expected}")
        lines.append(f"  received: {shown(received)}")
        super().__init__("\n".join(lines))


class DeviceSilent(DeviceViolation):
    """Nothing (or not enough) came back within the time the spec allows."""


class DeviceFault(DeviceViolation):
    """The device misbehaved in a way the harness recognises: `story` says how."""
    story = "misbehaved"


class DeviceRebooted(DeviceFault):
    story = "rebooted"


class DeviceStoppedAnswering(DeviceFault):
    story = "stopped answering"


class DeviceGarbage(DeviceFault):
    story = "printed garbage"


class DeviceFlood(DeviceFault):
    story = "flooded the AT port"


class DeviceBusy(DeviceFault):
    story = "stayed busy"


class DeviceCrashed(DeviceFault):
    """The device crashed or reset itself during a test (seen on UART0): a device fault, never
    a known deviation."""
    story = "crashed"

    def __init__(self, message: str) -> None:
        AssertionError.__init__(self, message)


class PortClosed(RuntimeError):
    """The AT port went away under the client (a harness fault, not a device verdict)."""
