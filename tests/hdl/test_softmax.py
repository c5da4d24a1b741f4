from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_softmax(simulator):
    run_cocotb(toplevel="spatten_softmax",
               sources=hdl_sources("spatten_softmax", "spatten_sdp_ram", "spatten_divider",
                                   "spatten_exp2", "spatten_exp2_lut"),
               test_module="cocotb_softmax", simulator=simulator,
               test_dir=Path(__file__).parent)
