"""spatten_prune_state against the model's pruning state.

LANES = 1 (tests/hdl/cocotb_prune_state.py, the core's configuration): two builds per
simulator, the default configuration and a small one (L_MAX = 64: two scan chunks; H_MAX = 12:
not a power of two). LANES > 1 (tests/hdl/cocotb_prune_state_wide.py: wide scan beats, token
groups with bank conflicts): LANES = 8 at the defaults and LANES = 4 at the small
configuration; builds with an injected fault (SPATTEN_PRUNE_STATE_MUTANT) must fail it.
"""

from pathlib import Path

import pytest

from spatten_dv.commands.lint import lint_file
from spatten_dv.sim import HDL_DIR, SimulationFailed, hdl_sources, run_cocotb


def run(simulator, l_max, h_max, lanes=None, mutant=None, testcase=None):
    parameters = {"L_MAX": l_max, "H_MAX": h_max}
    env = {"PRUNE_L_MAX": str(l_max), "PRUNE_H_MAX": str(h_max)}
    if lanes is not None:
        parameters["LANES"] = lanes
        env["PRUNE_LANES"] = str(lanes)
        # the long saturation hold: Verilator, or Icarus at the small size
        env["PRUNE_WIDE_SATURATION"] = str(int(simulator == "verilator" or l_max <= 64))
    args = [f"-DSPATTEN_PRUNE_STATE_MUTANT={mutant}"] if mutant else []
    run_cocotb(toplevel="spatten_prune_state", sources=hdl_sources("spatten_prune_state"),
               test_module="cocotb_prune_state_wide" if lanes else "cocotb_prune_state",
               simulator=simulator, parameters=parameters, extra_env=env,
               extra_build_args=args, testcase=testcase, test_dir=Path(__file__).parent)


@pytest.mark.parametrize("l_max,h_max", [(1024, 32), (64, 12)])
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_prune_state(simulator, l_max, h_max):
    run(simulator, l_max, h_max)


# each wide point on one simulator (the LANES = 1 cases above run on both)
@pytest.mark.parametrize("simulator,lanes,l_max,h_max", [("verilator", 8, 1024, 32),
                                                         ("icarus", 4, 64, 12)])
def test_prune_state_wide(simulator, lanes, l_max, h_max):
    run(simulator, l_max, h_max, lanes=lanes)


@pytest.mark.parametrize("mutant", [1, 2, 3])
def test_prune_state_wide_mutant_fails(mutant):
    """1: a group's last lane dropped; 2: scan beats ignore bank conflicts; 3: a group's
    conflicting lanes dropped. Each must fail the rules test."""
    with pytest.raises(SimulationFailed):
        run("icarus", 64, 12, lanes=4, mutant=mutant, testcase="wide_rules")


@pytest.mark.parametrize("lanes", [8, 4, 2])
def test_prune_state_lint_lanes(lanes):
    for params in ({"LANES": lanes}, {"LANES": lanes, "L_MAX": 64, "H_MAX": 12}):
        assert lint_file(HDL_DIR / "spatten_prune_state.v", parameters=params) == []
