"""results/matrix.py: the run record as Markdown, JSON and HTML, and read back."""
import json
from pathlib import Path

import pytest

from results import matrix

CLAUSES = (("WSCFG.link_id.range", "AT+WSCFG", "<link_id> range [0,2]", None),
           ("WSCFG.ping_intv_sec.effect", "AT+WSCFG", "a ping every <ping_intv_sec>", None),
           ("WSOPEN.timeout_ms.range", "AT+WSOPEN", "<timeout_ms> range [0,180000]", "KD-1"),
           ("WSSEND.length.range", "AT+WSSEND", "<length> range [1,buffer_size]", None))


def a_test(nodeid, clauses, outcome="passed", verdict="", failed_clause="", message="",
           expected=None):
    name = nodeid.split("::")[-1]
    return {"nodeid": nodeid, "title": name.replace("_", " "), "clauses": list(clauses),
            "outcome": outcome, "verdict": verdict, "expected": expected,
            "failed_clause": failed_clause, "duration": 0.12, "message": message}


def clean_tests():
    """One passing test per clause, named after it."""
    tests = []
    for cid, *_ in CLAUSES:
        command, rest = cid.split(".", 1)
        tests.append(a_test(f"tests/conformance/test_{command.lower()}.py::"
                            f"test_{rest.replace('.', '_')}", [cid]))
    return tests


def record(tests=None, verdicts=None, firmware="AT version:4.0.0.0(s-abc)", date=None,
           stopped=None, observations=(), texts=None):
    """A run record as fixtures/run_record.py builds it: clause verdicts default to PASS and
    verdicts={id: verdict} overrides them; the counts follow the tests."""
    tests = clean_tests() if tests is None else tests
    verdicts, texts = verdicts or {}, texts or {}
    clauses = []
    for cid, command, text, kd in CLAUSES:
        mine = [t for t in tests if cid in t["clauses"]]
        count = {o: sum(t["outcome"] == o for t in mine)
                 for o in ("passed", "failed", "skipped", "xfailed")}
        clauses.append({"id": cid, "command": command, "level": "MUST",
                        "text": texts.get(cid, text), "known_deviation": kd,
                        "verdict": verdicts.get(cid, "PASS"),
                        "passed": count["passed"], "failed": count["failed"],
                        "skipped": count["skipped"], "expected": count["xfailed"],
                        "tests": [t["nodeid"] for t in mine]})
    outcomes = [t["outcome"] for t in tests]
    return {
        "schema": matrix.SCHEMA,
        "header": {"suite": "esp-at-ws-conformance 1a2b3c4",
                   "date": date or "2026-12-02T22:50:00+00:00",
                   "device": "reference model (sim/), firmware shipping",
                   "port": "socket://127.0.0.1:40123", "firmware": firmware,
                   "firmware_lines": [firmware, "SDK version:v5.1", "Bin version:4.0.0(ESP32C2)"],
                   "profile": "seed", "expectations": "expectations/esp-at-shipping.toml",
                   "model_defects": ["teardown-blocks"]},
        "summary": {"tests": len(tests), "passed": outcomes.count("passed"),
                    "failed": outcomes.count("failed"), "skipped": outcomes.count("skipped"),
                    "expected": outcomes.count("xfailed"), "not_run": outcomes.count("not run"),
                    "exit_status": int("failed" in outcomes)},
        "stopped": stopped,
        "clauses": clauses,
        "tests": tests,
        "observations": list(observations),
    }


def failing_record():
    tests = clean_tests()
    tests[0] = a_test(tests[0]["nodeid"], tests[0]["clauses"], "failed", "NEW",
                      "WSCFG.link_id.range",
                      "NEW violation of WSCFG.link_id.range: <x> & y\nsent: b'AT'")
    tests[2] = a_test(tests[2]["nodeid"], tests[2]["clauses"], "xfailed", "KD-1",
                      "WSOPEN.timeout_ms.range", "KD-1 as expected", expected="KD-1")
    return record(tests, {"WSCFG.link_id.range": "FAIL",
                          "WSOPEN.timeout_ms.range": "EXPECTED KD-1"})


def test_write_gives_three_files_and_load_reads_the_record_back(tmp_path):
    run = failing_record()
    paths = matrix.write(run, tmp_path / "reports")
    assert set(paths) == {"md", "json", "html"}
    assert [p.name for p in paths.values()] == ["conformance-matrix.md", "conformance-matrix.json",
                                               "conformance-matrix.html"]
    assert all(p.is_file() and p.parent == tmp_path / "reports" for p in paths.values())
    assert paths["md"].read_text().startswith("# Conformance matrix\n")
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")
    assert json.loads(paths["json"].read_text()) == run
    assert matrix.load(tmp_path / "reports") == run
    assert matrix.load(paths["json"]) == run


def test_the_json_keeps_an_option_given_as_a_path(tmp_path):
    run = record()
    run["header"]["expectations"] = Path("expectations/esp-at-shipping.toml")
    matrix.write(run, tmp_path)
    assert matrix.load(tmp_path)["header"]["expectations"] == "expectations/esp-at-shipping.toml"


def test_the_markdown_has_one_row_per_clause_in_spec_order():
    text = matrix.markdown(failing_record())
    rows = [line for line in text.splitlines()
            if line.startswith("| ") and "." in line.split("|")[1]]
    assert [row.split("|")[1].strip() for row in rows] == [cid for cid, *_ in CLAUSES]
    assert ("| WSCFG.link_id.range | MUST | FAIL | 0 | 1 | 0 | 0 |  | <link_id> range [0,2] |"
            in rows)
    assert "| WSOPEN.timeout_ms.range | MUST | EXPECTED KD-1 | 0 | 0 | 0 | 1 | KD-1 |" in text
    assert text.count("| clause | level | verdict |") == 1


def test_a_bar_in_a_clause_text_does_not_split_its_row():
    text = matrix.markdown(record(texts={"WSSEND.length.range": "a | b\nc"}))
    row = next(line for line in text.splitlines() if line.startswith("| WSSEND.length.range"))
    assert len(row.strip().strip("|").split("|")) == 9
    assert row.endswith("| a / b c |")


def test_the_header_names_the_device_firmware_and_run():
    text = matrix.markdown(failing_record())
    head = text.split("| clause |")[0]
    for line in ("- device: reference model (sim/), firmware shipping",
                 "- AT port: socket://127.0.0.1:40123", "- firmware: AT version:4.0.0.0(s-abc)",
                 "- profile: seed", "- expectations: expectations/esp-at-shipping.toml",
                 "- model defects: teardown-blocks", "- date: 2026-12-02T22:50:00+00:00",
                 "- suite: esp-at-ws-conformance 1a2b3c4",
                 "- AT+GMR: AT version:4.0.0.0(s-abc); SDK version:v5.1; "
                 "Bin version:4.0.0(ESP32C2)",
                 "4 tests: 2 passed, 1 failed, 1 expected failures, 0 skipped, 0 not run; "
                 "exit status 1"):
        assert line in head.splitlines(), line


def test_a_board_without_expectations_or_defects_says_none():
    run = record()
    run["header"].update(expectations=None, model_defects=[], firmware="", firmware_lines=[])
    lines = matrix.markdown(run).splitlines()
    assert {"- expectations: none", "- model defects: none", "- firmware: none"} <= set(lines)
    assert not any(line.startswith("- AT+GMR") for line in lines)


def test_a_stopped_session_says_so_in_both_forms():
    run = record(stopped={"why": "the device is gone.", "not_run": ["a", "b", "c"]})
    line = ("**The session stopped: the device is gone.** 3 test(s) did not run; their clauses "
            "read NOT RUN.")
    assert line in matrix.markdown(run).splitlines()
    assert ("<b>The session stopped: the device is gone.</b> 3 test(s) did not run"
            in matrix.html(run))
    assert "session stopped" not in matrix.markdown(record()) + matrix.html(record())


def test_the_html_escapes_everything_it_was_given():
    run = failing_record()
    run["clauses"][1]["text"] = "<b>&"
    run["header"]["device"] = "<board> & co"
    run["observations"] = [{"name": "<order>", "value": "Host & <Upgrade>", "test": "t::x[<1>]"}]
    page = matrix.html(run)
    assert "<b>&" not in page and "<board>" not in page and "<order>" not in page
    assert "&lt;b&gt;&amp;" in page
    assert "&lt;board&gt; &amp; co" in page
    assert "Host &amp; &lt;Upgrade&gt;" in page and "x[&lt;1&gt;]" in page
    assert "&lt;x&gt; &amp; y" in page          # the failure message


def test_the_html_stands_alone():
    page = matrix.html(failing_record())
    assert "<style>" in page
    for outside in ("<script", "<link", "src=", "@import", "url("):
        assert outside not in page, outside


def section(page, heading):
    """The HTML from one <h2> to the next."""
    return page.split(f"<h2>{heading}</h2>", 1)[1].split("<h2>", 1)[0]


def test_the_html_groups_clauses_by_command_and_colours_verdicts():
    page = matrix.html(failing_record())
    wscfg, wsopen = section(page, "AT+WSCFG"), section(page, "AT+WSOPEN")
    assert "WSCFG.link_id.range" in wscfg and "WSCFG.ping_intv_sec.effect" in wscfg
    assert "WSOPEN" not in wscfg and "WSSEND" not in wscfg
    assert "WSOPEN.timeout_ms.range" in wsopen
    assert "<td class='verdict fail'>FAIL</td>" in wscfg
    assert "<td class='verdict pass'>PASS</td>" in wscfg
    assert "<td class='verdict known'>EXPECTED KD-1</td>" in wsopen
    assert "<span class='kd'>KD-1</span>" in wsopen
    assert page.count("<h2>AT+WSCFG</h2>") == 1


def test_a_failing_test_shows_its_verdict_with_its_message_folded():
    wscfg = section(matrix.html(failing_record()), "AT+WSCFG")
    failing = wscfg.split("<details>", 1)[1].split("</details>", 1)[0]
    assert failing.startswith("<summary><span class='outcome failed'>failed NEW "
                              "(WSCFG.link_id.range)</span> test_link_id_range</summary>")
    assert "<pre>NEW violation of WSCFG.link_id.range: &lt;x&gt; &amp; y\nsent: b&#x27;AT&#x27;" \
           in failing
    assert "<span class='outcome passed'>passed</span> test_ping_intv_sec_effect" in wscfg
    assert wscfg.count("<details>") == 1


def test_observations_are_listed_with_their_test():
    run = record(observations=[{"name": "handshake header order", "value": "Host, Upgrade",
                                "test": "tests/conformance/test_wsopen.py::test_handshake"}])
    assert "<tr><td>handshake header order</td><td>Host, Upgrade</td><td>test_handshake</td></tr>" \
           in section(matrix.html(run), "Observations")
    assert ("- handshake header order: Host, Upgrade (tests/conformance/test_wsopen.py::"
            "test_handshake)") in matrix.markdown(run).splitlines()
    assert "None recorded." in section(matrix.html(record()), "Observations")


def one_line_naming(exc, path):
    message = str(exc.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_load_refuses_a_missing_file(tmp_path):
    with pytest.raises(ValueError) as exc:
        matrix.load(tmp_path)                  # a directory without the record
    assert "cannot read" in one_line_naming(exc, tmp_path / "conformance-matrix.json")


@pytest.mark.parametrize("content, says", [
    ("{not json", "not JSON"),
    (b"\xff\xfe\x00", "not JSON"),
    ('{"schema": "something/else/1"}', "schema is 'something/else/1'"),
    ("[1, 2]", "not a JSON object"),
])
def test_load_refuses_what_is_not_a_run_record(tmp_path, content, says):
    path = tmp_path / "run.json"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    with pytest.raises(ValueError) as exc:
        matrix.load(path)
    assert says in one_line_naming(exc, path)


def test_load_refuses_a_record_with_a_clause_without_a_verdict(tmp_path):
    run = record()
    del run["clauses"][2]["verdict"]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    with pytest.raises(ValueError) as exc:
        matrix.load(path)
    assert "clauses[2] has no verdict" in one_line_naming(exc, path)
