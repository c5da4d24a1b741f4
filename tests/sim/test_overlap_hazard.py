"""The job pipeline's hazard rule is checked: on a core whose stage A does not wait for an empty
stage B before a state-changing job (docs/architecture.md section 11), the `overlap` sequence
must fail the scoreboard (results are compared in order with the sequential model). The mutant
is the real RTL with the one wait removed, built into a temporary folder."""

import os
import random
import shutil
from pathlib import Path

from spatten_dv.regress import TestSpec, run_one
from spatten_dv.sim import HDL_DIR

OUT = Path(os.environ.get("SPATTEN_SIM_OUT", "build/sim-pytest"))
HAZARD_WAIT = "else if (d_changes && !b_empty) state <= S_CHECK;"


def test_overlap_sequence_catches_a_core_without_the_hazard_wait(tmp_path):
    for v in HDL_DIR.glob("*.v"):
        shutil.copy(v, tmp_path / v.name)
    core = tmp_path / "spatten_core.v"
    lines = core.read_text(encoding="utf-8").splitlines(keepends=True)
    waits = [i for i, line in enumerate(lines) if HAZARD_WAIT in line]
    assert len(waits) == 1, "the hazard wait of spatten_core.v is not where this test expects it"
    del lines[waits[0]]
    core.write_text("".join(lines), encoding="utf-8")
    seed = int(os.environ.get("COCOTB_RANDOM_SEED", "0")) or random.randrange(1 << 31)
    spec = TestSpec(name="overlap_no_hazard_wait", sequences="overlap",
                    knobs={"state_check": "false"}, tier="adhoc")
    r = run_one(spec, "verilator", seed, OUT, progress=False, hdl_dir=tmp_path,
                build_tag="no-hazard-wait")
    s = r.summary
    assert not r.passed and s["mismatches"] > 0, (
        f"seed {seed}: the overlap sequence passed on a core without the hazard wait "
        f"(log: {r.folder})")
