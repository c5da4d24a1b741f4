import os
from pathlib import Path

import pytest

from spatten_dv.sim import hdl_sources, run_cocotb

# QK_MULS = 32 (two passes per key) on Verilator costs one more C++ build (~25 s CPU); it runs
# on Icarus by default and on Verilator too with DOT_ALL_CONFIGS=1.
ALL_CONFIGS = os.environ.get("DOT_ALL_CONFIGS", "0") == "1"
CONFIGS = [
    ("verilator", 64),
    ("icarus", 64),
    ("icarus", 32),
    pytest.param("verilator", 32, marks=pytest.mark.skipif(
        not ALL_CONFIGS, reason="set DOT_ALL_CONFIGS=1 to build QK_MULS=32 on Verilator")),
]


@pytest.mark.parametrize(("simulator", "qk_muls"), CONFIGS)
def test_dot_product(simulator, qk_muls):
    run_cocotb(toplevel="spatten_dot_product", sources=hdl_sources("spatten_dot_product"),
               test_module="cocotb_dot_product", simulator=simulator,
               parameters={"QK_MULS": qk_muls}, extra_env={"DOT_QK_MULS": str(qk_muls)},
               test_dir=Path(__file__).parent)
