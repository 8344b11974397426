"""Speed figures of the AT path against the reference model; prints them, asserts nothing.

  python -m bench.at_speed [--round-trips N]

1. AT -> OK round trip: the AT client on a session-long socket:// connection to a model process.
2. Per-test fixture overhead: setup + teardown of 100 probe tests that use the `at` fixture (device
   drain before, known-state restore after), with and without pytest-embedded's plugin loaded.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import pytest

from esp_at.client import AtClient
from fixtures.model_process import ModelProcess

PROBE = str(Path(__file__).with_name("probe") / "test_overhead_probe.py")


def round_trips(count: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        model = ModelProcess(log_path=Path(tmp) / "model.log")
        client = AtClient.open(model.start())
        try:
            for _ in range(20):                   # warm up
                client.cmd("AT").expect(b"OK")
            times = []
            for _ in range(count):
                started = time.perf_counter()
                client.cmd("AT").expect(b"OK")
                times.append(time.perf_counter() - started)
            return times
        finally:
            client.close()
            model.stop()


class _PhaseTimes:
    def __init__(self) -> None:
        self.per_test: dict[str, float] = {}
        self.failed = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when in ("setup", "teardown"):
            self.per_test[report.nodeid] = self.per_test.get(report.nodeid, 0.0) + report.duration
        if report.failed:
            self.failed += 1


def fixture_overhead(*extra: str) -> list[float]:
    timer = _PhaseTimes()
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main(["-q", "-p", "no:cacheprovider", *extra, PROBE], plugins=[timer])
    if code != 0 or timer.failed:
        raise RuntimeError(f"the probe run failed (exit {code})")
    overheads = list(timer.per_test.values())
    return overheads[1:]                           # the first setup starts the model: a session cost


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--round-trips", type=int, default=1000)
    args = parser.parse_args()

    times = sorted(round_trips(args.round_trips))
    print(f"AT -> OK round trip over {len(times)} commands: median {ms(statistics.median(times))}, "
          f"p90 {ms(times[int(len(times) * 0.9)])}, p99 {ms(times[int(len(times) * 0.99)])}, "
          f"max {ms(times[-1])}  (target: median <= 5 ms)")
    for label, extra in (("with pytest-embedded loaded", ()),
                         ("without pytest-embedded", ("-p", "no:pytest_embedded"))):
        overheads = sorted(fixture_overhead(*extra))
        print(f"per-test fixture overhead ({label}) over {len(overheads)} tests: median "
              f"{ms(statistics.median(overheads))}, p90 {ms(overheads[int(len(overheads) * 0.9)])}"
              f"  (target: <= 20 ms)")


if __name__ == "__main__":
    main()
