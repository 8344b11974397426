"""The suite under faults: each scenario of SCENARIOS is its own pytest process of the conformance
suite (or, for bad input, of `python -m servers` / `python -m sim`), checked for what issue 12
asks: no hang, the verdict class asserted, the tests after the fault pass, results complete,
nothing secret in any artifact, no process left behind.

  python -m tools.robustness [--only NAME ...] [--jobs 2] [--out reports] [--list]

A proxy scenario starts `python -m sim` (its model args), then `python -m tools.faultproxy` in
front of it with the scenario's faults, then pytest with `--at-port` on the proxy. A suite
scenario gives no --at-port: the suite starts its own model (a signal scenario then checks that
it is gone). Every scenario runs in <out>/robustness/<name>/ (D): D/stdout.txt, D/stderr.txt,
D/verdicts.jsonl, D/junit.xml, D/reports/allure-results/, D/reports/conformance-matrix.md,
D/tmp/ (pytest's basetemp), D/runner/ (the runner's own model and proxy logs: not the suite's
artifacts, so neither counted in the artifact size nor searched for the secret; the runner's
model is the device, and is given the network's password on its command line).

Measured per scenario: wall time, peak memory of the pytest process tree (ru_maxrss from
os.wait4: the largest single process of the tree), whether the tests after the fault passed,
the verdicts. Writes <out>/robustness/robustness.md and .json; exits 0 only when every scenario
met every expectation.
"""
from __future__ import annotations

# The package's parts: catalog (the scenarios, as data), runner (one scenario's processes and its
# Result), judge (what the run left, against the scenario's expectations), cli (the command line
# and the report); `python -m tools.robustness` runs cli.main.
from tools.robustness.judge import find_secret

__all__ = ["find_secret"]
