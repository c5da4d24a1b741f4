from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb


@pytest.mark.parametrize("n_ch", [1, 2, 4])
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_fetcher(simulator, n_ch):
    run_cocotb(
        toplevel="spatten_fetcher",
        sources=hdl_sources("spatten_fetcher"),
        test_module="cocotb_fetcher",
        simulator=simulator,
        parameters={"N_CH": n_ch},
        extra_env={"FETCHER_N_CH": str(n_ch)},
        test_dir=Path(__file__).parent,
    )
