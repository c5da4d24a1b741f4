from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb

TEST_DIR = Path(__file__).parent


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_plane_unpack(simulator):
    run_cocotb(toplevel="spatten_plane_unpack", sources=hdl_sources("spatten_plane_unpack"),
               test_module="cocotb_unpack", simulator=simulator, test_dir=TEST_DIR,
               testcase="unpack_matches_model,unpack_full_rate_and_clear")


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_reconstruct(simulator):
    run_cocotb(toplevel="spatten_reconstruct", sources=hdl_sources("spatten_reconstruct"),
               test_module="cocotb_unpack", simulator=simulator, test_dir=TEST_DIR,
               testcase="reconstruct_matches_model")
