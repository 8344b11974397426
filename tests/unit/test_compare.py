"""results/compare.py: two runs side by side, each clause and test in exactly one group."""
import json
import subprocess
import sys
from pathlib import Path

from fixtures.verdicts import TestVerdict
from results import compare, matrix
from tests.unit.test_matrix import CLAUSES, a_test, clean_tests, record

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LINK_ID, PING, TIMEOUT, LENGTH = (cid for cid, *_ in CLAUSES)
FIRMWARE_40, FIRMWARE_41 = "AT version:4.0.0.0(s-abc)", "AT version:4.1.0.0-dev(s-def)"


def ids(groups, group):
    return [entry.get("id") or entry["nodeid"] for entry in groups[group]]


def grouped(groups):
    """group -> ids, the empty groups left out."""
    return {group: ids(groups, group) for group in compare.GROUPS
            if group != "unchanged" and groups[group]}


def with_test(tests, index, **changes):
    tests = [dict(t) for t in tests]
    tests[index].update(changes)
    return tests


def two_defects():
    """Firmware 4.1 breaks two clauses in one test (filed NEW under the first) and nothing else."""
    tests = clean_tests()
    both = a_test("tests/conformance/test_wscfg.py::test_link_id_and_ping", [LINK_ID, PING],
                  "failed", "NEW", LINK_ID, "NEW violation of WSCFG.link_id.range: got ERROR\n"
                  "sent: b'AT+WSCFG=3,30,30\\r\\n'")
    return record(tests[:1] + [both] + tests[2:], {LINK_ID: "FAIL", PING: "FAIL"},
                  firmware=FIRMWARE_41)


def clean_with_joint_test():
    tests = clean_tests()
    both = a_test("tests/conformance/test_wscfg.py::test_link_id_and_ping", [LINK_ID, PING])
    return record(tests[:1] + [both] + tests[2:])


def test_two_defects_are_exactly_two_regressed_clauses_and_one_regressed_test():
    diff = compare.compare(clean_with_joint_test(), two_defects())
    assert grouped(diff["clauses"]) == {"regressed": [LINK_ID, PING]}
    assert ids(diff["clauses"], "unchanged") == [TIMEOUT, LENGTH]
    assert [(c["a"], c["b"]) for c in diff["clauses"]["regressed"]] == [("PASS", "FAIL")] * 2
    assert grouped(diff["tests"]) == {"regressed": ["tests/conformance/test_wscfg.py::"
                                                    "test_link_id_and_ping"]}
    test = diff["tests"]["regressed"][0]
    assert (test["a"], test["b"], test["clause"]) == ("passed", "failed NEW", LINK_ID)
    assert test["message"] == "NEW violation of WSCFG.link_id.range: got ERROR"
    assert len(diff["tests"]["unchanged"]) == 3


def test_the_markdown_opens_with_the_firmware_change_and_the_counts():
    lines = compare.markdown(compare.compare(clean_with_joint_test(), two_defects())).splitlines()
    assert lines[0] == f"# Comparison: {FIRMWARE_40} → {FIRMWARE_41}"
    assert lines[2] == ("2 regressed, 0 fixed, 0 changed, 0 inconclusive, 2 unchanged, 0 new, "
                        "0 gone (clauses); 1 regressed, 0 fixed, 0 changed, 0 inconclusive, "
                        "3 unchanged, 0 new, 0 gone (tests)")
    assert f"| firmware | {FIRMWARE_40} | {FIRMWARE_41} |" in lines
    assert "| profile | seed | seed |" in lines
    shipping = "expectations/esp-at-shipping.toml"
    assert f"| expectations | {shipping} | {shipping} |" in lines
    assert "## Regressed: 2 clause(s), 1 test(s)" in lines
    assert f"| {LINK_ID} | PASS | FAIL | <link_id> range [0,2] |" in lines
    assert ("| tests/conformance/test_wscfg.py::test_link_id_and_ping | passed | failed NEW | "
            f"{LINK_ID} | NEW violation of WSCFG.link_id.range: got ERROR |") in lines
    assert "Unchanged: 2 clause(s), 3 test(s) (listed in compare.html)." in lines
    assert not any(line.startswith("## Fixed") for line in lines)
    assert not any(TIMEOUT in line for line in lines)      # unchanged: counted, not listed


def test_the_same_defects_the_other_way_are_fixed():
    diff = compare.compare(two_defects(), clean_with_joint_test())
    assert grouped(diff["clauses"]) == {"fixed": [LINK_ID, PING]}
    assert grouped(diff["tests"]) == {"fixed": ["tests/conformance/test_wscfg.py::"
                                                "test_link_id_and_ping"]}
    assert diff["tests"]["fixed"][0]["clause"] == LINK_ID   # the clause it had failed


def test_an_expected_deviation_turning_into_a_failure_is_regressed():
    expected = with_test(clean_tests(), 2, outcome="xfailed", verdict="KD-1",
                         failed_clause=TIMEOUT, expected="KD-1")
    new = with_test(clean_tests(), 2, outcome="failed", verdict="NEW", failed_clause=TIMEOUT,
                    expected="KD-1", message="NEW violation of WSOPEN.timeout_ms.range")
    diff = compare.compare(record(expected, {TIMEOUT: "EXPECTED KD-1"}),
                           record(new, {TIMEOUT: "FAIL"}))
    assert grouped(diff["clauses"]) == {"regressed": [TIMEOUT]}
    assert grouped(diff["tests"]) == {"regressed": [clean_tests()[2]["nodeid"]]}
    assert (diff["tests"]["regressed"][0]["a"], diff["tests"]["regressed"][0]["b"]) == \
        ("xfailed KD-1", "failed NEW")


def test_a_known_deviation_filed_new_is_regressed():
    known = with_test(clean_tests(), 2, outcome="failed", verdict="KD-1", failed_clause=TIMEOUT)
    new = with_test(clean_tests(), 2, outcome="failed", verdict="NEW", failed_clause=TIMEOUT)
    diff = compare.compare(record(known, {TIMEOUT: "KNOWN DEVIATION"}),
                           record(new, {TIMEOUT: "FAIL"}))
    assert grouped(diff["clauses"]) == {"regressed": [TIMEOUT]}
    assert grouped(diff["tests"]) == {"regressed": [clean_tests()[2]["nodeid"]]}


def test_the_same_deviation_expected_or_not_is_a_change_not_a_regression():
    known = with_test(clean_tests(), 2, outcome="failed", verdict="KD-1", failed_clause=TIMEOUT)
    expected = with_test(clean_tests(), 2, outcome="xfailed", verdict="KD-1",
                         failed_clause=TIMEOUT, expected="KD-1")
    diff = compare.compare(record(known, {TIMEOUT: "KNOWN DEVIATION"}),
                           record(expected, {TIMEOUT: "EXPECTED KD-1"}))
    assert grouped(diff["clauses"]) == {"changed": [TIMEOUT]}
    assert grouped(diff["tests"]) == {"changed": [clean_tests()[2]["nodeid"]]}


def test_a_failure_moving_to_another_clause_is_a_change():
    a = with_test(clean_tests(), 0, outcome="failed", verdict="NEW", failed_clause=LINK_ID)
    b = with_test(clean_tests(), 0, outcome="failed", verdict="NEW",
                  failed_clause="WSOPEN.set.connected")
    diff = compare.compare(record(a, {LINK_ID: "FAIL"}), record(b, {LINK_ID: "FAIL"}))
    assert grouped(diff["clauses"]) == {}
    assert grouped(diff["tests"]) == {"changed": [clean_tests()[0]["nodeid"]]}
    assert diff["tests"]["changed"][0]["clause"] == f"{LINK_ID} → WSOPEN.set.connected"


def test_an_unexpected_pass_is_regressed_and_explained():
    expected = with_test(clean_tests(), 2, outcome="xfailed", verdict="KD-1", expected="KD-1")
    unexpected = with_test(clean_tests(), 2, outcome="failed", verdict="UNEXPECTED PASS",
                           failed_clause=TIMEOUT, expected="KD-1")
    diff = compare.compare(record(expected, {TIMEOUT: "EXPECTED KD-1"}),
                           record(unexpected, {TIMEOUT: "UNEXPECTED PASS"}))
    assert grouped(diff["clauses"]) == {"regressed": [TIMEOUT]}
    assert compare.UNEXPECTED_PASS_NOTE in compare.markdown(diff).splitlines()
    assert compare.UNEXPECTED_PASS_NOTE not in compare.markdown(
        compare.compare(clean_with_joint_test(), two_defects()))


def test_a_device_fault_on_either_side_is_inconclusive():
    fault = with_test(clean_tests(), 0, outcome="failed", verdict="DEVICE FAULT",
                      failed_clause=LINK_ID, message="DEVICE FAULT: the device rebooted")
    faulty = record(fault, {LINK_ID: "DEVICE FAULT"})
    for a, b, why in ((record(), faulty, "B DEVICE FAULT: no verdict on the device"),
                      (faulty, record(), "A DEVICE FAULT: no verdict on the device")):
        diff = compare.compare(a, b)
        assert grouped(diff["clauses"]) == {"inconclusive": [LINK_ID]}
        assert diff["clauses"]["inconclusive"][0]["why"] == why
        assert grouped(diff["tests"]) == {"inconclusive": [clean_tests()[0]["nodeid"]]}
        assert diff["tests"]["inconclusive"][0]["why"] == why.replace("DEVICE", "failed DEVICE")
    text = compare.markdown(compare.compare(record(), faulty))
    assert (f"| {LINK_ID} | PASS | DEVICE FAULT | B DEVICE FAULT: no verdict on the device | "
            "<link_id> range [0,2] |") in text.splitlines()


def test_skipped_and_not_run_are_inconclusive_but_the_same_twice_is_unchanged():
    skipped = with_test(clean_tests(), 3, outcome="skipped")
    not_run = with_test(clean_tests(), 3, outcome="not run")
    diff = compare.compare(record(skipped, {LENGTH: "SKIPPED"}),
                           record(not_run, {LENGTH: "NOT RUN"}))
    assert grouped(diff["clauses"]) == {"inconclusive": [LENGTH]}
    assert diff["clauses"]["inconclusive"][0]["why"] == \
        "A SKIPPED, B NOT RUN: no verdict on the device"
    assert grouped(diff["tests"]) == {"inconclusive": [clean_tests()[3]["nodeid"]]}
    again = compare.compare(record(skipped, {LENGTH: "SKIPPED"}),
                            record(skipped, {LENGTH: "SKIPPED"}))
    assert grouped(again["clauses"]) == {} and LENGTH in ids(again["clauses"], "unchanged")


def test_clauses_and_tests_only_in_one_run_are_new_or_gone():
    a, b = record(), record()
    a["clauses"] = a["clauses"][:3]
    b["clauses"] = b["clauses"][1:]
    extra = a_test("tests/conformance/test_wsclose.py::test_close_frame", ["WSCLOSE.frame"])
    a["tests"] = a["tests"][1:]
    b["tests"] = b["tests"] + [extra]
    diff = compare.compare(a, b)
    assert grouped(diff["clauses"]) == {"new": [LENGTH], "gone": [LINK_ID]}
    assert [(c["a"], c["b"]) for c in diff["clauses"]["new"] + diff["clauses"]["gone"]] == \
        [(None, "PASS"), ("PASS", None)]
    assert grouped(diff["tests"]) == {"new": [clean_tests()[0]["nodeid"], extra["nodeid"]]}
    gone = compare.compare(b, a)
    assert grouped(gone["tests"]) == {"gone": [clean_tests()[0]["nodeid"], extra["nodeid"]]}
    assert f"| {LENGTH} | — | PASS | <length> range [1,buffer_size] |" in \
        compare.markdown(diff).splitlines()


def test_an_observation_that_changed_is_listed_but_never_a_regression():
    def observed(order, ack):
        return [{"name": "handshake header order", "value": order, "test": "t::handshake"},
                {"name": "URC before SEND OK", "value": ack, "test": "t::send"}]
    a = record(observations=observed("Host, Upgrade", "no"))
    b = record(observations=observed("Upgrade, Host", "no"))
    diff = compare.compare(a, b)
    assert diff["observations"] == {
        "changed": [{"name": "handshake header order", "a": ["Host, Upgrade"],
                     "b": ["Upgrade, Host"]}],
        "unchanged": ["URC before SEND OK"]}
    assert grouped(diff["clauses"]) == {} and grouped(diff["tests"]) == {}
    lines = compare.markdown(diff).splitlines()
    assert lines[2].startswith("0 regressed, 0 fixed, 0 changed, 0 inconclusive, 4 unchanged")
    changed = lines[lines.index("## Observations that changed (not failures)"):]
    assert "| handshake header order | Host, Upgrade | Upgrade, Host |" in changed
    assert "1 observation(s) the same." in changed
    assert not any("URC before SEND OK" in line for line in lines)


def test_an_observation_one_run_lacks_counts_as_changed():
    b = record(observations=[{"name": "close code", "value": "1000", "test": "t::close"}])
    assert compare.compare(record(), b)["observations"]["changed"] == [
        {"name": "close code", "a": [], "b": ["1000"]}]


def test_the_same_firmware_twice_is_told_apart_by_date():
    diff = compare.compare(record(date="2026-12-01T22:00:00+00:00"),
                           record(date="2026-12-02T22:00:00+00:00"))
    assert compare.markdown(diff).splitlines()[0] == \
        "# Comparison: 2026-12-01T22:00:00+00:00 → 2026-12-02T22:00:00+00:00"


def test_a_stopped_run_says_why_in_the_header():
    stopped = record(stopped={"why": "the device is gone", "not_run": ["x"]})
    assert "| stopped | no | the device is gone |" in \
        compare.markdown(compare.compare(record(), stopped)).splitlines()


def test_the_html_colours_groups_folds_the_unchanged_and_escapes():
    b = two_defects()
    b["clauses"][0]["text"] = "<b>&"
    b["header"]["device"] = "<board>"
    page = compare.html(compare.compare(clean_with_joint_test(), b))
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "src=" not in page
    assert "<h2 class='group regressed'>Regressed: 2 clause(s), 1 test(s)</h2>" in page
    regressed = page.split("class='group regressed'", 1)[1].split("<details>", 1)[0]
    assert "<td class='verdict pass'>PASS</td><td class='verdict fail'>FAIL</td>" in regressed
    assert "<td class='verdict pass'>passed</td><td class='verdict fail'>failed NEW</td>" \
           in regressed
    unchanged = page.split("<details><summary><b>Unchanged: 2 clause(s), 3 test(s)</b></summary>",
                           1)[1].split("</details>", 1)[0]
    for clause in (TIMEOUT, LENGTH):
        assert f"<td class='id'>{clause}</td><td class='verdict pass'>PASS</td>" in unchanged
    assert f"<td class='id'>{LINK_ID}</td><td class='verdict" not in unchanged
    assert "<b>&" not in page and "<board>" not in page
    assert "&lt;b&gt;&amp;" in page and "&lt;board&gt;" in page
    assert "<h2 class='group fixed'>" not in page


def test_the_cli_prints_the_markdown_and_writes_both_files(tmp_path, capsys):
    a_dir, b_file = tmp_path / "a", tmp_path / "b.json"
    matrix.write(clean_with_joint_test(), a_dir)
    b_file.write_text(json.dumps(two_defects()))
    out = tmp_path / "out" / "compare"
    assert compare.main([str(a_dir), str(b_file), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.startswith(f"# Comparison: {FIRMWARE_40} → {FIRMWARE_41}\n")
    assert printed.err == ""
    assert (out / "compare.md").read_text() == printed.out
    assert (out / "compare.html").read_text().startswith("<!DOCTYPE html>")
    assert "Regressed: 2 clause(s), 1 test(s)" in (out / "compare.html").read_text()


def test_the_cli_writes_to_the_current_directory_by_default(tmp_path, monkeypatch, capsys):
    matrix.write(record(), tmp_path / "a")
    monkeypatch.chdir(tmp_path)
    assert compare.main(["a", "a/conformance-matrix.json"]) == 0
    assert (tmp_path / "compare.md").is_file() and (tmp_path / "compare.html").is_file()


def test_the_cli_refuses_a_missing_run_in_one_line(tmp_path):
    matrix.write(record(), tmp_path / "a")
    missing = tmp_path / "nowhere" / "conformance-matrix.json"
    done = subprocess.run([sys.executable, "-m", "results.compare", str(tmp_path / "a"),
                           str(missing), "--out", str(tmp_path / "out")], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"compare: {missing}: cannot read it"), done.stderr
    assert not (tmp_path / "out").exists()


def test_the_cli_refuses_a_file_that_is_not_a_run_record(tmp_path, capsys):
    junk = tmp_path / "junit.xml"
    junk.write_text("<testsuite/>")
    assert compare.main([str(junk), str(junk), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{junk}: not JSON" in err
    assert not (tmp_path / "compare.md").exists()


def test_a_regressed_tests_words_are_its_story_not_the_heading_that_repeats_the_clause():
    failing = TestVerdict("t", "failed", "NEW", message=(
        "NEW FAILURE of WSOPEN.timeout_ms.effect: <timeout_ms> is the timeout\n"
        "timeout_ms 2000 against a silent server; ERROR came after 15.02 s\n"
        "  the last exchange on the AT port:"))
    assert compare.first_line(failing) == ("timeout_ms 2000 against a silent server; ERROR came "
                                           "after 15.02 s")
    broken = TestVerdict("t", "failed", "BROKEN", message="BROKEN: the AT port was lost")
    assert compare.first_line(broken) == "BROKEN: the AT port was lost"
    assert compare.first_line(TestVerdict("t", "passed")) == "" and compare.first_line(None) == ""
