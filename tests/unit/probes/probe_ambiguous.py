"""Run only by tests/unit/test_wiring.py: a test whose clauses would make a failure's label
ambiguous (a clause with a known deviation beside another); collection must refuse it."""
import pytest


@pytest.mark.clause("WSOPEN.state.closing", "URC.WS_CLOSED")
def test_mixes_a_known_deviation_clause_with_another(at):
    at.cmd("AT").expect(b"OK")
