"""tools/report_history.py: Allure's history kept one point per firmware."""
import json

from tools.report_history import main, one_point_per_firmware


def point(name: str, stamp: int) -> str:
    return json.dumps({"uuid": f"u{stamp}", "name": name, "timestamp": stamp,
                       "knownTestCaseIds": [], "testResults": {}, "metrics": {}, "url": ""})


def names(lines: list[str]) -> list[tuple[str, int]]:
    return [(json.loads(line)["name"], json.loads(line)["timestamp"]) for line in lines]


def test_latest_point_of_each_other_firmware_kept_in_order_and_the_current_ones_dropped():
    lines = [point("fw 3.2", 1), point("fw 3.3", 2), point("fw 3.2", 3), point("fw 4.0", 4),
             point("fw 3.3", 5), "", point("fw 4.0", 6)]
    kept, dropped = one_point_per_firmware(lines, current="fw 4.0")
    assert names(kept) == [("fw 3.2", 3), ("fw 3.3", 5)]
    assert dropped == ["line 1: an older run of fw 3.2, dropped",
                       "line 4: an older run of this firmware (fw 4.0), replaced",
                       "line 2: an older run of fw 3.3, dropped",
                       "line 7: an older run of this firmware (fw 4.0), replaced"]


def test_a_line_that_is_not_a_point_is_dropped_and_said():
    kept, dropped = one_point_per_firmware(["{not json", '["a list"]', point("fw 1", 1)], "fw 2")
    assert names(kept) == [("fw 1", 1)]
    assert dropped == ["line 1: not a history point, dropped", "line 2: not a history point, dropped"]


def test_main_rewrites_the_file_and_needs_the_runs_report_name(tmp_path, capsys):
    results = tmp_path / "allure-results"
    results.mkdir()
    history = tmp_path / "history.jsonl"
    assert main([str(history), str(results)]) == 2
    assert "run the suite first" in capsys.readouterr().err
    (results / "report.json").write_text(json.dumps({"name": "fw 2", "firmware": "2"}))
    assert main([str(history), str(results)]) == 0          # no history yet: nothing to do
    assert not history.exists()
    history.write_text("\n".join([point("fw 1", 1), point("fw 2", 2), point("fw 1", 3)]) + "\n")
    assert main([str(history), str(results)]) == 0
    assert names(history.read_text().splitlines()) == [("fw 1", 3)]
    assert "1 other firmware(s) kept" in capsys.readouterr().out
    assert main(["only-one"]) == 2
