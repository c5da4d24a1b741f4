from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_topk_engine(simulator):
    run_cocotb(
        toplevel="spatten_topk",
        sources=hdl_sources("spatten_topk", "spatten_topk_stage", "spatten_sdp_ram"),
        test_module="cocotb_topk",
        simulator=simulator,
        test_dir=Path(__file__).parent,
    )
