"""spatten_core elaborates at its supported parameters (the named configurations among them)
and refuses the others at elaboration (docs/architecture.md section 1), on both simulators: a
combination the datapath does not implement must not build into a core that misreads its
descriptors or computes something else."""

import os
import shutil
import subprocess

import pytest

from spatten_dv import toolchain
from spatten_dv.models.params import CONFIGURATIONS, verilog_parameters
from spatten_dv.sim import HDL_DIR

MISSING = "spatten_core_unsupported_parameters"


def elaborate(simulator: str, params: dict[str, int], tmp_path) -> subprocess.CompletedProcess:
    env = toolchain.setup_environment(dict(os.environ))
    srcs = [str(p) for p in sorted(HDL_DIR.glob("*.v"))]
    if simulator == "icarus":
        cmd = ["iverilog", "-g2005", "-s", "spatten_core", "-o", str(tmp_path / "a.out")]
        cmd += [f"-Pspatten_core.{k}={v}" for k, v in params.items()] + srcs
    else:
        verilator = shutil.which("verilator", path=env.get("PATH")) or "verilator"
        cmd = [verilator, "--lint-only", "-Wno-fatal", "--top-module", "spatten_core"]
        cmd += [f"-G{k}={v}" for k, v in params.items()] + srcs
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("params", [{}, {"N_CH": 2}, {"N_CH": 8}, {"L_MAX": 512},
                                    {"QK_MULS": 32}, {"H_MAX": 8, "TOPK_CMPS": 4},
                                    {"AW": 40}, {"SM_LANES": 1}, {"SM_LANES": 2},
                                    {"QK_MULS": 256, "PV_MULS": 256, "SM_LANES": 4, "N_CH": 4},
                                    dict(verilog_parameters(CONFIGURATIONS["paper"]), N_CH=8)] +
                         [verilog_parameters(p) for p in CONFIGURATIONS.values()], ids=str)
def test_supported_parameters_elaborate(simulator, params, tmp_path):
    out = elaborate(simulator, params, tmp_path)
    assert out.returncode == 0 and MISSING not in out.stdout + out.stderr, out.stderr


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("params", [{"D": 32}, {"AXI_DW": 128}, {"L_MAX": 32}, {"N_CH": 3},
                                    {"DESC_W": 984}, {"RES_W": 1400}, {"QK_MULS": 128},
                                    {"PV_MULS": 128}, {"TOPK_CMPS": 12}, {"H_MAX": 12},
                                    {"D": 128, "AXI_DW": 512}, {"SM_LANES": 16},
                                    {"SM_LANES": 3},
                                    {"QK_MULS": 512, "PV_MULS": 512, "SM_LANES": 4},
                                    {"QK_MULS": 512, "PV_MULS": 64},
                                    {"QK_MULS": 512, "PV_MULS": 512, "TOPK_CMPS": 4},
                                    {"QK_MULS": 1024, "PV_MULS": 1024},
                                    {"QK_MULS": 512, "PV_MULS": 512, "MAX_BURST": 12},
                                    {"QK_MULS": 512, "PV_MULS": 512, "MAX_BURST": 256}],
                         ids=str)
def test_unsupported_parameters_fail_elaboration(simulator, params, tmp_path):
    out = elaborate(simulator, params, tmp_path)
    assert out.returncode != 0 and MISSING in out.stdout + out.stderr, (
        f"{params} elaborated on {simulator}:\n{out.stderr}")
