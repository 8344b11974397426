"""Run only by tests/unit/test_wiring.py with --wifi-ssid/--wifi-password: failing tests whose
reports must not contain the password, before and after a reset that joins again."""


def test_fails_after_join(at):
    at.cmd("AT+CWJAP?").expect(b"ERROR")


def test_fails_after_a_reset_and_a_second_join(at, device_under_test):
    device_under_test.reset()                    # joins again: the password is sent again
    at.cmd("AT+CWJAP?").expect(b"ERROR")
