"""Run only by tests/unit/test_wiring.py (its name keeps it out of normal collection): the first
test kills the device model under the suite; the second must still pass on a recovered device."""


def test_device_dies(at, device_under_test):
    at.cmd("AT").expect(b"OK")
    device_under_test.model._process.kill()


def test_run_goes_on(at):
    at.cmd("AT").expect(b"OK")
