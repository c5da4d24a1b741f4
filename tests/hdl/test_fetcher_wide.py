"""Block tests of hdl/spatten_fetcher_wide.v at the paper point (Verilator) and a small point
(Icarus), plus a mutant the checker must catch."""

import re
from pathlib import Path

import pytest

from spatten_dv.sim import SimulationFailed, hdl_sources, run_cocotb

# name -> (Verilog parameters, environment of the cocotb module)
POINTS = {
    "paper": dict(N_CH=8, DW=256, IDX_LANES=8, OUT_BEATS=8, MAX_BURST=16,
                  MAX_OUTSTANDING=64, ROB_BEATS=256),
    "small": dict(N_CH=2, DW=128, IDX_LANES=4, OUT_BEATS=2, MAX_BURST=16,
                  MAX_OUTSTANDING=16, ROB_BEATS=64),
}


def _env(p):
    return {"FW_N_CH": str(p["N_CH"]), "FW_DW": str(p["DW"]), "FW_LANES": str(p["IDX_LANES"]),
            "FW_OUT": str(p["OUT_BEATS"]), "FW_MAX_BURST": str(p["MAX_BURST"]),
            "FW_MAX_OUTSTANDING": str(p["MAX_OUTSTANDING"])}


# each point on one simulator (both simulators see the block; the Verilator builds are the
# unit run's cost): the paper point on Verilator, the small point on Icarus
@pytest.mark.parametrize(("simulator", "point"), [("verilator", "paper"), ("icarus", "small")])
def test_fetcher_wide(simulator, point):
    p = POINTS[point]
    run_cocotb(
        toplevel="spatten_fetcher_wide",
        sources=hdl_sources("spatten_fetcher_wide"),
        test_module="cocotb_fetcher_wide",
        simulator=simulator,
        parameters=p,
        extra_env=_env(p),
        test_dir=Path(__file__).parent,
    )


def test_fetcher_wide_checker_catches_swapped_beats():
    """FETCHER_WIDE_MUTANT_SWAP swaps output lanes 0 and 1: the scoreboard must fail."""
    p = POINTS["small"]
    with pytest.raises(SimulationFailed) as failed:
        run_cocotb(
            toplevel="spatten_fetcher_wide",
            sources=hdl_sources("spatten_fetcher_wide"),
            test_module="cocotb_fetcher_wide",
            simulator="icarus",
            parameters=p,
            extra_env=_env(p),
            testcase="edge_cases",
            test_dir=Path(__file__).parent,
            extra_build_args=["-DFETCHER_WIDE_MUTANT_SWAP"],
        )
    # ... and for the right reason: the scoreboard's comparison, not a crash
    log = Path(re.search(r"log=(\S+?)\)", str(failed.value)).group(1))
    assert "beat stream differs" in log.read_text()
