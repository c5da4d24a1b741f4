from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_pv_accum(simulator):
    run_cocotb(toplevel="spatten_pv_accum", sources=hdl_sources("spatten_pv_accum"),
               test_module="cocotb_pv_accum", simulator=simulator,
               test_dir=Path(__file__).parent)
