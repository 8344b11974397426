"""Run only by tests/unit/test_wiring.py with --wifi-ssid/--wifi-password: a failing test whose
report must not contain the password."""


def test_fails_after_join(at):
    at.cmd("AT+CWJAP?").expect(b"ERROR")
