from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb

SOURCES = ["spatten_core", "spatten_fetcher", "spatten_plane_unpack", "spatten_reconstruct",
           "spatten_dot_product", "spatten_softmax", "spatten_softmax_buf", "spatten_divider",
           "spatten_exp2", "spatten_exp2_lut", "spatten_topk", "spatten_topk_ram",
           "spatten_topk_stage", "spatten_pv_accum", "spatten_prune_state"]


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_core(simulator):
    run_cocotb(
        toplevel="spatten_core",
        sources=hdl_sources(*SOURCES),
        test_module="cocotb_core",
        simulator=simulator,
        test_dir=Path(__file__).parent,
    )
