"""The bare Verilator harness of spatten_core (bench/bare/main.cpp): job files, build, run.

The harness is C++ only (no Python, no DPI in the loop): the speed limit of a simulation of
this RTL on Verilator. `write_job_file()` turns a list of jobs (e.g. a `JobPlan` of
traces/workload.py) into the file it reads: packed descriptors, the reference model's packed
results with a mask of the compared bits (every field but `cycles` and any field the model does
not predict), and the DRAM image the jobs read (FILE.bin). `build()` compiles it once per flag
set; `run()` returns its JSON summary (jobs, mismatches, cycles, wall_s, cycles_per_s).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from spatten_dv.errors import UserError
from spatten_dv.models.core import SpAttenCoreModel
from spatten_dv.models.descriptor import Job, JobResult, Status, pack_fields, result_fields
from spatten_dv.models.memory import DramImage
from spatten_dv.models.params import DEFAULT_PARAMS, OUT_BITS, CoreParams
from spatten_dv.sim import (
    BUILD_ROOT,
    CORE_MODULES,
    REPO_ROOT,
    VERILATOR_FAST_BUILD_ARGS,
    hdl_sources,
)
from spatten_dv.verif.core_scoreboard import expected_fields

MAIN_CPP = REPO_ROOT / "bench" / "bare" / "main.cpp"
# The same flags as the environment's speed build: the comparison is of testbenches only.
BARE_BUILD_ARGS = VERILATOR_FAST_BUILD_ARGS
FILE_MAGIC = "spatten-bare-jobs 1"


def expected_word(ref: JobResult, params: CoreParams = DEFAULT_PARAMS) -> tuple[int, int]:
    """(packed expected result, mask of the bits compared) for one model result."""
    want = expected_fields(ref)
    if ref.status in (Status.AXI_SLVERR, Status.AXI_DECERR):
        want.pop("beats")  # depends on bus timing (docs/architecture.md section 2.3)
    if "out" in want:  # D signed elements -> one field of D x OUT_BITS bits
        full = (1 << OUT_BITS) - 1
        want["out"] = sum((int(x) & full) << (OUT_BITS * d) for d, x in enumerate(want["out"]))
    layout = result_fields(params)
    word = pack_fields({name: want.get(name, 0) for name, _ in layout}, layout)
    mask = pack_fields({name: (1 << w) - 1 if name in want else 0 for name, w in layout}, layout)
    return word, mask


def field_offset(name: str, params: CoreParams = DEFAULT_PARAMS) -> int:
    pos = 0
    for n, width in result_fields(params):
        if n == name:
            return pos
        pos += width
    raise KeyError(name)


def write_job_file(path: Path, jobs: Sequence[Job], memory: DramImage,
                   params: CoreParams = DEFAULT_PARAMS, latency: int = 20,
                   results: Iterable[JobResult] | None = None) -> int:
    """Write `path` and `path.bin` for `jobs` (in order, job_id = order mod 2^16, as the
    environment's driver numbers them) reading `memory`. Expected results come from one
    SpAttenCoreModel run over the jobs in order (its pruning state carried), unless given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if results is None:
        model = SpAttenCoreModel(params)
        results = []
        for i, job in enumerate(jobs):
            job.job_id = i & 0xFFFF
            results.append(model.run_job(job, memory))
    lines = [FILE_MAGIC, f"latency {int(latency)}",
             f"cycles_bit {field_offset('cycles', params)}"]
    with open(str(path) + ".bin", "wb") as bin_out:
        for region in memory.regions:
            lines.append(f"region {region.base:x} {len(region.data)}")
            bin_out.write(region.data.tobytes())
    n = 0
    for job, ref in zip(jobs, results, strict=True):
        word, mask = expected_word(ref, params)
        lines.append(f"job {job.pack():x} {word:x} {mask:x}")
        n += 1
    path.write_text("\n".join(lines) + "\n")
    return n


def build(build_args: Sequence[str] = BARE_BUILD_ARGS, quiet: bool = True) -> Path:
    """Compile the harness (once per flag set and sources); returns the executable."""
    from spatten_dv import toolchain
    from spatten_dv.sim import _fix_verilator_pch

    toolchain.setup_environment()
    _fix_verilator_pch()
    sources = hdl_sources(*CORE_MODULES)
    digest = hashlib.sha1(repr(list(build_args)).encode()).hexdigest()[:8]
    mdir = BUILD_ROOT / f"bare-{digest}"
    exe = mdir / "spatten_bare"
    inputs = [*sources, MAIN_CPP]
    if exe.is_file() and all(p.stat().st_mtime < exe.stat().st_mtime for p in inputs):
        return exe
    jobs = os.environ.get("SPATTEN_BUILD_JOBS", "2")
    cmd = ["verilator", "--cc", "--exe", "--build", "-j", jobs, "--top-module", "spatten_core",
           *build_args, "-Mdir", str(mdir), "-o", "spatten_bare",
           *[str(s) for s in sources], str(MAIN_CPP)]
    mdir.mkdir(parents=True, exist_ok=True)
    log = mdir / "build.log"
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0 or not exe.is_file():
        raise UserError(f"the bare harness did not build (log: {log})")
    return exe


def run(exe: Path, job_file: Path, latency: int | None = None, timeout_s: float = 3600) -> dict:
    """Run the harness on a job file; its JSON summary (`mismatches` 0 = bit-exact)."""
    cmd = [str(exe), str(job_file)] + ([str(latency)] if latency is not None else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise UserError(f"the bare harness ran past {timeout_s:.0f} s on {job_file}") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode not in (0, 1) or not lines:
        raise UserError(f"the bare harness failed on {job_file}: "
                        f"{(proc.stderr or proc.stdout).strip()[-300:]}")
    summary = json.loads(lines[-1])
    summary["errors"] = proc.stderr.strip().splitlines()[:5]
    return summary
