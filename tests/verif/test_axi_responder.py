from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb
from spatten_dv.verif.tb_top import TB_HDL_DIR

HERE = Path(__file__).parent


@pytest.mark.parametrize("playout", [False, True], ids=["python_r", "hdl_playout"])
@pytest.mark.parametrize("n_ch", [1, 2])
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_axi_read_responder(simulator, n_ch, playout):
    """The responder's timing and data, with R beats driven from Python or played out by the
    HDL FIFO (verif/hdl/axi_r_playout.v): the same checks hold for both."""
    if playout:
        toplevel = "spatten_fetcher_tb"
        sources = (hdl_sources("spatten_fetcher_tb", hdl_dir=HERE / "hdl")
                   + hdl_sources("axi_r_playout", hdl_dir=TB_HDL_DIR)
                   + hdl_sources("spatten_fetcher"))
    else:
        toplevel, sources = "spatten_fetcher", hdl_sources("spatten_fetcher")
    run_cocotb(toplevel=toplevel, sources=sources, test_module="cocotb_axi_responder",
               simulator=simulator, parameters={"N_CH": n_ch},
               extra_env={"RESPONDER_N_CH": str(n_ch)}, test_dir=HERE)
