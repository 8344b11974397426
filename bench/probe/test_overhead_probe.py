"""Probe tests for bench/at_speed.py: each runs one AT round trip through the `at` fixture, so
setup + teardown time is the per-test fixture overhead. Not part of the suite."""
import pytest


@pytest.mark.parametrize("n", range(100))
def test_probe(at, n):
    at.cmd("AT").expect(b"OK")
