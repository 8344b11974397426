"""The model's defect catalog (sim/defects.py) as data: complete against the spec, every knob
read by the model, no name twice, unknown names refused."""
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

import spec
from sim.library import LIBRARIES, TRACE_HOST_KNOBS
from sim import Device
from sim.behaviour import Behaviour
from sim.defects import (DEFECTS, FIRMWARE_PRESETS, KD_DEFECTS, behaviour_for, firmware_defects,
                         resolve)

ROOT = Path(__file__).resolve().parents[2]
# The known deviations the seed profile can show (KD-8 needs TLS verification, profile tls; KD-12
# is the development line's, profile current; KD-13..KD-20 came with the library's traces).
SEED_KDS = {f"KD-{n}" for n in range(1, 21)} - {"KD-8", "KD-12"}


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


def test_every_known_deviation_is_a_defect_of_its_clause():
    # Since the profiles (issue 14): every KD of the spec data, KD-8 and KD-12 included.
    assert set(KD_DEFECTS) == set(spec.load().known_deviations)
    clauses = spec.load().clauses
    for kd, defect in KD_DEFECTS.items():
        assert all(clauses[c].known_deviation == kd for c in defect.clauses), defect
    assert KD_DEFECTS["KD-8"].profile == "tls" and KD_DEFECTS["KD-12"].profile == "current"


def test_shipping_is_the_known_deviations_of_the_models_profile():
    """The seed model (the default) shows every KD but KD-8 and KD-12; tls adds KD-8, current
    KD-12; with library 1.8.0 KD-4 is gone (fixed upstream)."""
    seed = {KD_DEFECTS[kd].name for kd in SEED_KDS}
    assert set(FIRMWARE_PRESETS["shipping"]) == set(firmware_defects("shipping")) == seed
    assert set(firmware_defects("shipping", "auth")) == seed
    assert set(firmware_defects("shipping", "tls")) == seed | {KD_DEFECTS["KD-8"].name}
    assert set(firmware_defects("shipping", "current")) == seed | {
        KD_DEFECTS["KD-8"].name, KD_DEFECTS["KD-12"].name}
    assert firmware_defects("seed", "current") == ()
    assert set(firmware_defects("shipping", "seed", "1.8.0")) == seed - {KD_DEFECTS["KD-4"].name}
    with pytest.raises(ValueError, match="unknown library"):
        firmware_defects("shipping", "seed", "1.9.9")
    for profile in spec.load().profiles:
        Device(profile, firmware_defects("shipping", profile))     # each one starts
    with pytest.raises(ValueError, match="unknown firmware"):
        firmware_defects("nightly")


def test_each_defect_belongs_to_the_profile_of_its_first_clause():
    the_spec = spec.load()
    for defect in DEFECTS.values():
        assert defect.profile == the_spec.clauses[defect.clauses[0]].profile
    # every later profile has at least one defect that only its own clauses catch
    for profile in the_spec.profile_order[1:]:
        assert any(d.profile == profile for d in DEFECTS.values()), profile


def test_a_defect_of_a_later_profile_is_refused_on_an_earlier_model():
    for defect in DEFECTS.values():
        for profile in spec.load().profile_order:
            if spec.load().profiles[profile].includes(defect.profile):
                Device(profile, [defect.name])
            else:
                with pytest.raises(ValueError, match=rf"{defect.name} \(profile "
                                                     rf"{defect.profile}.*--profile {defect.profile}"):
                    Device(profile, [defect.name])
    bad = subprocess.run([sys.executable, "-m", "sim", "--defect", "KD-12"], cwd=ROOT,
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "--profile current" in bad.stderr, bad.stderr


def test_every_knob_is_read_by_the_model_and_set_by_a_defect():
    """A knob nobody reads would make its defect a silent no-op; one no defect sets is dead."""
    # Where the knobs are defined (and set) is not where the model reads them; a helper of
    # Behaviour's own that reads a knob counts where the model calls it.
    source = "".join(p.read_text() for p in (ROOT / "sim").glob("*.py")
                     if p.name not in ("defects.py", "behaviour.py"))
    helpers = re.findall(r"    def (\w+)\(self[^)]*\)[^:]*:\n        return .*?self\.(\w+)",
                         (ROOT / "sim" / "behaviour.py").read_text())
    read_through = {knob for helper, knob in helpers if re.search(rf"\.{helper}\(", source)}
    knobs = [f.name for f in dataclasses.fields(Behaviour) if f.name != "timing"]
    unread = [k for k in knobs if k not in read_through
              and not re.search(rf"\b(fw|self|behaviour)\.{k}\b", source)]
    assert not unread, f"Behaviour knobs the model never reads: {unread}"
    # A library version's loop (sim/library.py) and the traces' host set knobs of their own.
    others = {k for lib in LIBRARIES.values() for k in lib.loop} | set(TRACE_HOST_KNOBS)
    unset = [k for k in knobs if k not in others
             and not any(k in d.changes for d in DEFECTS.values())]
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


def test_list_defects_prints_each_once_with_clause_kd_and_profile():
    listing = subprocess.run([sys.executable, "-m", "sim", "--list-defects"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10, check=True).stdout
    rows = listing.splitlines()[1:]
    names = [row.split()[0] for row in rows]
    assert len(names) == len(set(names)) == len(DEFECTS)
    for row in rows:
        name, clauses, kd, profile = row.split()[:4]
        defect = DEFECTS[name]
        assert clauses == ",".join(defect.clauses) and kd == (defect.kd or "-")
        assert profile == defect.profile


def test_conflicting_defects_cannot_run_together():
    with pytest.raises(ValueError, match="close_reply_payload"):
        behaviour_for(resolve(["close-not-answered", "close-reply-one-byte"]))
    # tuple knobs add up
    both = behaviour_for(resolve(["wscfg-link-id-accepts-3", "wscfg-ping-interval-accepts-0"]))
    assert len(both.range_skew) == 2
