import pytest

from spatten_dv.sim import hdl_sources, run_cocotb


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_exp2_block(simulator):
    run_cocotb(
        toplevel="spatten_exp2",
        sources=hdl_sources("spatten_exp2", "spatten_exp2_lut"),
        test_module="cocotb_exp2",
        simulator=simulator,
        test_dir=__import__("pathlib").Path(__file__).parent,
    )
