"""The smoke tier of the pyuvm environment (ci/tiers.yaml), each test on its simulators (both,
but the expect-fail tests, whose faults are injected in Python monitors, on Verilator).

A thin selection of what lives in verif/: each case is one `spatten-dv sim` test run. Normal
tests must check every job bit-exact (and the state after every job that changes it); the
expect-fail tests (InjectedFaultTest) pass only when the scoreboard reports their injected fault
as itself. A failing run prints its seed and log folder.
"""

import os
from pathlib import Path

import pytest

from spatten_dv.regress import load_tiers, run_one

SMOKE = load_tiers()[0]["smoke"]
OUT = Path(os.environ.get("SPATTEN_SIM_OUT", "build/sim-pytest"))


CASES = [(t, sim) for t in SMOKE for sim in ("verilator", "icarus") if sim in t.simulators]


@pytest.mark.parametrize("spec, simulator", CASES, ids=[f"{t.name}-{s}" for t, s in CASES])
def test_smoke(spec, simulator):
    seed = int(os.environ.get("COCOTB_RANDOM_SEED", "0")) or None
    import random

    seed = seed if seed is not None else random.randrange(1 << 31)
    r = run_one(spec, simulator, seed, OUT, progress=False)
    assert r.passed, f"{spec.name} [{simulator}] seed {seed}: {r.failure} (log: {r.folder})"
    s = r.summary
    assert s["jobs"] > 0, s
    if spec.test == "SpattenSimTest":
        assert s["jobs"] == s["checked"] and s["mismatches"] == 0, s
        assert s["sim_cycles"] > 0 and s["dram_bytes"] > 0
    else:  # the injected fault, reported as itself (InjectedFaultTest checks which field)
        assert s["mismatches"] >= 1, s
        assert s["checked"] == s["jobs"] - (spec.knobs.get("inject") == "drop_result"), s
