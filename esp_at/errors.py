"""Failures, split the way Allure reads them: AssertionError subclasses are product failures
(the device said the wrong thing, or nothing); other exceptions are harness faults."""
from __future__ import annotations


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
            lines.append(f"  sent:     {sent!r}")
        lines.append(f"  expected: {expected}")
        lines.append(f"  received: {received!r}")
        super().__init__("\n".join(lines))


class DeviceSilent(DeviceViolation):
    """Nothing (or not enough) came back within the time the spec allows."""


class PortClosed(RuntimeError):
    """The AT port went away under the client (a harness fault, not a device verdict)."""
