from pathlib import Path

import pytest

from spatten_dv.sim import CORE_MODULES, hdl_sources, run_cocotb

SOURCES = list(CORE_MODULES)


# one channel count per simulator: the Verilator run shares test_core's build (N_CH = 1), a
# 4-channel build is cheap on Icarus (every smoke test of the environment reads the state back
# on both simulators too)
@pytest.mark.parametrize("simulator,n_ch", [("verilator", 1), ("icarus", 4)])
def test_core_readback(simulator, n_ch):
    run_cocotb(
        toplevel="spatten_core",
        sources=hdl_sources(*SOURCES),
        test_module="cocotb_core_readback",
        testcase="readback_jobs",
        simulator=simulator,
        parameters={"N_CH": n_ch} if n_ch != 1 else None,
        extra_env={"CORE_N_CH": str(n_ch)},
        test_dir=Path(__file__).parent,
    )


# Verilator only: 2,050 jobs would take ~15 minutes on Icarus (the environment's full tier
# saturates head importance too, through its own readback path).
@pytest.mark.parametrize("simulator", ["verilator"])
def test_core_readback_saturation(simulator):
    run_cocotb(
        toplevel="spatten_core",
        sources=hdl_sources(*SOURCES),
        test_module="cocotb_core_readback",
        testcase="readback_saturation",
        simulator=simulator,
        test_dir=Path(__file__).parent,
    )
