"""spatten_plane_unpack_wide (several beats in, up to KPC tokens out per cycle) against
models/formats.py at the paper geometry (D 64, 256-bit bus, 8 beats in, 8 tokens out), a
small one (D 32, 128-bit bus, 2 beats in, 4 tokens out) and an edge one, and an expect-fail
mutant."""

import re
from pathlib import Path

import pytest

from spatten_dv.sim import SimulationFailed, hdl_sources, run_cocotb

TEST_DIR = Path(__file__).parent
# name: (D, AXI_DW, IN_BEATS, KPC). `edge` (Icarus only): the smallest head and more beats in
# than tokens out (the output limits the rate).
GEOMETRIES = {"paper": (64, 256, 8, 8), "small": (32, 128, 2, 4), "edge": (16, 64, 8, 2)}
# each geometry on one simulator (both simulators see the block; Verilator builds are the unit
# run's cost)
CONFIGS = [("verilator", "paper"), ("icarus", "small"), ("icarus", "edge")]


def run(simulator, geometry, testcase, extra_build_args=(), build_tag=""):
    d, axi, in_beats, kpc = GEOMETRIES[geometry]
    run_cocotb(toplevel="spatten_plane_unpack_wide",
               sources=hdl_sources("spatten_plane_unpack_wide"),
               test_module="cocotb_unpack_wide", simulator=simulator, test_dir=TEST_DIR,
               parameters={"D": d, "AXI_DW": axi, "IN_BEATS": in_beats, "KPC": kpc},
               extra_env={"UW_D": str(d), "UW_AXI": str(axi), "UW_IN_BEATS": str(in_beats),
                          "UW_KPC": str(kpc)},
               testcase=testcase, extra_build_args=extra_build_args, build_tag=build_tag)


@pytest.mark.parametrize(("simulator", "geometry"), CONFIGS)
def test_plane_unpack_wide(simulator, geometry):
    run(simulator, geometry, "unpack_wide_matches_model,unpack_wide_full_rate")


def test_plane_unpack_wide_dense6_mutant_fails():
    """The dense 6-bit rule without the previous-phase check must be caught, by a width-6
    stream's scoreboard (not by a build or harness error)."""
    with pytest.raises(SimulationFailed) as failed:
        run("icarus", "small", "unpack_wide_matches_model",
            extra_build_args=["-DSPATTEN_UNPACK_WIDE_MUTANT_DENSE6"], build_tag="mutant_dense6")
    log = Path(re.search(r"log=(\S+?)\)", str(failed.value)).group(1)).read_text()
    assert re.search(r"AssertionError: width=6 .*(differs|out_count|output beats)", log), \
        "the mutant failed, but not on a width-6 stream's check"
