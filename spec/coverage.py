"""Which conformance tests check which clause. `python -m spec.coverage` prints the map;
`--check` exits 1 when a clause of spec/websocket_at.toml has no test."""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections import defaultdict

import pytest

import spec

CONFORMANCE_TESTS = "tests/conformance"


class _ClauseCollector:
    def __init__(self) -> None:
        self.tests_by_clause: dict[str, list[str]] = defaultdict(list)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            for mark in item.iter_markers("clause"):
                for clause_id in mark.args:
                    self.tests_by_clause[clause_id].append(item.nodeid)


def tests_by_clause(path: str = CONFORMANCE_TESTS) -> dict[str, list[str]]:
    collector = _ClauseCollector()
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", path],
                           plugins=[collector])
    if code != 0:
        raise RuntimeError(f"collecting {path} failed (exit {code}):\n{output.getvalue()}")
    return dict(collector.tests_by_clause)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if any clause has no conformance test")
    args = parser.parse_args()
    mapping = tests_by_clause()
    untested = [c for c in spec.load().clauses if not mapping.get(c)]
    for clause_id in spec.load().clauses:
        print(f"{clause_id}: {len(mapping.get(clause_id, []))} test(s)")
    if untested:
        print(f"clauses with no test: {', '.join(untested)}", file=sys.stderr)
    return 1 if (args.check and untested) else 0


if __name__ == "__main__":
    sys.exit(main())
