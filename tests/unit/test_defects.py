"""The model's defect catalog (sim/defects.py) as data: complete against the spec, every knob
read by the model, no name twice, unknown names refused."""
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

import spec
from sim import Device
from sim.behaviour import Behaviour
from sim.defects import DEFECTS, FIRMWARE_PRESETS, KD_DEFECTS, behaviour_for, resolve

ROOT = Path(__file__).resolve().parents[2]
# BEHAVIOUR.md's known deviations the seed profile can show (KD-8 needs TLS verification).
SEED_KDS = {f"KD-{n}" for n in range(1, 12)} - {"KD-8"}


def test_at_least_40_defects_each_naming_known_clauses():
    clauses = spec.load().clauses
    assert len(DEFECTS) >= 40
    for defect in DEFECTS.values():
        assert defect.clauses and all(c in clauses for c in defect.clauses), defect
        assert defect.description and "\n" not in defect.description


def test_every_clause_has_a_defect():
    covered = {c for d in DEFECTS.values() for c in d.clauses}
    missing = [c for c in spec.load().clauses if c not in covered]
    assert not missing, f"clauses no defect of the catalog breaks: {missing}"


def test_every_seed_known_deviation_is_a_defect_of_its_clause():
    assert set(KD_DEFECTS) == SEED_KDS
    clauses = spec.load().clauses
    for kd, defect in KD_DEFECTS.items():
        assert all(clauses[c].known_deviation == kd for c in defect.clauses), defect
    assert set(FIRMWARE_PRESETS["shipping"]) == {d.name for d in KD_DEFECTS.values()}


def test_every_knob_is_read_by_the_model_and_set_by_a_defect():
    """A knob nobody reads would make its defect a silent no-op; one no defect sets is dead."""
    source = "".join(p.read_text() for p in (ROOT / "sim").glob("*.py") if p.name != "defects.py")
    knobs = [f.name for f in dataclasses.fields(Behaviour) if f.name != "timing"]
    unread = [k for k in knobs if not re.search(rf"\b(fw|self)\.{k}\b", source)]
    assert not unread, f"Behaviour knobs the model never reads: {unread}"
    unset = [k for k in knobs if not any(k in d.changes for d in DEFECTS.values())]
    assert not unset, f"Behaviour knobs no defect sets: {unset}"


def test_each_defect_changes_the_behaviour():
    for defect in DEFECTS.values():
        assert behaviour_for([defect]) != Behaviour(), defect.name


def test_kd_ids_name_their_defects():
    assert resolve(["KD-4"]) == (KD_DEFECTS["KD-4"],)
    assert resolve(["KD-4", KD_DEFECTS["KD-4"].name]) == (KD_DEFECTS["KD-4"],)


def test_unknown_defect_is_an_error_at_start_up():
    with pytest.raises(ValueError, match="no-such-defect"):
        Device(defects=["no-such-defect"])
    bad = subprocess.run([sys.executable, "-m", "sim", "--defect", "no-such-defect"], cwd=ROOT,
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "no-such-defect" in bad.stderr


def test_list_defects_prints_each_once_with_clause_and_kd():
    listing = subprocess.run([sys.executable, "-m", "sim", "--list-defects"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10, check=True).stdout
    rows = listing.splitlines()[1:]
    names = [row.split()[0] for row in rows]
    assert len(names) == len(set(names)) == len(DEFECTS)
    for row in rows:
        name, clauses, kd = row.split()[:3]
        defect = DEFECTS[name]
        assert clauses == ",".join(defect.clauses) and kd == (defect.kd or "-")


def test_conflicting_defects_cannot_run_together():
    with pytest.raises(ValueError, match="close_reply_payload"):
        behaviour_for(resolve(["close-not-answered", "close-reply-one-byte"]))
    # tuple knobs add up
    both = behaviour_for(resolve(["wscfg-link-id-accepts-3", "wscfg-ping-interval-accepts-0"]))
    assert len(both.range_skew) == 2
