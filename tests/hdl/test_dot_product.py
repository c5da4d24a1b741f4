from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb

# QK_MULS = 32: two passes per key; 128 and 512: 2 and 8 keys per cycle (512 is SpAtten's
# configuration at D = 64). Every width on Icarus, all but 128 on Verilator too (each Verilator
# build costs ~25 s of CI; 128 differs from 512 only in the lane count).
CONFIGS = [("verilator", 64), ("icarus", 64), ("icarus", 32), ("verilator", 32),
           ("verilator", 512), ("icarus", 512), ("icarus", 128)]


@pytest.mark.parametrize(("simulator", "qk_muls"), CONFIGS)
def test_dot_product(simulator, qk_muls):
    run_cocotb(toplevel="spatten_dot_product", sources=hdl_sources("spatten_dot_product"),
               test_module="cocotb_dot_product", simulator=simulator,
               parameters={"QK_MULS": qk_muls}, extra_env={"DOT_QK_MULS": str(qk_muls)},
               test_dir=Path(__file__).parent)
