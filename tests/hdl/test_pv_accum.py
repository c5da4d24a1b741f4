from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb

# PV_MULS = VPC * 64 (D = 64): one pair per cycle at the default, 2 and 8 (SpAtten's 512
# multipliers) per cycle; 1 and 8 on both simulators, 2 on Icarus (a Verilator build costs
# ~25 s of CI).
CONFIGS = [("verilator", 1), ("icarus", 1), ("verilator", 8), ("icarus", 8), ("icarus", 2)]


@pytest.mark.parametrize(("simulator", "vpc"), CONFIGS)
def test_pv_accum(simulator, vpc):
    parameters = {"PV_MULS": 64 * vpc} if vpc > 1 else {}  # the default build as the core's
    run_cocotb(toplevel="spatten_pv_accum", sources=hdl_sources("spatten_pv_accum"),
               test_module="cocotb_pv_accum", simulator=simulator, parameters=parameters,
               extra_env={"PV_VPC": str(vpc)}, test_dir=Path(__file__).parent)
