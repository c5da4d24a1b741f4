from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
@pytest.mark.parametrize("load_lanes", [1, 8])
def test_topk_engine(simulator, load_lanes):
    run_cocotb(
        toplevel="spatten_topk",
        sources=hdl_sources("spatten_topk", "spatten_topk_stage", "spatten_sdp_ram"),
        test_module="cocotb_topk",
        simulator=simulator,
        parameters={"LOAD_LANES": load_lanes} if load_lanes > 1 else {},
        test_dir=Path(__file__).parent,
    )
