"""AT+WSCFG: set command, its example, parameter ranges and what each parameter does."""
import pytest

import spec
from esp_at.commands import wscfg

from tests.conformance.ranges import range_cases

SPEC = spec.load()
DEFAULTS = {p.name: p.default for p in SPEC.params if p.command == "AT+WSCFG"}


def wscfg_with(**values) -> str:
    line = dict(link_id=0, ping_intv_sec=DEFAULTS["ping_intv_sec"],
                ping_timeout_sec=DEFAULTS["ping_timeout_sec"], buffer_size=DEFAULTS["buffer_size"])
    line.update(values)
    return wscfg(line["link_id"], line["ping_intv_sec"], line["ping_timeout_sec"],
                 line["buffer_size"])


@pytest.mark.clause("WSCFG.example")
def test_doc_example_is_accepted(at):
    at.cmd("AT+WSCFG=0,30,60,4096").expect(b"OK", lines=[])


@pytest.mark.clause("WSCFG.set")
@pytest.mark.parametrize("line", ["AT+WSCFG=1,10,120", "AT+WSCFG=2,7200,7200,8192"])
def test_set_without_and_with_buffer_size(at, line):
    at.cmd(line).expect(b"OK", lines=[])


@pytest.mark.clause("WSCFG.set")
@pytest.mark.parametrize("line", [
    "AT+WSCFG=0,30", "AT+WSCFG=0", "AT+WSCFG=", "AT+WSCFG",
    "AT+WSCFG=0,30,60,4096,1", "AT+WSCFG=a,30,60", "AT+WSCFG=0,,60",
    'AT+WSCFG="0",30,60',
], ids=lambda line: line.replace("AT+WSCFG", "")  or "bare")
def test_malformed_set_is_refused(at, line):
    at.cmd(line).expect(b"ERROR")


@pytest.mark.parametrize("case", range_cases(SPEC, "AT+WSCFG"))
def test_parameter_range(at, case):
    at.cmd(wscfg_with(**{case.param: case.value})).expect(b"OK" if case.in_range else b"ERROR")
