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
        testcase="core_jobs",
        simulator=simulator,
        test_dir=Path(__file__).parent,
    )


# Icarus only: a 2-channel Verilator build of its own costs more than the run (the smoke
# test config_small runs 2 channels on both simulators)
@pytest.mark.parametrize("simulator", ["icarus"])
def test_core_ddr4_two_channels(simulator):
    run_cocotb(
        toplevel="spatten_core",
        sources=hdl_sources(*SOURCES),
        test_module="cocotb_core",
        testcase="core_ddr4_channels",
        simulator=simulator,
        parameters={"N_CH": 2},
        extra_env={"CORE_N_CH": "2"},
        test_dir=Path(__file__).parent,
    )
