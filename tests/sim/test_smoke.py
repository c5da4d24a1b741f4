"""The smoke tier of the pyuvm environment (ci/tiers.yaml), each test on both simulators.

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


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
@pytest.mark.parametrize("spec", SMOKE, ids=[t.name for t in SMOKE])
def test_smoke(spec, simulator):
    seed = int(os.environ.get("COCOTB_RANDOM_SEED", "0")) or None
    import random

    seed = seed if seed is not None else random.randrange(1 << 31)
    r = run_one(spec, simulator, seed, OUT, progress=False)
    assert r.passed, f"{spec.name} [{simulator}] seed {seed}: {r.failure} (log: {r.folder})"
    s = r.summary
    assert s["jobs"] > 0 and s["jobs"] == s["checked"], s
    if spec.test == "SpattenSimTest":
        assert s["mismatches"] == 0
        assert s["sim_cycles"] > 0 and s["dram_bytes"] > 0
    else:
        assert s["mismatches"] >= 1  # the injected fault, reported as itself (see the log)
