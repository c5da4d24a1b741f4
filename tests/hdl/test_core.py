from pathlib import Path

import pytest

from spatten_dv.sim import CORE_MODULES, hdl_sources, run_cocotb

SOURCES = list(CORE_MODULES)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_core(simulator):
    run_cocotb(
        toplevel="spatten_core",
        sources=hdl_sources(*SOURCES),
        test_module="cocotb_core",
        simulator=simulator,
        test_dir=Path(__file__).parent,
    )
