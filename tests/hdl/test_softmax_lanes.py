"""Multi-lane spatten_softmax: LANES = 8 and LANES = 4 units (small L_MAX) side by side in one
build (tb_softmax_lanes.v, cocotb_softmax_lanes.py) on both simulators."""

from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb

L_MAX = 64
LANES_A, LANES_B = 8, 4


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_softmax_lanes(simulator):
    here = Path(__file__).parent
    run_cocotb(toplevel="tb_softmax_lanes",
               sources=[*hdl_sources("spatten_softmax", "spatten_sdp_ram", "spatten_divider",
                                     "spatten_exp2", "spatten_exp2_lut"),
                        here / "tb_softmax_lanes.v"],
               test_module="cocotb_softmax_lanes", simulator=simulator,
               parameters={"L_MAX": L_MAX, "LANES_A": LANES_A, "LANES_B": LANES_B},
               extra_env={"SOFTMAX_L_MAX": str(L_MAX), "SOFTMAX_LANES_A": str(LANES_A),
                          "SOFTMAX_LANES_B": str(LANES_B)},
               test_dir=here)
