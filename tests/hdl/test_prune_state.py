"""spatten_prune_state against the model's pruning state (tests/hdl/cocotb_prune_state.py).

Two builds per simulator: the default configuration and a small one (L_MAX = 64: two scan
chunks; H_MAX = 12: not a power of two).
"""

from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb


@pytest.mark.parametrize("l_max,h_max", [(1024, 32), (64, 12)])
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_prune_state(simulator, l_max, h_max):
    run_cocotb(toplevel="spatten_prune_state", sources=hdl_sources("spatten_prune_state"),
               test_module="cocotb_prune_state", simulator=simulator,
               parameters={"L_MAX": l_max, "H_MAX": h_max},
               extra_env={"PRUNE_L_MAX": str(l_max), "PRUNE_H_MAX": str(h_max)},
               test_dir=Path(__file__).parent)
