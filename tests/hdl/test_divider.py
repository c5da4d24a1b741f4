from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb

TEST_DIR = Path(__file__).parent


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_divider(simulator):
    """The softmax's configuration (41-bit dividend, 26-bit divisor)."""
    run_cocotb(toplevel="spatten_divider", sources=hdl_sources("spatten_divider"),
               test_module="cocotb_divider", simulator=simulator, test_dir=TEST_DIR,
               extra_env={"DIVIDER_NUM_W": "41", "DIVIDER_DEN_W": "26"})


def test_divider_small_exhaustive():
    """Every dividend/divisor pair of an 8/4-bit divider (including divide by zero)."""
    run_cocotb(toplevel="spatten_divider", sources=hdl_sources("spatten_divider"),
               test_module="cocotb_divider", simulator="icarus", test_dir=TEST_DIR,
               parameters={"NUM_W": 8, "DEN_W": 4},
               extra_env={"DIVIDER_NUM_W": "8", "DIVIDER_DEN_W": "4"})
