"""spatten_plane_unpack_wide (several beats in, up to KPC tokens out per cycle) against
models/formats.py at the paper geometry (D 64, 256-bit bus, 8 beats in, 8 tokens out) and a
small one (D 32, 128-bit bus, 2 beats in, 4 tokens out), and an expect-fail mutant."""

from pathlib import Path

import pytest

from spatten_dv.sim import SimulationFailed, hdl_sources, run_cocotb

TEST_DIR = Path(__file__).parent
GEOMETRIES = {"paper": (64, 256, 8, 8), "small": (32, 128, 2, 4)}


def run(simulator, geometry, testcase, extra_build_args=(), build_tag=""):
    d, axi, in_beats, kpc = GEOMETRIES[geometry]
    run_cocotb(toplevel="spatten_plane_unpack_wide",
               sources=hdl_sources("spatten_plane_unpack_wide"),
               test_module="cocotb_unpack_wide", simulator=simulator, test_dir=TEST_DIR,
               parameters={"D": d, "AXI_DW": axi, "IN_BEATS": in_beats, "KPC": kpc},
               extra_env={"UW_D": str(d), "UW_AXI": str(axi), "UW_IN_BEATS": str(in_beats),
                          "UW_KPC": str(kpc)},
               testcase=testcase, extra_build_args=extra_build_args, build_tag=build_tag)


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_plane_unpack_wide(simulator, geometry):
    run(simulator, geometry, "unpack_wide_matches_model,unpack_wide_full_rate")


def test_plane_unpack_wide_dense6_mutant_fails():
    """The dense 6-bit rule without the previous-phase check must be caught."""
    with pytest.raises(SimulationFailed):
        run("icarus", "small", "unpack_wide_matches_model",
            extra_build_args=["-DSPATTEN_UNPACK_WIDE_MUTANT_DENSE6"], build_tag="mutant_dense6")
